"""The ranking policy on hand-made scores: exclusions, MMR, personal positions, the adaptive policy."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_ml.ranking import (
    PersonalPolicy,
    RankInputs,
    exclude_recipes,
    health_mask,
    mmr_rows,
    normalize_rows,
    override_positions,
    rank_rows,
    take_rows,
    top_k_rows,
)


def test_excluded_recipes_are_never_ranked_nor_personal_picks_but_keep_their_shown_score() -> None:
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    inputs = RankInputs(scores.copy(), scores.copy(), scores.copy(), np.zeros(2, dtype=np.int64))
    plain = RankInputs(scores.copy(), scores.copy(), None, np.zeros(2, dtype=np.int64))

    exclude_recipes(inputs, 0, np.array([0]))
    exclude_recipes(inputs, np.array([1, 1]), np.array([1, 2]))
    exclude_recipes(plain, 1, np.array([True, False, True]))

    assert inputs.personal is not None
    assert inputs.ranking.tolist() == inputs.personal.tolist() == [[-np.inf, 2, 1], [3, -np.inf, -np.inf]]
    assert inputs.scores.tolist() == scores.tolist()
    assert plain.ranking.tolist() == [[3, 2, 1], [-np.inf, 2, -np.inf]]
    assert rank_rows(inputs.ranking, 1).tolist() == [[1], [0]]


def test_health_mask_keeps_scores_at_most_the_limit_and_drops_unknown() -> None:
    fsa = np.array([4.0, 8.0, np.nan, 12.0], dtype=np.float32)

    assert health_mask(fsa, None) is None
    mask = health_mask(fsa, 8.0)
    assert mask is not None
    assert mask.tolist() == [True, True, False, False]


def test_normalize_rows_gives_unit_rows_and_keeps_zero_rows() -> None:
    unit = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))

    assert unit.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0]]


def mmr_one(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    order: list[int] = mmr_rows(relevance[None, :], vectors[None, :, :], k, diversity)[0].tolist()
    return order


def test_mmr_without_diversity_is_relevance_order() -> None:
    vectors = normalize_rows(np.eye(4, dtype=np.float32))

    assert mmr_one(np.array([0.2, 0.9, 0.5, 0.7], dtype=np.float32), vectors, 4, 0.0) == [1, 3, 2, 0]


def test_mmr_with_diversity_skips_a_near_duplicate() -> None:
    # 0 and 1 point the same way; 2 is orthogonal but a little less relevant.
    vectors = normalize_rows(np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]], dtype=np.float32))
    relevance = np.array([1.0, 0.95, 0.9], dtype=np.float32)

    assert mmr_one(relevance, vectors, 2, 0.0) == [0, 1]
    assert mmr_one(relevance, vectors, 2, 0.5) == [0, 2]


def test_top_k_rows_orders_best_first_per_row() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [4.0, 3.0, 2.0, 1.0]], dtype=np.float32)

    assert top_k_rows(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    assert top_k_rows(scores, 9).shape == (2, 4)


@pytest.mark.parametrize("seed", range(40))
def test_top_k_rows_is_the_stable_sort_of_each_row_with_ties_minus_inf_and_nan(seed: int) -> None:
    """Every path of the selection (the slices' bound, the k-th score as bound, the full sort) against its
    definition, on rows of few distinct values (ties at and inside the top k), mostly -inf rows and NaN."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(1, 3000))
    scores = rng.integers(0, int(rng.integers(2, 50)), size=(5, width)).astype(np.float32)
    scores[1] = rng.random(width).astype(np.float32)
    scores[2, rng.random(width) < 0.97] = -np.inf
    scores[3, rng.integers(0, width, size=3)] = np.nan
    scores[4] = -np.inf
    for k in (1, 3, 10, 50, width, width + 5):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, width)]
        assert top_k_rows(scores, k).tolist() == expected.tolist(), f"k={k}, width={width}"


def test_top_k_rows_of_nothing_is_an_empty_row_each() -> None:
    assert top_k_rows(np.zeros((3, 4), dtype=np.float32), 0).shape == (3, 0)
    assert top_k_rows(np.zeros((0, 4), dtype=np.float32), 5).shape == (0, 4)


