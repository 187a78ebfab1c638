"""The recipe index: a nearest-neighbour graph over the recipes, its file format, and the checks that it fits.

A model scores ``user . recipe + bias``: with recipe rows ``x = [v, b]`` and
queries ``q = [u, 1]`` that is the inner product ``q . x``. An HNSW graph
built on inner products finds the top 20 of a query but not its top 500
(the longest rows are everyone's neighbours, so a search never leaves them),
and the ranking needs deep lists: MMR re-ranks a pool of 50, and a filter
keeping one recipe in ten needs ten times more. So the graph is built on
cosines after the classic reduction of inner product to cosine (Bachrach et
al., 2014): each row gets one more coordinate ``sqrt(R^2 - |x|^2)``, which
puts every row at length ``R``; the query gets a 0 there, so its cosine to a
row is ``q . x / (|q| R)``, the model's order. That reduction degrades when a
few rows are much longer than the rest (``R`` is then far from a typical
row), so the longest ``tail_share`` of the rows stay out of the graph and are
candidates of every query, scored exactly.

Keys are recipe indices (``IdMap`` positions): an index built from ``n``
recipes holds ``0 … n-1``, and ``add`` appends the next ones, which is how
recipes that appear after training join it (a row longer than ``R`` joins
the exact tail).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

INDEX_META = "index.json"
TAIL_FILE = "tail.npy"
FINGERPRINT_ROWS = 1024
"""Rows (evenly spaced) whose bytes identify the recipes an index was built from."""


def fingerprint(rows: np.ndarray) -> str:
    """A digest of ``rows`` (``item_rows``) from ``FINGERPRINT_ROWS`` of them: cheap at load, for any count.

    Two models of the same data have the same recipe count and dimension; the
    digest tells their vectors apart, so an index of another model is refused.
    """
    step = max(len(rows) // FINGERPRINT_ROWS, 1)
    return hashlib.sha256(np.ascontiguousarray(rows[::step], dtype=np.float32).tobytes()).hexdigest()


class IndexMismatchError(ValueError):
    """A saved index that cannot serve its model (another dimension, recipe count or backend)."""


@dataclass(frozen=True)
class IndexParams:
    """The graph's build and search parameters (saved with the index).

    ``connectivity`` is the graph's links per node (HNSW's M), ``expansion_add``
    the candidate list while building (efConstruction), ``expansion_search``
    the least candidate list while searching (ef; a search for more results
    widens it to the count asked), ``tail_share`` the share of the longest
    rows scored exactly instead. The defaults are the benchmark's choice for
    recall@10 >= 0.95 at a million recipes (docs/benchmarks.md).
    """

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128
    tail_share: float = 0.01


def item_rows(item_vectors: np.ndarray, item_bias: np.ndarray | None) -> np.ndarray:
    """(n, dim + 1) float32 ``[v, b]`` (b = 0 for a model without bias): the model's score is ``[u, 1] . [v, b]``."""
    bias = np.zeros(len(item_vectors), dtype=np.float32) if item_bias is None else item_bias
    return np.hstack([item_vectors, bias[:, None]]).astype(np.float32)


def query_rows(user_vectors: np.ndarray) -> np.ndarray:
    """(n, dim + 1) float32 ``[u, 1]``."""
    return np.hstack([user_vectors, np.ones((len(user_vectors), 1), dtype=np.float32)]).astype(np.float32)


class VectorGraph(ABC):
    """A library's cosine nearest-neighbour graph over keyed rows (the interchangeable backend)."""

    backend: ClassVar[str]
    """Stable name of the library, saved with the index."""

    @classmethod
    @abstractmethod
    def empty(cls, dim: int, params: IndexParams) -> Self:
        """A graph of no rows, of width ``dim``."""

    @abstractmethod
    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Insert ``rows`` under ``keys`` (int64)."""

    @abstractmethod
    def search(self, queries: np.ndarray, count: int) -> np.ndarray:
        """(n, count) int64 keys of the highest cosines per query, best first; -1 pads a short row."""

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def nbytes(self) -> int:
        """Bytes the graph takes in memory (its copy of the rows and its links)."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the library's own file into the directory ``path``."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, params: IndexParams) -> Self:
        """Read what ``save`` wrote."""


