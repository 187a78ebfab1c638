"""Which recipes a query scores: the index's candidates, or the whole allowed set when a filter is restrictive."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_ml.retrieval.base import IndexParams, RecipeIndex, item_rows, query_rows
from recipe_ml.retrieval.candidates import MAX_FETCH, CandidateQuery, Candidates, ColumnSpace, column_groups, retrieve
from recipe_ml.retrieval.usearch_index import USearchGraph

N_ITEMS, DIM, NEED = 5000, 16, 50
NOTHING = np.zeros(0, dtype=np.int64)
RECALL_AT_10 = 0.95
"""What ``IndexParams``' defaults are chosen for (docs/benchmarks.md); the test's smaller graph holds it too."""


@pytest.fixture(scope="module")
def catalogue() -> tuple[RecipeIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = (rng.standard_normal((N_ITEMS, DIM)) * rng.lognormal(0, 0.2, (N_ITEMS, 1)) * 0.6).astype(np.float32)
    rows = item_rows(vectors, rng.gamma(2.0, 0.5, N_ITEMS).astype(np.float32))
    queries = query_rows((rng.standard_normal((8, DIM)) * 0.3).astype(np.float32))
    return RecipeIndex.build(rows, USearchGraph, IndexParams(expansion_add=64)), rows, queries


def best_allowed(scores: np.ndarray, allowed: np.ndarray | None, banned: np.ndarray, k: int) -> set[int]:
    scores = scores.copy()
    scores[banned] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    return set(np.argsort(-scores)[:k].tolist())


def test_an_unfiltered_query_gets_few_candidates_holding_its_best(
    catalogue: tuple[RecipeIndex, np.ndarray, np.ndarray],
) -> None:
    index, rows, queries = catalogue
    banned = np.arange(0, N_ITEMS, 97)
    found = retrieve(index, queries, [CandidateQuery(NEED, None, banned, NOTHING)] * len(queries))

    held = 0
    for got, query in zip(found, queries, strict=True):
        assert not got.exact and got.columns is not None
        assert len(got.columns) < N_ITEMS // 10
        assert not set(got.columns.tolist()) & set(banned.tolist()), "banned recipes are not candidates"
        held += len(best_allowed(query @ rows.T, None, banned, 10) & set(got.columns.tolist()))
    # The graph is approximate and built on every core (its links depend on the threads' timing), so a
    # rare query misses one of its best: the check is the recall the index's parameters promise.
    assert held / (10 * len(queries)) >= RECALL_AT_10


def test_a_small_allowed_set_is_scored_exactly(catalogue: tuple[RecipeIndex, np.ndarray, np.ndarray]) -> None:
    """0.1% to 1% of the catalogue: the index would need more than MAX_FETCH candidates to find them."""
    index, _, queries = catalogue
    for share in (0.001, 0.01):
        allowed = np.zeros(N_ITEMS, dtype=bool)
        allowed[np.random.default_rng(1).choice(N_ITEMS, int(N_ITEMS * share), replace=False)] = True

        [got] = retrieve(index, queries[:1], [CandidateQuery(NEED, allowed, NOTHING, NOTHING)])

        assert got.exact and got.columns is not None and np.array_equal(got.columns, np.flatnonzero(allowed))
    assert NEED * 100 * 1.5 > MAX_FETCH, "1% of the catalogue does need more than MAX_FETCH"


def test_a_filter_keeping_only_low_scores_falls_back_to_exact(
    catalogue: tuple[RecipeIndex, np.ndarray, np.ndarray],
) -> None:
    """A quarter of the catalogue, but the worst-scoring quarter: the index's best hold too few of them."""
    index, rows, queries = catalogue
    scores = queries[0] @ rows.T
    allowed = scores <= np.quantile(scores, 0.25)

    [got] = retrieve(index, queries[:1], [CandidateQuery(NEED, allowed, NOTHING, NOTHING)])

    assert got.exact and got.columns is not None and np.array_equal(got.columns, np.flatnonzero(allowed))


def test_a_long_history_without_filter_scores_every_recipe(
    catalogue: tuple[RecipeIndex, np.ndarray, np.ndarray],
) -> None:
    index, _, queries = catalogue
    [got] = retrieve(index, queries[:1], [CandidateQuery(NEED, None, np.arange(MAX_FETCH), NOTHING)])

    assert got == Candidates(None, exact=True)


def test_required_recipes_are_candidates(catalogue: tuple[RecipeIndex, np.ndarray, np.ndarray]) -> None:
    index, rows, queries = catalogue
    worst = int(np.argmin(queries[0] @ rows.T))

    [got] = retrieve(index, queries[:1], [CandidateQuery(NEED, None, NOTHING, np.asarray([worst]))])

    assert got.columns is not None and worst in got.columns


def test_queries_are_grouped_by_the_recipes_they_score() -> None:
    shared = np.asarray([1, 5, 9])
    found = [
        Candidates(np.asarray([1, 2, 3]), exact=False),
        Candidates(shared, exact=True),
        Candidates(None, exact=True),
        Candidates(np.asarray([3, 4]), exact=False),
        Candidates(shared.copy(), exact=True),
    ]

    groups = column_groups(found)

    assert [(rows, None if cols is None else cols.tolist()) for rows, cols in groups] == [
        ([0, 3], [1, 2, 3, 4]),
        ([1, 4], [1, 5, 9]),
        ([2], None),
    ]


def test_column_space_maps_recipes_to_positions_and_back() -> None:
    space = ColumnSpace(np.asarray([2, 5, 7]))
    everything = ColumnSpace(None)
    indices = np.asarray([7, 3, 2, -1, 9])

    assert space.positions(indices).tolist() == [2, -1, 0, -1, -1]
    assert space.recipes(np.asarray([0, 2])).tolist() == [2, 7]
    assert space.take(np.arange(10) * 10).tolist() == [20, 50, 70]
    assert everything.positions(indices) is indices and everything.take(indices) is indices
    assert ColumnSpace(np.zeros(0, dtype=np.int64)).positions(indices).tolist() == [-1] * 5