def test_rank_rows_skips_excluded_recipes_and_pads_when_too_few_remain() -> None:
    scores = np.array([[0.1, 0.9, -np.inf, 0.7], [-np.inf, -np.inf, 2.0, -np.inf]], dtype=np.float32)

    assert rank_rows(scores, 3).tolist() == [[1, 3, 0], [2, -1, -1]]


def test_personal_positions_take_the_last_top_10_positions_without_duplicates() -> None:
    scores = -np.arange(40, dtype=np.float32)[None, :].repeat(2, axis=0)  # recipe 0 best ... 39 worst
    personal = np.full((2, 40), -1.0, dtype=np.float32)
    # Best personal: 3 (already in the head), then 11 (in the tail: moves up), then 30 (new).
    personal[:, [3, 11, 30]] = [3.0, 2.0, 1.0]

    ranked = rank_rows(scores, 12, personal=personal, positions=np.array([1, 2]))

    assert ranked[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 9, 10]
    assert ranked[1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 11, 30, 8, 9]
    assert (
        rank_rows(scores, 12, personal=personal, positions=np.array([0, 0])).tolist() == rank_rows(scores, 12).tolist()
    )


def test_personal_picks_respect_exclusions_and_a_list_shorter_than_the_window() -> None:
    scores = -np.arange(20, dtype=np.float32)[None, :]
    personal = np.zeros((1, 20), dtype=np.float32)
    personal[0, [15, 16, 17]] = [3.0, 2.0, 1.0]
    scores[0, 15] = personal[0, 15] = -np.inf  # excluded (seen, or failing the health filter)

    assert rank_rows(scores, 10, personal=personal, positions=np.array([1])).tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 16]
    ]
    assert rank_rows(scores, 10, personal=personal, positions=np.array([2])).tolist() == [
        [0, 1, 2, 3, 4, 5, 6, 7, 16, 17]
    ]
    assert rank_rows(scores, 4, personal=personal, positions=np.array([2])).tolist() == [[0, 1, 2, 3]]


@pytest.mark.parametrize("diversity", [0.0, 0.3])
def test_a_list_shorter_than_the_window_is_the_head_of_the_top_10(diversity: float) -> None:
    """Personal positions belong to the top 10, whatever ``k``: a client asking for 3, then 10, sees one order."""
    rng = np.random.default_rng(5)
    scores, personal = rng.random((3, 80)).astype(np.float32), rng.random((3, 80)).astype(np.float32)
    unit = normalize_rows(rng.standard_normal((80, 8)).astype(np.float32))
    positions = np.array([2, 6, 9])

    def ranked(k: int) -> np.ndarray:
        return rank_rows(scores, k, diversity=diversity, unit_item_vectors=unit, personal=personal, positions=positions)

    top_10 = ranked(10)
    for k in (1, 3, 7):
        assert ranked(k).tolist() == top_10[:, :k].tolist()


def test_all_ten_positions_personal_is_the_personal_ranking() -> None:
    rng = np.random.default_rng(3)
    scores, personal = rng.random((4, 60)).astype(np.float32), rng.random((4, 60)).astype(np.float32)

    ranked = rank_rows(scores, 10, personal=personal, positions=np.full(4, 10))

    assert ranked.tolist() == top_k_rows(personal, 10).tolist()


def test_rank_rows_with_diversity_keeps_exclusions_and_starts_from_the_most_relevant() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((1, 50)).astype(np.float32)
    vectors = normalize_rows(rng.normal(size=(50, 8)).astype(np.float32))
    excluded = np.argsort(-scores[0])[:3]
    scores[0, excluded] = -np.inf

    diverse = rank_rows(scores, 10, diversity=0.7, unit_item_vectors=vectors)[0]
    plain = rank_rows(scores, 10)[0]

    assert len(set(diverse.tolist())) == 10 and not set(diverse.tolist()) & set(excluded.tolist())
    assert diverse.tolist() != plain.tolist()  # diversity moved something
    assert diverse[0] == plain[0]  # MMR always starts from the most relevant


def test_the_adaptive_policy_gives_heavier_users_more_personal_positions() -> None:
    policy = PersonalPolicy(blend_weight=1.0, intercept=1.0, per_doubling=1.5)

    assert policy.positions(np.array([1, 3, 8, 64, 10_000])).tolist() == [1, 3, 6, 10, 10]
    assert PersonalPolicy(1.0, -5.0, 0.0).positions(np.array([4])).tolist() == [0]


