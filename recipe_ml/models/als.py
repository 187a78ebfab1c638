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
        self._set_item_vectors(np.asarray(model.item_factors, dtype=np.float32))

    def _set_item_vectors(self, item_vectors: np.ndarray) -> None:
        self._item_vectors = np.ascontiguousarray(item_vectors)
        y = self._item_vectors.astype(np.float64)
        self._gram = y.T @ y

    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Exact ALS user step (``implicit``'s ``recalculate_user``) for each history.

        Solves (Y^T Y + reg I + (alpha - 1) Y_h^T Y_h) x = alpha sum_h(y) over the recipes ``h``.
        """
        out = np.zeros((len(histories), self.factors), dtype=np.float32)
        base = self._gram + self.regularization * np.eye(self.factors)
        for row, history in enumerate(histories):
            items = np.unique(np.asarray(history, dtype=np.int64))
            if items.size == 0:
                continue
            y_h = self._item_vectors[items].astype(np.float64)
            lhs = base + (self.alpha - 1.0) * (y_h.T @ y_h)
            out[row] = np.linalg.solve(lhs, self.alpha * y_h.sum(axis=0))
        return out

    def _load_arrays(self, path: Path) -> None:
        super()._load_arrays(path)
        self._set_item_vectors(self._item_vectors)
