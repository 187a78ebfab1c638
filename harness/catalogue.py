"""Synthetic catalogues shaped like a trained model: many more recipes and users, the same geometry.

The scale benchmark and the retrieval tests need catalogues of 20k to 1M
recipes, which the data does not have. They are drawn from a fitted model:

- directions from a Gaussian with the trained vectors' mean and covariance
  (its eigen-decomposition: the same spectrum, so as many directions matter);
- norms resampled from the trained vectors' norms, and for recipes jointly
  with their bias (the popularity prior), which keeps the two's correlation;
- each user's history drawn with probability growing with the recipe's bias
  (popular recipes are seen more often), its length from the trained users'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recipe_ml.data import IdMap, Interactions
from recipe_ml.models.base import Recommender
from recipe_ml.models.vectors import VectorRecommender


@dataclass(frozen=True)
class Shape:
    """What is kept of a trained model to draw more of it."""

    kind: str
    item_mean: np.ndarray
    item_basis: np.ndarray
    """(dim, dim) eigenvectors scaled by the square roots of their eigenvalues (the covariance's factor)."""
    item_norms: np.ndarray
    item_bias: np.ndarray | None
    """Biases of the same recipes as ``item_norms``, drawn with them; None for a model without bias."""
    user_mean: np.ndarray
    user_basis: np.ndarray
    user_norms: np.ndarray
    history_lengths: np.ndarray

    @classmethod
    def of(cls, model: Recommender) -> Shape:
        items, users = model.item_vectors.astype(np.float64), model.user_vectors.astype(np.float64)
        return cls(
            kind=model.kind,
            item_mean=items.mean(axis=0),
            item_basis=_factor(items),
            item_norms=np.linalg.norm(items, axis=1),
            item_bias=None if model.item_bias is None else model.item_bias.astype(np.float64),
            user_mean=users.mean(axis=0),
            user_basis=_factor(users),
            user_norms=np.linalg.norm(users, axis=1),
            history_lengths=np.maximum(np.diff(model.seen.indptr), 1),
        )


def _factor(vectors: np.ndarray) -> np.ndarray:
    """``Q sqrt(L)`` of the covariance ``Q L Q^T``: ``z @ factor.T`` has that covariance for a standard ``z``."""
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(vectors.T))
    factor: np.ndarray = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))
    return factor


def _draw(mean: np.ndarray, basis: np.ndarray, norms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(len(norms), dim) float32 Gaussian directions with the given norms."""
    vectors: np.ndarray = rng.standard_normal((len(norms), len(mean))) @ basis.T + mean
    vectors *= (norms / np.maximum(np.linalg.norm(vectors, axis=1), 1e-12))[:, None]
    return vectors.astype(np.float32)


class SyntheticRecommender(VectorRecommender):
    """A model whose vectors were drawn (``draw_model``), not fitted: scored and served as any other."""

    kind = "synthetic"
    saved_arrays = ("user_vectors", "item_vectors", "item_bias")

    def __init__(self, user_norm: float = 1.0) -> None:
        self.user_norm = user_norm
        self._init_vectors(0)

    def fit(self, data: Interactions) -> None:
        raise NotImplementedError("a synthetic model is drawn by harness.catalogue.draw_model, not fitted")

    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The mean direction of the history's recipes at the typical user norm (a stand-in for a user tower)."""
        out = np.zeros((len(histories), self.item_vectors.shape[1]), dtype=np.float32)
        for row, history in enumerate(histories):
            if len(history):
                mean = self.item_vectors[np.asarray(history, dtype=np.int64)].mean(axis=0)
                out[row] = mean * (self.user_norm / max(float(np.linalg.norm(mean)), 1e-12))
        return out


def draw_model(shape: Shape, n_items: int, n_users: int, seed: int = 0) -> SyntheticRecommender:
    """A model of ``n_items`` recipes and ``n_users`` users drawn from ``shape``; ids are ``1 … n``."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(shape.item_norms), n_items)
    model = SyntheticRecommender(user_norm=float(np.median(shape.user_norms)))
    model._item_vectors = _draw(shape.item_mean, shape.item_basis, shape.item_norms[picks], rng)
    model._item_bias = None if shape.item_bias is None else shape.item_bias[picks].astype(np.float32)
    model._user_vectors = _draw(shape.user_mean, shape.user_basis, rng.choice(shape.user_norms, n_users), rng)
    model.items = IdMap(np.arange(1, n_items + 1, dtype=np.int64))
    model.users = IdMap(np.arange(1, n_users + 1, dtype=np.int64))
    model.item_fsa = rng.choice(np.arange(4, 13, dtype=np.float32), n_items)
    popularity = np.exp(model._item_bias - model._item_bias.max()) if model._item_bias is not None else None
    lengths = np.minimum(rng.choice(shape.history_lengths, n_users), n_items)
    rows = np.repeat(np.arange(n_users), lengths)
    p = None if popularity is None else popularity / popularity.sum()
    cols = rng.choice(n_items, int(lengths.sum()), p=p)
    seen = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    seen.data[:] = 1.0  # a recipe drawn twice for one user is still one interaction
    model.seen = seen
    return model
