"""Implicit-feedback matrix factorisation (Hu, Koren & Volinsky) with ``implicit``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from recipe_ml.data import Interactions
from recipe_ml.models.vectors import VectorRecommender


class ALSRecommender(VectorRecommender):
    """ALS on the binary user x recipe matrix, confidence ``alpha`` per interaction.

    ``implicit`` fits the factors; fold-in is the same closed-form least
    squares in numpy, so serving needs only the saved item factors. Defaults
    come from ``recipe-ml evaluate --tune-als`` on validation (the grid is in
    the report): on this sparse matrix only strong regularisation keeps ALS
    near the popularity baseline.
    """

    kind = "als"

    def __init__(
        self,
        factors: int = 128,
        regularization: float = 50.0,
        alpha: float = 4.0,
        iterations: int = 15,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self._init_vectors(factors)
        self._gram = np.zeros((factors, factors), dtype=np.float64)
        self._user_gram: np.ndarray | None = None
        """X^T X of the user factors, made on the first item fold-in (a runner that never folds items never pays)."""

    def fit(self, data: Interactions) -> None:
        from implicit.cpu.als import AlternatingLeastSquares  # training-only dependency

        self._set_data(data)
        model = AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
        )
        # implicit parallelises itself; a multi-threaded BLAS underneath only oversubscribes.
        with threadpool_limits(1, "blas"):
            model.fit(self.seen, show_progress=False)
        self._user_vectors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self._user_gram = None
        self._set_item_vectors(np.asarray(model.item_factors, dtype=np.float32))

    def _set_item_vectors(self, item_vectors: np.ndarray) -> None:
        self._item_vectors = np.ascontiguousarray(item_vectors)
        y = self._item_vectors.astype(np.float64)
        self._gram = y.T @ y

    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Exact ALS user step (``implicit``'s ``recalculate_user``) for each history.

        Solves (Y^T Y + reg I + (alpha - 1) Y_h^T Y_h) x = alpha sum_h(y) over the recipes ``h``.
        """
        return _least_squares(self._item_vectors, self._gram, histories, self.regularization, self.alpha)

    def fold_in_items(self, user_lists: Sequence[np.ndarray]) -> tuple[np.ndarray, None]:
        """Exact ALS item step (``implicit``'s ``recalculate_item``): ``fold_in`` with users and recipes swapped.

        Solves (X^T X + reg I + (alpha - 1) X_u^T X_u) y = alpha sum_u(x) over the users ``u``.
        """
        if self._user_gram is None:
            x = self._user_vectors.astype(np.float64)
            self._user_gram = x.T @ x
        return _least_squares(self._user_vectors, self._user_gram, user_lists, self.regularization, self.alpha), None

    def _load_arrays(self, path: Path) -> None:
        super()._load_arrays(path)
        self._set_item_vectors(self._item_vectors)


def _least_squares(
    factors: np.ndarray, gram: np.ndarray, rows: Sequence[np.ndarray], regularization: float, alpha: float
) -> np.ndarray:
    """One ALS half-step for each list of indices into ``factors`` (``gram`` = factors^T factors)."""
    dim = factors.shape[1]
    out = np.zeros((len(rows), dim), dtype=np.float32)
    base = gram + regularization * np.eye(dim)
    for row, indices in enumerate(rows):
        unique = np.unique(np.asarray(indices, dtype=np.int64))
        if unique.size == 0:
            continue
        chosen = factors[unique].astype(np.float64)
        out[row] = np.linalg.solve(base + (alpha - 1.0) * (chosen.T @ chosen), alpha * chosen.sum(axis=0))
    return out
