"""The shipped graph: USearch's HNSW with cosine distance, rows kept as float16.

Why USearch (the benchmark's comparison is in docs/benchmarks.md): a small
binary wheel, no compiler at install; ``add`` inserts into a built graph under
any key; half precision halves the graph's copy of the rows, and that costs
no accuracy in the answers, since the graph only picks candidates that the
model then scores in float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import numpy as np
from usearch.index import BatchMatches, Index

from recipe_ml.retrieval.base import IndexParams, VectorGraph

GRAPH_FILE = "recipes.usearch"
SCALAR = "f16"


class USearchGraph(VectorGraph):
    """HNSW graph; searches on one thread (a runner is one process on a share of the cores)."""

    backend = "usearch"

    def __init__(self, index: Index, params: IndexParams) -> None:
        self._index = index
        self.params = params

    @classmethod
    def empty(cls, dim: int, params: IndexParams) -> Self:
        index = Index(
            ndim=dim,
            metric="cos",
            dtype=SCALAR,
            connectivity=params.connectivity,
            expansion_add=params.expansion_add,
            expansion_search=params.expansion_search,
        )
        return cls(index, params)

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        self._index.add(keys.astype(np.uint64), np.asarray(rows, np.float32))

    def search(self, queries: np.ndarray, count: int) -> np.ndarray:
        keys = np.full((len(queries), max(count, 0)), -1, dtype=np.int64)
        if count <= 0 or len(queries) == 0:
            return keys
        # A public setter that usearch leaves unannotated, so mypy sees the property as read-only.
        self._index.expansion_search = max(self.params.expansion_search, count)  # type: ignore[misc]
        matches = self._index.search(np.asarray(queries, np.float32), count, threads=1)
        if isinstance(matches, BatchMatches):
            found = matches.keys.astype(np.int64)
            keys[:] = np.where(np.arange(count)[None, :] < np.asarray(matches.counts)[:, None], found, -1)
        else:  # one query comes back as Matches, only its valid results
            keys[0, : len(matches.keys)] = matches.keys
        return keys

    @property
    def dim(self) -> int:
        return int(self._index.ndim)

    def __len__(self) -> int:
        return len(self._index)

    def nbytes(self) -> int:
        return int(self._index.serialized_length)

    def save(self, path: Path) -> None:
        self._index.save(str(path / GRAPH_FILE))

    @classmethod
    def load(cls, path: Path, params: IndexParams) -> Self:
        index = Index.restore(str(path / GRAPH_FILE))
        if index is None:
            raise ValueError(f"{path / GRAPH_FILE}: no usearch index")
        return cls(index, params)