class RecipeIndex:
    """The graph of the recipes in cosine form, and the exact tail of the longest rows."""

    def __init__(
        self, graph: VectorGraph, radius: float, tail: np.ndarray, params: IndexParams, built_from: tuple[int, str]
    ) -> None:
        self.graph = graph
        self.radius = radius
        """``R``: the length every graph row is brought to; a row longer than it joins the tail."""
        self.tail = tail
        """Sorted recipe indices scored exactly by every query."""
        self.params = params
        self.built_from = built_from
        """(rows, ``fingerprint``) of the rows the index was built from; rows added later come after them."""

    @classmethod
    def build(cls, rows: np.ndarray, graph: type[VectorGraph], params: IndexParams | None = None) -> RecipeIndex:
        """An index of ``rows`` (``item_rows``), keys ``0 … n-1``."""
        params = params or IndexParams()
        norms = np.linalg.norm(rows, axis=1)
        cut = int(len(rows) * (1.0 - params.tail_share))
        radius = float(np.sort(norms)[cut - 1]) if cut > 0 else 0.0
        empty = graph.empty(rows.shape[1] + 1, params)
        index = cls(empty, radius, np.zeros(0, dtype=np.int64), params, (len(rows), fingerprint(rows)))
        index.add(rows)
        return index

    def add(self, rows: np.ndarray) -> None:
        """Append ``rows`` under the next keys: into the graph, or the tail when longer than ``R``."""
        keys = np.arange(len(self), len(self) + len(rows), dtype=np.int64)
        norms = np.linalg.norm(rows, axis=1)
        inside = norms <= self.radius
        if inside.any():
            lift = np.sqrt(np.maximum(self.radius**2 - norms[inside] ** 2, 0.0))
            self.graph.add(keys[inside], np.hstack([rows[inside], lift[:, None]]).astype(np.float32))
        self.tail = np.union1d(self.tail, keys[~inside])

    def search(self, queries: np.ndarray, count: int) -> np.ndarray:
        """(n, count) recipe indices of the graph's best inner products per ``[u, 1]`` query (the tail apart)."""
        lifted = np.hstack([queries, np.zeros((len(queries), 1), dtype=np.float32)])
        return self.graph.search(lifted, min(count, len(self.graph)))

    def __len__(self) -> int:
        return len(self.graph) + len(self.tail)

    @property
    def dim(self) -> int:
        """Width of the recipe rows ``[v, b]`` (the graph's rows have one more coordinate)."""
        return self.graph.dim - 1

    def nbytes(self) -> int:
        return self.graph.nbytes() + int(self.tail.nbytes)

    def save(self, path: Path) -> None:
        """Write the graph, the tail and ``index.json`` (backend, dimension, count, ``R``, parameters) into ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        self.graph.save(path)
        np.save(path / TAIL_FILE, self.tail)
        meta = {
            "backend": self.graph.backend,
            "dim": self.dim,
            "count": len(self),
            "radius": self.radius,
            "built_from": {"rows": self.built_from[0], "fingerprint": self.built_from[1]},
            "params": asdict(self.params),
        }
        (path / INDEX_META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(
        cls, path: Path, backends: Mapping[str, type[VectorGraph]], rows: np.ndarray, source: str = "model"
    ) -> RecipeIndex:
        """The index saved in ``path``, checked against the recipe ``rows`` (``item_rows``) it must hold.

        Raises ``IndexMismatchError`` saying what differs: an index of another
        model (or of this one before a retraining) would return wrong recipes
        under the right ids, so it is refused rather than served.
        """
        meta_path = path / INDEX_META
        try:
            meta = json.loads(meta_path.read_text())
            backend, saved_dim, saved_count = str(meta["backend"]), int(meta["dim"]), int(meta["count"])
            radius, params = float(meta["radius"]), IndexParams(**meta["params"])
            built_from = (int(meta["built_from"]["rows"]), str(meta["built_from"]["fingerprint"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexMismatchError(f"{meta_path}: not a readable index description ({exc})") from None
        if backend not in backends:
            raise IndexMismatchError(f"{path}: index built with {backend!r}; this server reads {', '.join(backends)}")
        dim, count = rows.shape[1], len(rows)
        if saved_dim != dim:
            raise IndexMismatchError(f"{path}: index of dimension {saved_dim}, the {source} needs {dim}")
        if saved_count != count:
            raise IndexMismatchError(f"{path}: index of {saved_count} recipes, the {source} has {count}")
        if built_from[0] > count or fingerprint(rows[: built_from[0]]) != built_from[1]:
            raise IndexMismatchError(f"{path}: index built from other recipe vectors than the {source}'s")
        try:
            graph = backends[backend].load(path, params)
            index = cls(graph, radius, np.load(path / TAIL_FILE), params, built_from)
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexMismatchError(f"{path}: the {backend} index does not load ({exc})") from None
        if index.dim != dim or len(index) != count:
            raise IndexMismatchError(
                f"{path}: the files hold {len(index)} recipes of dimension {index.dim}, "
                f"their description says {saved_count} of {saved_dim}"
            )
        return index
