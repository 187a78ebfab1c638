"""The Two-Tower's user tower as numpy arrays: serving fold-in without torch.

The user tower is small (an embedding mean and two linear layers), so at save
time its weights are written as plain arrays and a server on the CPU folds
users in with numpy. The runner process then never imports torch, which
would otherwise be most of its memory. The forward pass is the torch
module's in evaluation mode (dropout is the identity there), so both give the
same vectors up to float32 rounding (``tests/recipe_ml/models`` checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

USER_TOWER_FILE = "user_tower.npz"


@dataclass(frozen=True)
class UserTower:
    """``relu(mean(bag[items]) @ w1 + b1) @ w2 + b2``, times ``scale``.

    ``w1`` and ``w2`` are stored as (in, out), the transpose of torch's
    ``nn.Linear.weight``, so the forward pass multiplies contiguous arrays.
    ``scale`` is the factor that turns the tower's output into a serving
    user vector (the Two-Tower's ``affinity_weight / temperature``).
    """

    bag: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    scale: float

    @property
    def dim(self) -> int:
        return int(self.w2.shape[1])

    def __call__(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(len(histories), dim) float32 user vectors; an empty history gives a zero vector."""
        out = np.zeros((len(histories), self.dim), dtype=np.float32)
        rows = [i for i, history in enumerate(histories) if len(history)]
        if not rows:
            return out
        lengths = np.fromiter((len(histories[i]) for i in rows), dtype=np.int64, count=len(rows))
        flat = np.concatenate([np.asarray(histories[i], dtype=np.int64) for i in rows])
        starts = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        means = np.add.reduceat(self.bag[flat], starts, axis=0) / lengths[:, None].astype(np.float32)
        hidden = means @ self.w1
        hidden += self.b1
        np.maximum(hidden, 0.0, out=hidden)
        vectors = hidden @ self.w2
        vectors += self.b2
        vectors *= np.float32(self.scale)
        out[rows] = vectors
        return out

    def save(self, path: Path) -> None:
        """Write the arrays to ``path / USER_TOWER_FILE``."""
        np.savez(
            path / USER_TOWER_FILE,
            bag=self.bag,
            w1=self.w1,
            b1=self.b1,
            w2=self.w2,
            b2=self.b2,
            scale=np.float64(self.scale),
        )

    @classmethod
    def load(cls, path: Path) -> UserTower:
        """Read what ``save`` wrote under the model directory ``path``."""
        with np.load(path / USER_TOWER_FILE) as arrays:
            return cls(
                bag=np.ascontiguousarray(arrays["bag"], dtype=np.float32),
                w1=np.ascontiguousarray(arrays["w1"], dtype=np.float32),
                b1=np.ascontiguousarray(arrays["b1"], dtype=np.float32),
                w2=np.ascontiguousarray(arrays["w2"], dtype=np.float32),
                b2=np.ascontiguousarray(arrays["b2"], dtype=np.float32),
                scale=float(arrays["scale"]),
            )
