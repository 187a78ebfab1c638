"""The shared implementation of the ``Recommender`` shape, as ``implicit``'s ``MatrixFactorizationBase``.

Every model of the project keeps its fitted state as arrays: user vectors,
recipe vectors, maybe a recipe bias. ``VectorRecommender`` holds them, scores
with their product, and saves and loads them; a model only fits them and
folds users in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from recipe_ml.models.base import Recommender

BIAS_NEIGHBOURS = 25
"""Trained recipes whose median bias a folded-in recipe gets: those with about as many users."""


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

    def fold_in_items(self, user_lists: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """The mean vector of the recipes those users interacted with in training, each weighted by how many of
        them did over the square root of its popularity (so the recipes they share, not the ones everybody
        has, place it), and the bias of the trained recipes with about as many users (``_bias_for``). A recipe
        without users gets a zero vector.

        Why not least squares onto the user vectors, as ALS does: a model whose user vectors are not fitted
        alternately with its recipe vectors (the Two-Tower's user tower) does not invert that way, while the
        recipes its users share place a trained recipe, left out, much nearer its own vector. Why that bias:
        a model's bias is its popularity prior (the Two-Tower's), which training reads from how many users a
        recipe has, so a recipe folded in from as many users is given as much.
        """
        vectors = self.item_vectors
        weight_of = 1.0 / np.sqrt(np.asarray(self.seen.sum(axis=0)).ravel() + 1.0)
        out = np.zeros((len(user_lists), vectors.shape[1]), dtype=np.float32)
        counts = np.zeros(len(user_lists), dtype=np.int64)
        for row, users in enumerate(user_lists):
            users = np.unique(np.asarray(users, dtype=np.int64))
            counts[row] = users.size
            shared = np.asarray(self.seen[users].sum(axis=0)).ravel() * weight_of if users.size else weight_of * 0
            if shared.sum() > 0:
                out[row] = (shared @ vectors) / shared.sum()
        return out, None if self.item_bias is None else self._bias_for(self.item_bias, counts)

    _bias_by_users: tuple[np.ndarray, np.ndarray] | None = None
    """(the trained recipes' numbers of users, sorted; their biases in that order), made on first use."""

    def _bias_for(self, bias: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """(len(counts),) for each count, the median ``bias`` of the ``BIAS_NEIGHBOURS`` trained recipes whose
        numbers of users are nearest it."""
        if self._bias_by_users is None:
            users = np.diff(self.seen.tocsc().indptr)
            order = np.argsort(users, kind="stable")
            self._bias_by_users = (users[order], bias[order])
        by_users, biases = self._bias_by_users
        out = np.empty(len(counts), dtype=np.float32)
        for row, count in enumerate(counts):
            at = int(np.searchsorted(by_users, count))
            first = int(np.clip(at - BIAS_NEIGHBOURS // 2, 0, max(by_users.size - BIAS_NEIGHBOURS, 0)))
            out[row] = np.median(biases[first : first + BIAS_NEIGHBOURS])
        return out

    def score(self, user_vectors: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """Scores (n, n_items): ``user_vectors @ item_vectors.T`` plus the bias (of the recipes ``columns``)."""
        scores = self._dot_items(user_vectors, columns)
        bias = self.item_bias
        if bias is not None:
            scores += bias if columns is None else bias[columns]
        return np.asarray(scores, dtype=np.float32)

    def affinity(self, user_vectors: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray | None:
        """The personal part of ``score`` (n, n_items): the dot product without the bias.

        None for a model without per-user signal (popularity). It ranks
        recipes by how much they suit the user rather than how popular they
        are, which is what the personal slots show.
        """
        return np.asarray(self._dot_items(user_vectors, columns), dtype=np.float32)

    _item_columns: tuple[np.ndarray, np.ndarray] | None = None
    """(the ``item_vectors`` it was made from, their transpose as a C-contiguous copy)."""

    def _dot_items(self, user_vectors: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """``user_vectors @ item_vectors.T`` (of the recipes ``columns`` only, when given).

        For several rows, against a C-contiguous copy of the transpose (kept
        while ``item_vectors`` is the same array): BLAS runs the product of a
        batch several times faster on it than on the transposed view, with
        bit-identical results. One row is a matrix-vector product, as fast on
        the view, and stays on it: the copy would change its summation order.
        """
        vectors = self.item_vectors
        if columns is not None:
            candidates: np.ndarray = user_vectors @ vectors[columns].T
            return candidates
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
