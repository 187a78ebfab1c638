"""The recipe index: deep recall of inner products, live additions, its files, refusal of one that does not fit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from recipe_ml.retrieval.base import INDEX_META, IndexMismatchError, IndexParams, RecipeIndex, item_rows, query_rows
from recipe_ml.retrieval.usearch_index import GRAPH_FILE, USearchGraph

N_ITEMS, DIM = 4000, 16
FAST = IndexParams(expansion_add=64)
BACKENDS: dict[str, type[USearchGraph]] = {USearchGraph.backend: USearchGraph}


def catalogue(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Recipe rows ``[v, b]``, a popularity-like bias and norms spread as the Two-Tower's; 40 queries ``[u, 1]``."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((N_ITEMS, DIM)).astype(np.float32) * rng.lognormal(0, 0.2, (N_ITEMS, 1)) * 0.6
    bias = rng.gamma(2.0, 0.5, N_ITEMS).astype(np.float32)
    users = rng.standard_normal((40, DIM)).astype(np.float32) * 0.3
    return item_rows(vectors.astype(np.float32), bias), query_rows(users)


def recall(found: np.ndarray, rows: np.ndarray, queries: np.ndarray, depth: int) -> float:
    exact = np.argsort(-(queries @ rows.T), axis=1)[:, :depth]
    return float(np.mean([len(set(f[:depth]) & set(e)) / depth for f, e in zip(found, exact, strict=True)]))


@pytest.fixture(scope="module")
def built() -> tuple[RecipeIndex, np.ndarray, np.ndarray]:
    rows, queries = catalogue()
    return RecipeIndex.build(rows, USearchGraph, FAST), rows, queries


def with_tail(index: RecipeIndex, found: np.ndarray) -> list[np.ndarray]:
    return [np.concatenate([row[row >= 0], index.tail]) for row in found]


def test_deep_lists_hold_the_best_inner_products(built: tuple[RecipeIndex, np.ndarray, np.ndarray]) -> None:
    """The ranking reads pools of 50 and more (MMR, filters): the index must be right deep down, not only at 10."""
    index, rows, queries = built
    for depth in (10, 100, 400):
        candidates = with_tail(index, index.search(queries, depth))
        scores = queries @ rows.T
        best = [c[np.argsort(-scores[r, c])][:depth] for r, c in enumerate(candidates)]
        assert recall(np.asarray(best), rows, queries, depth) >= 0.95, depth


def test_the_longest_rows_are_the_exact_tail(built: tuple[RecipeIndex, np.ndarray, np.ndarray]) -> None:
    index, rows, _ = built
    norms = np.linalg.norm(rows, axis=1)
    assert len(index.tail) == N_ITEMS - int(N_ITEMS * (1 - FAST.tail_share))
    assert norms[index.tail].min() > norms[np.setdiff1d(np.arange(N_ITEMS), index.tail)].max()
    assert len(index) == N_ITEMS and index.dim == DIM + 1


def test_added_recipes_get_the_next_keys_and_are_found() -> None:
    rows, _ = catalogue(seed=1)
    index = RecipeIndex.build(rows, USearchGraph, FAST)
    target = np.eye(DIM, dtype=np.float32)[0]
    query = query_rows(10 * target[None, :])  # the affinity outweighs every bias: the aligned row is the best
    aligned = item_rows(0.99 * index.radius * target[None, :], np.zeros(1, np.float32))
    long = item_rows(3 * index.radius * target[None, :], np.ones(1, np.float32))

    index.add(np.vstack([aligned, long]))

    assert len(index) == N_ITEMS + 2
    assert N_ITEMS + 1 in index.tail, "a row longer than the graph's radius is scored exactly"
    assert index.search(query, 10)[0][0] == N_ITEMS, "the added row is the graph's best for the query it aligns with"


def test_a_saved_index_loads_and_answers_the_same(
    built: tuple[RecipeIndex, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    index, rows, queries = built
    index.save(tmp_path)

    loaded = RecipeIndex.load(tmp_path, BACKENDS, rows)

    assert np.array_equal(loaded.search(queries, 60), index.search(queries, 60))
    assert np.array_equal(loaded.tail, index.tail) and loaded.radius == index.radius


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("wider", f"index of dimension {DIM + 1}, the model needs {DIM + 2}"),
        ("more", f"index of {N_ITEMS} recipes, the model has {N_ITEMS + 5}"),
        ("other", "index built from other recipe vectors than the model's"),
    ],
)
def test_an_index_of_other_recipes_is_refused(
    built: tuple[RecipeIndex, np.ndarray, np.ndarray], tmp_path: Path, change: str, message: str
) -> None:
    index, rows, _ = built
    index.save(tmp_path)
    other = {
        "wider": np.hstack([rows, rows[:, :1]]),
        "more": np.vstack([rows, rows[:5]]),
        "other": catalogue(seed=7)[0],  # same count and dimension: another model of the same data
    }[change]

    with pytest.raises(IndexMismatchError, match=message):
        RecipeIndex.load(tmp_path, BACKENDS, other)


def test_an_unknown_backend_or_broken_files_are_refused(
    built: tuple[RecipeIndex, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    rows = built[1]
    built[0].save(tmp_path / "other")
    meta = json.loads((tmp_path / "other" / INDEX_META).read_text())
    (tmp_path / "other" / INDEX_META).write_text(json.dumps({**meta, "backend": "annoy"}))
    shutil.copytree(tmp_path / "other", tmp_path / "broken")
    (tmp_path / "broken" / INDEX_META).write_text(json.dumps(meta))
    (tmp_path / "broken" / GRAPH_FILE).write_bytes(b"not a graph")
    (tmp_path / "none").mkdir()

    with pytest.raises(IndexMismatchError, match="index built with 'annoy'; this server reads usearch"):
        RecipeIndex.load(tmp_path / "other", BACKENDS, rows)
    with pytest.raises(IndexMismatchError, match="the usearch index does not load"):
        RecipeIndex.load(tmp_path / "broken", BACKENDS, rows)
    with pytest.raises(IndexMismatchError, match="not a readable index description"):
        RecipeIndex.load(tmp_path / "none", BACKENDS, rows)
