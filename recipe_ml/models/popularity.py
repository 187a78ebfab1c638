"""Most-popular ranking: the hard baseline of this dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recipe_ml.data import Interactions
from recipe_ml.models.vectors import VectorRecommender

WEIGHTINGS = ("count", "five_star")
TIE_BREAK = 1e-3
"""Weight of the total count in the ``five_star`` prior: it only orders recipes with equal 5-star counts."""


def check_weighting(weighting: str) -> None:
    """Reject an unknown popularity weighting with the known ones in the message."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown popularity weighting {weighting!r}; known: {', '.join(WEIGHTINGS)}")


def popularity_prior(data: Interactions, weighting: str = "five_star") -> np.ndarray:
    """(n_items,) float32 log-popularity of each recipe in ``data``.

    ``count``: ``log1p(interactions)``, the plain baseline. ``five_star``:
    ``log1p(5-star ratings) + 1e-3 * log1p(interactions)``: on validation it
    beats the plain count (the report has the figures), while weighting
    4-stars, penalising low ratings or weighting by user activity did not
    help further. Shared by the popularity model and the Two-Tower bias.
    """
    check_weighting(weighting)
    n_items = len(data.items)
    counts = np.asarray(data.matrix().sum(axis=0)).ravel()
    prior = np.log1p(counts)
    if weighting == "five_star":
        fives = np.bincount(data.item_index[data.rating == 5], minlength=n_items)
        prior = np.log1p(fives) + TIE_BREAK * prior
    return np.asarray(prior, dtype=np.float32)


class PopularityRecommender(VectorRecommender):
    """Every user gets the same ranking: the popularity prior, scaled to [0, 1].

    In the shared vector shape: one dimension, every user vector is ``[1.0]``.
    Recency of live events is added by the serving layer from the live store,
    since the historical data carries no timestamps.
    """

    kind = "popularity"
    supports_similarity = False
    saved_arrays = ("item_vectors",)

    def __init__(self, weighting: str = "five_star") -> None:
        check_weighting(weighting)
        self.weighting = weighting
        self._init_vectors(1)

    def fit(self, data: Interactions) -> None:
        self._set_data(data)
        prior = popularity_prior(data, self.weighting)
        top = prior.max() if prior.size else 0.0
        scaled = prior / top if top > 0 else prior
        self._item_vectors = scaled.astype(np.float32).reshape(-1, 1)

    @property
    def user_vectors(self) -> np.ndarray:
        return np.ones((len(self.users), 1), dtype=np.float32)

    def affinity(self, user_vectors: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray | None:
        """None: every user gets the same ranking, there is no personal part."""
        return None

    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.ones((len(histories), 1), dtype=np.float32)

    def fold_in_items(self, user_lists: Sequence[np.ndarray]) -> tuple[np.ndarray, None]:
        """The lowest popularity: a recipe nobody rated in training is ranked by its live trending alone."""
        return np.zeros((len(user_lists), 1), dtype=np.float32), None
