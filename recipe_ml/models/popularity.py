"""Most-popular ranking: the hard baseline of this dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recipe_ml.data import Interactions
from recipe_ml.models.base import Recommender


class PopularityRecommender(Recommender):
    """Every user gets the same ranking: log interaction count, scaled to [0, 1].

    In the shared vector shape: one dimension, every user vector is ``[1.0]``.
    Recency of live events is added by the serving layer from the live store,
    since the historical data carries no timestamps.
    """

    kind = "popularity"
    supports_similarity = False

    def __init__(self) -> None:
        self._item_vectors = np.zeros((0, 1), dtype=np.float32)

    def fit(self, data: Interactions) -> None:
        self._set_data(data)
        counts = np.asarray(self.seen.sum(axis=0)).ravel()
        log_counts = np.log1p(counts)
        top = log_counts.max() if log_counts.size else 0.0
        scaled = log_counts / top if top > 0 else log_counts
        self._item_vectors = scaled.astype(np.float32).reshape(-1, 1)

    def hyper_parameters(self) -> dict[str, Any]:
        return {}

    @property
    def user_vectors(self) -> np.ndarray:
        return np.ones((len(self.users), 1), dtype=np.float32)

    @property
    def item_vectors(self) -> np.ndarray:
        return self._item_vectors

    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.ones((len(histories), 1), dtype=np.float32)

    def _save_arrays(self, path: Path) -> None:
        np.save(path / "item_vectors.npy", self._item_vectors)

    def _load_arrays(self, path: Path) -> None:
        self._item_vectors = np.load(path / "item_vectors.npy")
