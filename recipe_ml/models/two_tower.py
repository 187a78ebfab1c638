"""Two-Tower recommender in PyTorch: a user tower over the user's recipes, a recipe tower.

Torch is imported only to train, or to fold in on a CUDA device (the torch
modules are in ``recipe_ml.models.two_tower_nets``): on the CPU a loaded
model folds users in with the numpy ``UserTower``, so a server process that
serves it never imports torch.

Loss, and why: a full softmax over the whole catalogue (multinomial
likelihood, as in Mult-VAE/DAE). With ~8.4k recipes the full softmax costs one
(batch x 128) @ (128 x n_recipes) product per step, so there is no need for
sampled negatives and none of their bias: every recipe is a negative, weighted
by how much the model believes in it. Unlike uniformly sampled negatives, it
keeps the popularity signal that dominates this dataset, and a fixed
per-recipe bias (the popularity prior) carries that signal explicitly, so the
towers learn what a user adds to it. Training is denoising: each
epoch a random part of every user's recipes is hidden from the user tower,
which must still rank the whole history (hidden recipes included) high. That is
exactly the serving task: embed a user from a partial history (fold-in), rank
what they will like next. With ``hidden_targets`` only the hidden recipes are
targets (a split of each history into input and targets).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recipe_ml.config import get_settings
from recipe_ml.data import FSA_RANGE, Interactions
from recipe_ml.models.popularity import check_weighting, popularity_prior
from recipe_ml.models.user_tower import USER_TOWER_FILE, UserTower
from recipe_ml.models.vectors import VectorRecommender

if TYPE_CHECKING:
    import torch

    from recipe_ml.models.two_tower_nets import RecipeEncoder, UserEncoder

EMBEDDING_DIM = 128
"""Width of the user and recipe vectors (the towers' output)."""
WHO_MAX = 7.0
"""Highest WHO score in the health data (number of guidelines met)."""


def recipe_features(fsa: np.ndarray, who: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(n_items, 5) float32: scaled health scores with known flags, log popularity in [0, 1]."""
    low, high = FSA_RANGE
    fsa_known = ~np.isnan(fsa)
    who_known = ~np.isnan(who)
    log_counts = np.log1p(counts.astype(np.float64))
    top = log_counts.max() if log_counts.size and log_counts.max() > 0 else 1.0
    return np.stack(
        [
            np.where(fsa_known, (np.nan_to_num(fsa) - low) / (high - low), 0.0),
            fsa_known,
            np.where(who_known, np.nan_to_num(who) / WHO_MAX, 0.0),
            who_known,
            log_counts / top,
        ],
        axis=1,
    ).astype(np.float32)


class TwoTowerRecommender(VectorRecommender):
    """User tower over the recipes a user interacted with; recipe tower over id + features.

    Training logits: ``user . recipe / temperature + prior_weight * prior``,
    the prior (``popularity_prior``) frozen. Serving score: ``prior +
    affinity_weight * user . recipe / temperature`` (the weights are folded
    into the exported vectors and bias). Without a personal scorer,
    ``personal_slots``: the last slots of the top 10 go to the best recipes by
    affinity (``user . recipe``).

    Defaults come from validation (``recipe_ml.evaluation.report`` reports the curve per
    epoch). On this popularity-dominated data the towers' dot product added to
    the prior only lowered nDCG, so it is a small tie-break, and
    personalisation comes from the personal positions. ``prior_weight`` sets
    what the towers learn: with the full prior in training, the niche
    residual; without it, popularity again; 0.65 lands in between.
    """

    kind = "two_tower"

    def __init__(
        self,
        epochs: int = 3,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        dropout: float = 0.2,
        input_keep: float = 0.5,
        temperature: float = 1.0,
        batch_size: int = 512,
        hidden_targets: bool = False,
        prior: str = "five_star",
        prior_weight: float = 0.65,
        affinity_weight: float = 0.05,
        personal_slots: int = 1,
        seed: int = 0,
    ) -> None:
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.input_keep = input_keep
        self.temperature = temperature
        self.batch_size = batch_size
        self.hidden_targets = hidden_targets
        check_weighting(prior)
        self.prior = prior
        self.prior_weight = prior_weight
        if affinity_weight <= 0:
            raise ValueError(f"affinity_weight must be > 0 (it scales the user vectors), got {affinity_weight}")
        self.affinity_weight = affinity_weight
        self.personal_slots = personal_slots
        self.seed = seed
        self._init_vectors(EMBEDDING_DIM)
        self._item_bias = np.zeros(0, dtype=np.float32)
        self._user_tower: UserTower | None = None
        """The user tower as numpy arrays: fold-in on the CPU."""
        self._user_encoder: UserEncoder | None = None
        """The user tower as a torch module, on ``_device``: fold-in on CUDA (and training)."""
        self._device = "cpu"

    def use_device(self, device: str) -> None:
        """Train and fold in on ``device`` ("cpu" or "cuda"); vectors always come back as numpy.

        On the CPU, fold-in is numpy and torch is not imported; on CUDA it is torch's.
        """
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(
                    f"DEVICE={device!r} but torch sees no CUDA device (this torch build: {torch.__version__})"
                )
        self._device = device
        self._user_encoder = None  # rebuilt on the new device when first needed

    saved_arrays = ("user_vectors", "item_vectors", "item_bias")

    def fit(self, data: Interactions) -> None:
        for _ in self.fit_epochs(data):
            pass

    def fit_epochs(self, data: Interactions, export_every_epoch: bool = False) -> Iterator[int]:
        """``Recommender.fit_epochs``: ``epochs`` passes of denoising training, exported as it says."""
        import torch

        from recipe_ml.models.two_tower_nets import RecipeEncoder, UserEncoder

        self._set_data(data)
        torch.manual_seed(self.seed)
        torch.set_num_threads(get_settings().torch_threads)
        rng = np.random.default_rng(self.seed)
        n_users, n_items = self.seen.shape
        fsa, who = data.health.aligned(data.items) if data.health is not None else (self.item_fsa, self.item_fsa)
        counts = np.asarray(self.seen.sum(axis=0)).ravel()
        features = torch.from_numpy(recipe_features(fsa, who, counts)).to(self._device)

        user_encoder = UserEncoder(n_items, EMBEDDING_DIM, self.dropout).to(self._device)
        recipe_encoder = RecipeEncoder(n_items, EMBEDDING_DIM, self.dropout).to(self._device)
        prior = torch.from_numpy(popularity_prior(data, self.prior)).to(self._device)
        bias = prior * self.prior_weight  # frozen: the towers learn what a user adds to it
        params = [*user_encoder.parameters(), *recipe_encoder.parameters()]
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

        for epoch in range(self.epochs):
            user_encoder.train()
            recipe_encoder.train()
            order = rng.permutation(n_users)
            for start in range(0, n_users, self.batch_size):
                rows = self.seen[order[start : start + self.batch_size]]
                loss = self._batch_loss(rows, rng, user_encoder, recipe_encoder(features), bias)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            if export_every_epoch or epoch == self.epochs - 1:
                self._export(user_encoder, recipe_encoder, features, prior)
            yield epoch + 1

    def _export(
        self, user_encoder: UserEncoder, recipe_encoder: RecipeEncoder, features: torch.Tensor, prior: torch.Tensor
    ) -> None:
        """Serving state from the towers: recipe vectors, biases, the user tower, every training user's vector."""
        import torch

        from recipe_ml.models.two_tower_nets import tower_from_encoder

        recipe_encoder.eval()
        with torch.no_grad():
            self._item_vectors = recipe_encoder(features).cpu().numpy().copy()
        self._item_bias = prior.cpu().numpy().copy()
        self._user_encoder = user_encoder.eval()
        self._user_tower = tower_from_encoder(user_encoder, self._scale)
        self._user_vectors = self.fold_in([self.history(u) for u in range(len(self.users))])

    def _batch_loss(
        self,
        rows: sp.csr_matrix,
        rng: np.random.Generator,
        user_encoder: UserEncoder,
        item_vectors: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        """Multinomial log-likelihood of the user's recipes given a random part of them."""
        import torch

        n_rows = rows.shape[0]
        lengths = np.diff(rows.indptr)
        user_of_entry = np.repeat(np.arange(n_rows), lengths)
        keep = rng.random(rows.nnz) < self.input_keep
        # A user whose whole history was hidden keeps their first recipe: a bag is never empty.
        empty = np.flatnonzero((np.bincount(user_of_entry[keep], minlength=n_rows) == 0) & (lengths > 0))
        keep[rows.indptr[empty]] = True
        offsets = np.searchsorted(user_of_entry[keep], np.arange(n_rows))
        users = user_encoder(
            torch.from_numpy(rows.indices[keep].astype(np.int64)).to(self._device),
            torch.from_numpy(offsets.astype(np.int64)).to(self._device),
        )
        logits = users @ item_vectors.T / self.temperature + bias
        target_rows = rows.copy()
        if self.hidden_targets:
            target_rows.data = np.where(keep, 0.0, rows.data).astype(np.float32)
        target = torch.from_numpy(target_rows.toarray()).to(self._device)
        log_probs = torch.log_softmax(logits, dim=1)
        return -((log_probs * target).sum(dim=1) / target.sum(dim=1).clamp(min=1.0)).mean()

    @property
    def _scale(self) -> float:
        """From the user tower's output to a serving user vector."""
        return self.affinity_weight / self.temperature

    @property
    def user_tower(self) -> UserTower:
        """The user tower's weights as numpy arrays (what the CPU folds in with)."""
        if self._user_tower is None:
            raise RuntimeError("two-tower model is not fitted")
        return self._user_tower

    def fold_in(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The user tower on each history (scaled to serving): the same function that made ``user_vectors``."""
        if self._device == "cpu":
            return self.user_tower(histories)
        from recipe_ml.models.two_tower_nets import encoder_from_tower, fold_in_torch

        if self._user_encoder is None:
            self._user_encoder = encoder_from_tower(self.user_tower).to(self._device)
        return fold_in_torch(self._user_encoder, histories, self._scale)

    def _save_arrays(self, path: Path) -> None:
        super()._save_arrays(path)
        self.user_tower.save(path)

    def _load_arrays(self, path: Path) -> None:
        super()._load_arrays(path)
        if (path / USER_TOWER_FILE).is_file():
            self._user_tower = UserTower.load(path)
        else:  # saved before the numpy tower existed: read the torch weights once
            import torch

            from recipe_ml.models.two_tower_nets import UserEncoder, tower_from_encoder

            encoder = UserEncoder(len(self.items), EMBEDDING_DIM, self.dropout)
            encoder.load_state_dict(torch.load(path / "user_encoder.pt", weights_only=True, map_location="cpu"))
            self._user_tower = tower_from_encoder(encoder, self._scale)
