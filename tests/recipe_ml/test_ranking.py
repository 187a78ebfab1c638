"""Ranking rules on hand-made scores: exclusions, health filter, MMR, personal slots."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_ml.ranking import health_mask, mmr, mmr_rows, normalize_rows, rank, top_k, with_personal_slots


def test_top_k_orders_best_first_and_skips_excluded_and_disallowed() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3], dtype=np.float32)
    allowed = np.array([True, True, True, False, True])

    indices, picked = top_k(scores, 3, exclude=np.array([1]), allowed=allowed)

    assert indices.tolist() == [2, 4, 0]
    assert picked.tolist() == pytest.approx([0.5, 0.3, 0.1])


def test_top_k_returns_fewer_when_fewer_remain() -> None:
    indices, picked = top_k(np.array([1.0, 2.0], dtype=np.float32), 5, exclude=np.array([0]))

    assert indices.tolist() == [1]
    assert picked.tolist() == [2.0]


def test_top_k_of_nothing_left_is_empty() -> None:
    indices, _ = top_k(np.array([1.0], dtype=np.float32), 3, exclude=np.array([0]))

    assert indices.size == 0


def test_top_k_does_not_modify_the_scores() -> None:
    scores = np.array([1.0, 2.0, 3.0], dtype=np.float32)

    top_k(scores, 1, exclude=np.array([2]))

    assert scores.tolist() == [1.0, 2.0, 3.0]


def test_health_mask_keeps_scores_at_most_the_limit_and_drops_unknown() -> None:
    fsa = np.array([4.0, 8.0, np.nan, 12.0], dtype=np.float32)

    assert health_mask(fsa, None) is None
    mask = health_mask(fsa, 8.0)
    assert mask is not None
    assert mask.tolist() == [True, True, False, False]


def test_normalize_rows_gives_unit_rows_and_keeps_zero_rows() -> None:
    unit = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))

    assert unit.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0]]


def test_mmr_without_diversity_is_relevance_order() -> None:
    vectors = normalize_rows(np.eye(4, dtype=np.float32))
    order = mmr(np.arange(4), np.array([0.2, 0.9, 0.5, 0.7], dtype=np.float32), vectors, 4, 0.0)

    assert order.tolist() == [1, 3, 2, 0]


def test_mmr_with_diversity_skips_a_near_duplicate() -> None:
    # 0 and 1 point the same way; 2 is orthogonal but a little less relevant.
    vectors = normalize_rows(np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]], dtype=np.float32))
    relevance = np.array([1.0, 0.95, 0.9], dtype=np.float32)

    assert mmr(np.arange(3), relevance, vectors, 2, 0.0).tolist() == [0, 1]
    assert mmr(np.arange(3), relevance, vectors, 2, 0.5).tolist() == [0, 2]


def test_rank_with_diversity_keeps_model_scores_and_exclusions() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(50).astype(np.float32)
    vectors = normalize_rows(rng.normal(size=(50, 8)).astype(np.float32))
    exclude = np.argsort(-scores)[:3]

    indices, picked = rank(scores, 10, exclude=exclude, diversity=0.7, unit_item_vectors=vectors)

    assert len(set(indices.tolist())) == 10
    assert not set(indices.tolist()) & set(exclude.tolist())
    assert picked.tolist() == pytest.approx(scores[indices].tolist())
    plain, _ = rank(scores, 10, exclude=exclude)
    assert indices.tolist() != plain.tolist()  # diversity moved something
    assert indices[0] == plain[0]  # MMR always starts from the most relevant


def test_mmr_rows_ranks_each_row_like_mmr_alone() -> None:
    rng = np.random.default_rng(1)
    relevance = rng.random((3, 12)).astype(np.float32)
    vectors = np.stack([normalize_rows(rng.normal(size=(12, 4)).astype(np.float32)) for _ in range(3)])

    batch = mmr_rows(relevance, vectors, 5, 0.4)

    for row in range(3):
        assert batch[row].tolist() == mmr(np.arange(12), relevance[row], vectors[row], 5, 0.4).tolist()


def test_personal_slots_take_the_last_top_10_positions_without_duplicates() -> None:
    ranked = np.array([[10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]])
    # Best by affinity: 13 is already in the head, 20 is in the tail (moves up), 30 is new.
    personal = np.array([[13, 20, 30, 31, 32, 33, 34, 35, 36, 37]])

    one = with_personal_slots(ranked, personal, 1)
    two = with_personal_slots(ranked, personal, 2)

    assert one.tolist() == [[10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 19, 21]]
    assert two.tolist() == [[10, 11, 12, 13, 14, 15, 16, 17, 20, 30, 18, 19]]
    assert with_personal_slots(ranked, personal, 0) is ranked


def test_personal_slots_on_a_list_shorter_than_the_window_use_its_last_positions() -> None:
    ranked = np.array([[1, 2, 3], [4, 5, 6]])
    personal = np.array([[1, 9, 8], [7, 4, 5]])

    assert with_personal_slots(ranked, personal, 1).tolist() == [[1, 2, 9], [4, 5, 7]]


def test_rank_with_personal_slots_respects_exclusions_and_health_and_keeps_model_scores() -> None:
    scores = np.arange(20, 0, -1).astype(np.float32)  # recipe 0 best ... 19 worst
    affinity = np.zeros(20, dtype=np.float32)
    affinity[[15, 16, 17]] = [3.0, 2.0, 1.0]  # 15 excluded, 16 fails the health filter: 17 is the pick
    allowed = np.ones(20, dtype=bool)
    allowed[16] = False

    indices, picked = rank(scores, 10, exclude=np.array([15]), allowed=allowed, affinity=affinity, personal_slots=1)

    assert indices.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 17]
    assert picked.tolist() == scores[indices].tolist()
    plain, _ = rank(scores, 10, affinity=None, personal_slots=1)
    assert plain.tolist() == list(range(10))  # no affinity (popularity): the policy is off
