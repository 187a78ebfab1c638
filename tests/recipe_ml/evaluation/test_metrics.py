"""Ranking metrics against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recipe_ml.evaluation.metrics import coverage_at_k, hit_matrix, ndcg_at_k, recall_at_k


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else np.zeros(0, np.int64)
    return sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr), shape=(len(rows), n_items))


def test_hit_matrix_marks_relevant_positions_per_user() -> None:
    ranked = np.array([[3, 1, 0], [2, 4, 1]])
    relevant = csr([[1, 4], [2]], n_items=5)
    assert hit_matrix(ranked, relevant).tolist() == [[False, True, False], [True, False, False]]


def test_hit_matrix_with_no_relevant_items_is_all_false() -> None:
    assert not hit_matrix(np.array([[0, 1]]), csr([[]], n_items=3)).any()


def test_ndcg_by_hand() -> None:
    # user 0: hits at ranks 2 and 3, 2 relevant: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    # user 1: hit at rank 1, 3 relevant, k=2: 1 / (1 + 1/log2(3))
    hits = np.array([[False, True, True], [True, False, False]])
    n_relevant = np.array([2, 3])
    expected_0 = (1 / np.log2(3) + 0.5) / (1 + 1 / np.log2(3))
    expected_1_k2 = 1 / (1 + 1 / np.log2(3))
    np.testing.assert_allclose(ndcg_at_k(hits, n_relevant, 3)[0], expected_0)
    np.testing.assert_allclose(ndcg_at_k(hits, n_relevant, 2)[1], expected_1_k2)


def test_ndcg_is_one_for_a_perfect_ranking_and_zero_without_hits() -> None:
    hits = np.array([[True, True, False], [False, False, False]])
    np.testing.assert_allclose(ndcg_at_k(hits, np.array([2, 4]), 3), [1.0, 0.0])


def test_ndcg_ideal_is_capped_at_k() -> None:
    # 5 relevant but k=2: the ideal DCG has 2 hits, so two hits on top give 1.0
    np.testing.assert_allclose(ndcg_at_k(np.array([[True, True, False]]), np.array([5]), 2), [1.0])


def test_recall_divides_by_all_relevant() -> None:
    hits = np.array([[True, False, True], [False, False, False]])
    np.testing.assert_allclose(recall_at_k(hits, np.array([4, 1]), 3), [0.5, 0.0])
    np.testing.assert_allclose(recall_at_k(hits, np.array([4, 1]), 1), [0.25, 0.0])


def test_metrics_are_zero_for_users_without_relevant_items() -> None:
    hits = np.zeros((1, 2), dtype=bool)
    assert ndcg_at_k(hits, np.array([0]), 2)[0] == 0.0
    assert recall_at_k(hits, np.array([0]), 2)[0] == 0.0


def test_coverage_counts_distinct_items_in_top_k() -> None:
    ranked = np.array([[0, 1, 7], [1, 2, 8], [0, 2, 9]])
    assert coverage_at_k(ranked, n_items=10, k=2) == pytest.approx(0.3)
    assert coverage_at_k(ranked, n_items=10, k=3) == pytest.approx(0.6)