def test_a_request_share_overrides_the_policy_per_row() -> None:
    assert override_positions(np.array([3, 3, 3]), [None, 0.0, 0.55]).tolist() == [3, 0, 6]


def test_mmr_rows_ranks_each_row_like_mmr_alone() -> None:
    rng = np.random.default_rng(1)
    relevance = rng.random((3, 12)).astype(np.float32)
    vectors = np.stack([normalize_rows(rng.normal(size=(12, 4)).astype(np.float32)) for _ in range(3)])

    batch = mmr_rows(relevance, vectors, 5, 0.4)

    for row in range(3):
        assert batch[row].tolist() == mmr_one(relevance[row], vectors[row], 5, 0.4)


def test_mmr_on_a_few_allowed_candidates_returns_all_of_them_and_nothing_excluded() -> None:
    rng = np.random.default_rng(5)
    scores = np.full((1, 60), -np.inf, dtype=np.float32)
    allowed = [7, 21, 40]
    scores[0, allowed] = [0.2, 0.9, 0.5]
    vectors = normalize_rows(rng.normal(size=(60, 8)).astype(np.float32))

    ranked = rank_rows(scores, 10, diversity=0.9, unit_item_vectors=vectors)

    assert ranked[0, 0] == 21 and sorted(ranked[0, :3].tolist()) == allowed
    assert ranked[0, 3:].tolist() == [-1] * 7


def mmr_by_definition(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """MMR as its docstring states it, one candidate at a time in plain Python (the reference for the batch)."""
    finite = [bool(np.isfinite(value)) for value in relevance]
    valid = [float(value) for value, ok in zip(relevance, finite, strict=True) if ok]
    low, span = (min(valid), max(valid) - min(valid)) if valid else (0.0, 0.0)
    scaled = [
        (np.float32(value) - np.float32(low)) / np.float32(span) if span > 0 else np.float32(1.0) for value in relevance
    ]
    sims = vectors @ vectors.T
    picked: list[int] = []
    for _ in range(min(k, len(relevance))):
        best, best_gain = -1, -np.inf
        for candidate in range(len(relevance)):
            if candidate in picked:
                continue
            if not finite[candidate]:
                gain = -1e30
            else:
                closest = max((sims[candidate, other] for other in picked), default=np.float32(0.0))
                gain = float(np.float32(1.0 - diversity) * scaled[candidate] - np.float32(diversity) * closest)
            if gain > best_gain:
                best, best_gain = candidate, gain
        picked.append(best)
    return picked


@pytest.mark.parametrize("diversity", [0.0, 0.3, 0.7, 1.0])
def test_mmr_rows_picks_what_the_definition_picks_with_ties_exclusions_and_opposite_vectors(diversity: float) -> None:
    rng = np.random.default_rng(7)
    n, c = 40, 30
    relevance = rng.integers(0, 6, size=(n, c)).astype(np.float32)  # few distinct values: many ties
    relevance[rng.random((n, c)) < 0.2] = -np.inf
    relevance[0] = -np.inf  # a row with nothing allowed
    relevance[1] = 2.0  # a row of one value
    vectors = normalize_rows(rng.normal(size=(n, c, 3)).astype(np.float32).reshape(n * c, 3)).reshape(n, c, 3)

    batch = mmr_rows(relevance, vectors, 12, diversity)

    for row in range(n):
        expected = mmr_by_definition(relevance[row], vectors[row], 12, diversity)
        assert batch[row].tolist() == expected, row
        alone = mmr_rows(relevance[row : row + 1], vectors[row : row + 1], 12, diversity)  # the one-row path
        assert alone.tolist() == [expected], row


def test_take_rows_is_take_along_axis_for_rows() -> None:
    rng = np.random.default_rng(3)
    values = rng.random((4, 9))
    indices = rng.integers(0, 9, size=(4, 5))

    assert take_rows(values, indices).tolist() == np.take_along_axis(values, indices, axis=1).tolist()
    assert take_rows(values, indices[:, :0]).shape == (4, 0)
