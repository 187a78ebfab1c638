"""The graph libraries the scale benchmark compares with the shipped one (``recipe_ml.retrieval.usearch_index``).

Benchmark-only (``faiss-cpu`` is in requirements-dev.txt): each implements
``VectorGraph``, so the benchmark swaps it into a model's ``RecipeIndex`` and
measures the same retrieval and ranking code with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np

from recipe_ml.retrieval.base import IndexParams, VectorGraph
from recipe_ml.retrieval.usearch_index import USearchGraph

FAISS_FILE = "recipes.faiss"


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12), np.float32)


class FaissGraph(VectorGraph):
    """faiss's ``IndexHNSWFlat`` (float32 rows) on unit rows: inner product of unit rows is the cosine."""

    backend = "faiss"

    def __init__(self, index: Any, params: IndexParams) -> None:
        self._index = index
        self.params = params

    @classmethod
    def empty(cls, dim: int, params: IndexParams) -> Self:
        import faiss

        hnsw = faiss.IndexHNSWFlat(dim, params.connectivity, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = params.expansion_add
        return cls(faiss.IndexIDMap2(hnsw), params)

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        self._index.add_with_ids(_unit(rows), keys.astype(np.int64))

    def search(self, queries: np.ndarray, count: int) -> np.ndarray:
        import faiss

        faiss.omp_set_num_threads(1)  # as the shipped graph: one thread per runner
        # faiss builds its Python API with SWIG; its type stubs lack the HNSW search parameters.
        search = faiss.SearchParametersHNSW(efSearch=max(self.params.expansion_search, count))  # type: ignore[attr-defined]
        _, keys = self._index.search(_unit(queries), count, params=search)
        return np.asarray(keys, dtype=np.int64)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def nbytes(self) -> int:
        import faiss

        return int(faiss.serialize_index(self._index).nbytes)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path / FAISS_FILE))

    @classmethod
    def load(cls, path: Path, params: IndexParams) -> Self:
        import faiss

        return cls(faiss.read_index(str(path / FAISS_FILE)), params)


GRAPHS: dict[str, type[VectorGraph]] = {USearchGraph.backend: USearchGraph, FaissGraph.backend: FaissGraph}
"""Every graph library the benchmark can measure, by name."""
