"""The Two-Tower's torch modules: trained here, and run for fold-in only on a CUDA device.

Kept apart from ``recipe_ml.models.two_tower`` so that loading and serving a
trained Two-Tower on the CPU never imports torch: serving folds users in
with the numpy ``UserTower``, which ``tower_from_encoder`` exports from
``UserEncoder`` and ``encoder_from_tower`` turns back into one. The vector
width is the recommender's (``two_tower.EMBEDDING_DIM``), passed in: this
module never imports the one that imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from recipe_ml.models.user_tower import UserTower

HIDDEN_DIM = 256
N_FEATURES = 5
"""fsa, fsa known, who, who known, log popularity."""


class UserEncoder(nn.Module):
    """Mean of the embeddings of a user's recipes -> MLP -> ``dim``-d user vector."""

    def __init__(self, n_items: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(n_items, dim, mode="mean")
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(dim, HIDDEN_DIM),
            nn.ReLU(),
            nn.Linear(HIDDEN_DIM, dim),
        )

    def forward(self, items: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp(self.bag(items, offsets))
        return out


class RecipeEncoder(nn.Module):
    """Recipe id embedding + health/popularity features -> MLP -> ``dim``-d recipe vector."""

    def __init__(self, n_items: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items, dim)
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(dim + N_FEATURES, HIDDEN_DIM),
            nn.ReLU(),
            nn.Linear(HIDDEN_DIM, dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp(torch.cat([self.embedding.weight, features], dim=1))
        return out


def bags(histories: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """EmbeddingBag input (flat indices, offsets) for lists of recipe indices."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(histories) else np.zeros(0, np.int64)
    flat = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if len(histories) else np.zeros(0)
    return torch.from_numpy(flat.astype(np.int64)), torch.from_numpy(offsets.astype(np.int64))


def _linears(encoder: UserEncoder) -> tuple[nn.Linear, nn.Linear]:
    """The two linear layers of the user tower's MLP (after dropout; around the ReLU)."""
    first, last = encoder.mlp[1], encoder.mlp[3]
    assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
    return first, last


def tower_from_encoder(encoder: UserEncoder, scale: float) -> UserTower:
    """The numpy copy of ``encoder``'s weights (evaluation mode: dropout is the identity)."""
    first, last = _linears(encoder)

    def array(tensor: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)

    return UserTower(
        bag=array(encoder.bag.weight),
        w1=array(first.weight.T),
        b1=array(first.bias),
        w2=array(last.weight.T),
        b2=array(last.bias),
        scale=scale,
    )


def encoder_from_tower(tower: UserTower) -> UserEncoder:
    """A ``UserEncoder`` in evaluation mode holding ``tower``'s weights."""
    encoder = UserEncoder(tower.bag.shape[0], tower.dim, dropout=0.0)
    first, last = _linears(encoder)
    with torch.no_grad():
        encoder.bag.weight.copy_(torch.from_numpy(tower.bag))
        first.weight.copy_(torch.from_numpy(tower.w1.T.copy()))
        first.bias.copy_(torch.from_numpy(tower.b1))
        last.weight.copy_(torch.from_numpy(tower.w2.T.copy()))
        last.bias.copy_(torch.from_numpy(tower.b2))
    return encoder.eval()


def fold_in_torch(encoder: UserEncoder, histories: Sequence[np.ndarray], scale: float) -> np.ndarray:
    """``UserTower.__call__`` computed by torch on ``encoder``'s device."""
    out = np.zeros((len(histories), encoder.bag.embedding_dim), dtype=np.float32)
    nonempty = [i for i, h in enumerate(histories) if len(h)]
    if nonempty:
        device = encoder.bag.weight.device
        items, offsets = bags([histories[i] for i in nonempty])
        with torch.no_grad():
            vectors = encoder.eval()(items.to(device), offsets.to(device))
        out[nonempty] = (vectors * scale).cpu().numpy()
    return out
