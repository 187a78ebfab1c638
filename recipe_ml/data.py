"""Interaction data: raw-id ↔ index maps and the user × recipe matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


class IdMap:
    """Sorted raw ids ↔ dense indices 0..n-1 (binary search, no dict)."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        if self.ids.size and np.any(np.diff(self.ids) <= 0):
            raise ValueError("IdMap ids must be strictly increasing")

    def __len__(self) -> int:
        return int(self.ids.size)

    def __contains__(self, raw_id: object) -> bool:
        return isinstance(raw_id, (int, np.integer)) and self.index_of(int(raw_id)) is not None

    def index_of(self, raw_id: int) -> int | None:
        """Index of ``raw_id``, or None when it is unknown."""
        pos = int(np.searchsorted(self.ids, raw_id))
        return pos if pos < self.ids.size and self.ids[pos] == raw_id else None

    def indices(self, raw_ids: np.ndarray) -> np.ndarray:
        """Indices of ``raw_ids``, -1 for unknown ones."""
        raw = np.asarray(raw_ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, raw)
        pos_clipped = np.minimum(pos, max(self.ids.size - 1, 0))
        known = (pos < self.ids.size) & (self.ids[pos_clipped] == raw) if self.ids.size else np.zeros(raw.shape, bool)
        return np.where(known, pos_clipped, -1)


@dataclass(frozen=True)
class Interactions:
    """Positive interactions as parallel index arrays over fixed id maps."""

    users: IdMap
    items: IdMap
    user_index: np.ndarray
    item_index: np.ndarray
    rating: np.ndarray

    def __len__(self) -> int:
        return int(self.user_index.size)

    def matrix(self) -> sp.csr_matrix:
        """users × recipes, 1.0 per (deduplicated) interaction."""
        data = np.ones(self.user_index.size, dtype=np.float32)
        m = sp.csr_matrix((data, (self.user_index, self.item_index)), shape=(len(self.users), len(self.items)))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m
