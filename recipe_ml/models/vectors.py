"""The shared implementation of the ``Recommender`` shape, as ``implicit``'s ``MatrixFactorizationBase``.

Every model of the project keeps its fitted state as arrays: user vectors,
recipe vectors, maybe a recipe bias. ``VectorRecommender`` holds them, scores
with their product, and saves and loads them; a model only fits them and
folds users in.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from recipe_ml.models.base import Recommender


class VectorRecommender(Recommender):
    """A ``Recommender`` whose fitted state is its vector arrays (``saved_arrays``)."""

    saved_arrays: ClassVar[tuple[str, ...]] = ("user_vectors", "item_vectors")
    """The fitted arrays ``save`` writes (``<name>.npy``) and ``load`` reads back into ``_<name>``."""

    _user_vectors: np.ndarray
    _item_vectors: np.ndarray
    _item_bias: np.ndarray | None = None

    def _init_vectors(self, dim: int) -> None:
        """Zero-size vectors of width ``dim``: the state of a model not fitted yet."""
        self._user_vectors = np.zeros((0, dim), dtype=np.float32)
        self._item_vectors = np.zeros((0, dim), dtype=np.float32)

    @property
    def user_vectors(self) -> np.ndarray:
        return self._user_vectors

    @property
    def item_vectors(self) -> np.ndarray:
        return self._item_vectors

    @property
    def item_bias(self) -> np.ndarray | None:
        return self._item_bias

    def score(self, user_vectors: np.ndarray) -> np.ndarray:
        """Scores (n, n_items): ``user_vectors @ item_vectors.T`` plus the bias."""
        scores = self._dot_items(user_vectors)
        bias = self.item_bias
        if bias is not None:
            scores += bias
        return np.asarray(scores, dtype=np.float32)

    def affinity(self, user_vectors: np.ndarray) -> np.ndarray | None:
        """The personal part of ``score`` (n, n_items): the dot product without the bias.

        None for a model without per-user signal (popularity). It ranks
        recipes by how much they suit the user rather than how popular they
        are, which is what the personal slots show.
        """
        return np.asarray(self._dot_items(user_vectors), dtype=np.float32)

    _item_columns: tuple[np.ndarray, np.ndarray] | None = None
    """(the ``item_vectors`` it was made from, their transpose as a C-contiguous copy)."""

    def _dot_items(self, user_vectors: np.ndarray) -> np.ndarray:
        """``user_vectors @ item_vectors.T``.

        For several rows, against a C-contiguous copy of the transpose (kept
        while ``item_vectors`` is the same array): BLAS runs the product of a
        batch several times faster on it than on the transposed view, with
        bit-identical results. One row is a matrix-vector product, as fast on
        the view, and stays on it: the copy would change its summation order.
        """
        vectors = self.item_vectors
        if user_vectors.shape[0] == 1:
            columns = vectors.T
        else:
            cached = self._item_columns
            if cached is None or cached[0] is not vectors:
                cached = self._item_columns = (vectors, np.ascontiguousarray(vectors.T))
            columns = cached[1]
        product: np.ndarray = user_vectors @ columns
        return product

    def _save_arrays(self, path: Path) -> None:
        """Write the ``saved_arrays``."""
        for name in self.saved_arrays:
            np.save(path / f"{name}.npy", getattr(self, f"_{name}"))

    def _load_arrays(self, path: Path) -> None:
        """Read back what ``_save_arrays`` wrote."""
        for name in self.saved_arrays:
            setattr(self, f"_{name}", np.load(path / f"{name}.npy"))
