"""Fitting the personal policy on validation: the blend weight and the adaptive personal positions.

The policy (``recipe_ml.ranking.PersonalPolicy``) has three numbers. They are
chosen here, not by hand: for each blend weight the model ranks validation
with every fixed number of personal positions (0 to 10); a candidate rule
``positions = round(intercept + per_doubling * log2(history length))`` then
gives each user the ranking of their own number of positions, so every rule
of the grid is measured without ranking again. The rule kept has the best
nDCG@20 among those that reach the personalisation and coverage floors.
A two-fold check (fit on half the users, measure on the other half) says how
much of the gain is fitting noise.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recipe_ml.data import Histories, Interactions
from recipe_ml.evaluation.metrics import popularity_percentile
from recipe_ml.evaluation.protocol import metrics_of, rank_users
from recipe_ml.models.base import Recommender
from recipe_ml.ranking import PERSONAL_WINDOW, PersonalPolicy

BLEND_WEIGHTS = (0.0, 250.0, 500.0, 1000.0)
"""Blend weights tried, in units of the Two-Tower's score (a log-count prior); 0: personal positions only."""
INTERCEPTS = tuple(float(x) for x in np.arange(0.0, 8.5, 0.5))
PER_DOUBLING = (0.0, 0.5, 1.0, 1.5, 2.0)
PERSONALISATION_FLOOR = 0.55
"""The target is 0.5; the fit keeps a margin, since a new split's lists differ from validation's."""
COVERAGE_FLOOR = 0.15
FOLD_SEED = 1


class AffinityScorer:
    """Another model's affinity (its dot product without bias) as a personal scorer, for comparison only.

    The report compares the towers' dot product and ALS with EASE as the
    source of the personal picks, under the same head ranking; this adapter
    lets them fill the personal positions. Users are folded in from their
    recipes, as serving would.
    """

    def __init__(self, model: Recommender) -> None:
        self.model = model
        self.kind = model.kind

    @property
    def n_items(self) -> int:
        return len(self.model.items)

    def hyper_parameters(self) -> dict[str, float | int]:
        return {}

    def scores(self, histories: Histories) -> np.ndarray:
        affinity = self.model.affinity(self.model.fold_in(histories.rows()))
        if affinity is None:
            raise ValueError(f"{self.model.kind} has no per-user affinity")
        return affinity

    def fold_in_items(self, seen: sp.csr_matrix, user_lists: Sequence[np.ndarray]) -> sp.csr_matrix:
        raise NotImplementedError("a comparison scorer ranks the recipes of the evaluation only")

    def save(self, path: Path) -> None:
        raise NotImplementedError("a comparison scorer is never shipped")

    @classmethod
    def load(cls, path: Path, hyper_parameters: dict[str, Any]) -> AffinityScorer:
        raise NotImplementedError("a comparison scorer is never shipped")


@dataclass(frozen=True)
class Candidate:
    """One policy of the grid and its validation metrics."""

    policy: PersonalPolicy
    metrics: dict[str, float]
    positions: np.ndarray
    """(n_users,) personal positions of each validation user under this policy."""


@dataclass(frozen=True)
class PolicyFit:
    """The fitted policy, the grid it was chosen from, and the fixed-positions sweeps."""

    best: Candidate
    candidates: list[Candidate]
    fixed: dict[float, list[dict[str, float]]]
    """Per blend weight, metrics with 0..10 personal positions for every user."""
    held_out_gain: list[float]
    """nDCG@20 / popularity's on each half of the users, with the policy fitted on the other half."""


def fit_policy(
    model: Recommender,
    train: Interactions,
    validation: Interactions,
    baseline_per_user: np.ndarray,
    blend_weights: tuple[float, ...] = BLEND_WEIGHTS,
) -> PolicyFit:
    """Fit ``model``'s personal policy (it must have a personal scorer) on ``validation``.

    ``baseline_per_user`` is the popularity baseline's per-user nDCG@20 on the
    same users, for the two-fold check. The model's policy is left as it was.
    """
    if model.personal is None or model.policy is None:
        raise ValueError(f"{model.kind} has no personal scorer to fit a policy for")
    shipped = model.policy
    relevant = validation.matrix()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    seen = train.matrix()
    lengths = np.diff(seen.indptr)[users]
    percentile = popularity_percentile(np.asarray(seen.sum(axis=0)).ravel())
    rows = np.arange(users.size)
    candidates: list[Candidate] = []
    fixed: dict[float, list[dict[str, float]]] = {}
    per_user_by_weight: dict[float, np.ndarray] = {}
    try:
        for weight in blend_weights:
            model.policy = replace(shipped, blend_weight=weight)
            rankings, per_user, sweep = [], [], []
            for slots in range(PERSONAL_WINDOW + 1):
                ranked = rank_users(model, users, 20, seen, personalization=slots / PERSONAL_WINDOW)
                metrics, ndcg = metrics_of(ranked, relevant[users], percentile)
                rankings.append(ranked)
                per_user.append(ndcg)
                sweep.append({"positions": float(slots), **metrics})
            fixed[weight] = sweep
            stacked, ndcgs = np.stack(rankings, axis=1), np.stack(per_user, axis=1)
            per_user_by_weight[weight] = ndcgs
            for intercept, per_doubling in itertools.product(INTERCEPTS, PER_DOUBLING):
                policy = PersonalPolicy(weight, intercept, per_doubling)
                positions = policy.positions(lengths)
                metrics, _ = metrics_of(stacked[rows, positions], relevant[users], percentile)
                candidates.append(Candidate(policy, metrics, positions))
    finally:
        model.policy = shipped

    def choose(subset: np.ndarray) -> Candidate:
        feasible = [c for c in candidates if meets_floors(c.metrics)] or candidates
        return max(
            feasible, key=lambda c: per_user_by_weight[c.policy.blend_weight][subset, c.positions[subset]].mean()
        )

    fold = np.random.default_rng(FOLD_SEED).integers(0, 2, users.size)
    held_out = []
    for half in (0, 1):
        fitted = choose(fold == half)
        other = fold != half
        ndcg = per_user_by_weight[fitted.policy.blend_weight][other, fitted.positions[other]].mean()
        held_out.append(float(ndcg / baseline_per_user[other].mean()))
    return PolicyFit(choose(np.ones(users.size, dtype=bool)), candidates, fixed, held_out)


def meets_floors(metrics: dict[str, float]) -> bool:
    """Whether a policy reaches the personalisation and coverage floors the fit requires."""
    return metrics["personalisation@10"] >= PERSONALISATION_FLOOR and metrics["coverage@10"] >= COVERAGE_FLOOR
