"""Offline evaluation: rank every recipe for every validation user, excluding seen ones.

The ranking is ``recipe_ml.ranking.rank_rows`` on ``Recommender.rank_inputs``,
seen recipes kept out by ``recipe_ml.ranking.exclude_recipes``: the calls serving
makes, on blocks of users, so the metrics are those of what users get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recipe_ml.data import Histories, Interactions
from recipe_ml.evaluation.metrics import (
    coverage_at_k,
    hit_matrix,
    ndcg_at_k,
    novelty_at_k,
    personalisation_at_k,
    popularity_percentile,
    recall_at_k,
)
from recipe_ml.models.base import Recommender
from recipe_ml.ranking import exclude_recipes, normalize_rows, override_positions, rank_rows

BLOCK_USERS = 2048
"""Users scored per matrix product: bounds memory at BLOCK_USERS x n_recipes floats."""
QUARTILES = 4
METRICS = ("ndcg@10", "ndcg@20", "recall@10", "recall@20", "coverage@10", "personalisation@10", "novelty@10")
"""Every metric ``evaluate`` returns, in report order."""


def rank_users(
    model: Recommender,
    users: np.ndarray,
    k: int,
    exclude: sp.csr_matrix,
    diversity: float = 0.0,
    personalization: float | None = None,
) -> np.ndarray:
    """(len(users), k) best recipes per user index, recipes in ``exclude``'s row left out.

    ``exclude`` is also each user's history (what the personal scorer reads).
    ``personalization`` overrides the policy's personal positions for every
    user, as the request field does (None: the model's default policy).
    """
    ranked = np.zeros((users.size, k), dtype=np.int64)
    unit_items = normalize_rows(model.item_vectors) if diversity > 0 else None
    for start in range(0, users.size, BLOCK_USERS):
        block = users[start : start + BLOCK_USERS]
        histories = exclude[block]
        inputs = model.rank_inputs(model.user_vectors[block], Histories.of_matrix(histories))
        seen = histories.tocoo()
        exclude_recipes(inputs, seen.row, seen.col)
        positions = inputs.positions
        if personalization is not None:
            positions = override_positions(positions, [personalization] * block.size)
        ranked[start : start + block.size] = rank_rows(
            inputs.ranking,
            k,
            diversity=diversity,
            unit_item_vectors=unit_items,
            personal=inputs.personal,
            positions=positions,
        )
    return ranked


def activity_quartiles(train: Interactions, users: np.ndarray) -> np.ndarray:
    """(len(users),) quartile 0-3 of each user by number of training ratings (equal-size groups).

    Ties (many users have the same few ratings) are split by user index, so
    the four groups have the same size and the heaviest users form the last.
    """
    lengths = np.diff(train.matrix().indptr)[users]
    order = np.argsort(lengths, kind="stable")
    quartile = np.empty(users.size, dtype=np.int64)
    quartile[order] = np.arange(users.size) * QUARTILES // max(users.size, 1)
    return quartile


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model and policy on validation: overall, and per activity quartile."""

    overall: dict[str, float]
    quartiles: list[dict[str, float]]
    """One dict per quartile of users by training ratings, lightest first (with ``min_ratings``/``max_ratings``)."""
    per_user_ndcg20: np.ndarray
    ranked: np.ndarray


def metrics_of(
    ranked: np.ndarray, relevant: sp.csr_matrix, percentile: np.ndarray, ks: tuple[int, ...] = (10, 20)
) -> tuple[dict[str, float], np.ndarray]:
    """Every metric of ``METRICS`` for rankings ``ranked`` against rows of ``relevant``; and per-user nDCG@20."""
    hits = hit_matrix(ranked, relevant)
    n_relevant = np.diff(relevant.indptr)
    results: dict[str, float] = {}
    per_user = np.zeros(ranked.shape[0])
    for k in ks:
        ndcg = ndcg_at_k(hits, n_relevant, k)
        per_user = ndcg if k == 20 else per_user
        results[f"ndcg@{k}"] = float(ndcg.mean())
        results[f"recall@{k}"] = float(recall_at_k(hits, n_relevant, k).mean())
    results["coverage@10"] = coverage_at_k(ranked, relevant.shape[1], 10)
    results["personalisation@10"] = personalisation_at_k(ranked, 10)
    results["novelty@10"] = novelty_at_k(ranked, percentile, 10)
    return results, per_user


def evaluate(
    model: Recommender,
    train: Interactions,
    validation: Interactions,
    diversity: float = 0.0,
    personalization: float | None = None,
) -> Evaluation:
    """Every metric of ``METRICS`` of ``model`` (fitted on ``train``) on ``validation``, overall and per quartile.

    ``diversity`` is the MMR weight of serving (0: plain ranking);
    ``personalization`` the request field (None: the model's default policy).
    """
    relevant = validation.matrix()
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    seen = train.matrix()
    ranked = rank_users(model, users, 20, seen, diversity, personalization)
    percentile = popularity_percentile(np.asarray(seen.sum(axis=0)).ravel())
    overall, per_user = metrics_of(ranked, relevant[users], percentile)
    quartile = activity_quartiles(train, users)
    lengths = np.diff(seen.indptr)[users]
    quartiles = []
    for q in range(QUARTILES):
        rows = np.flatnonzero(quartile == q)
        metrics, _ = metrics_of(ranked[rows], relevant[users[rows]], percentile)
        metrics["min_ratings"] = float(lengths[rows].min()) if rows.size else 0.0
        metrics["max_ratings"] = float(lengths[rows].max()) if rows.size else 0.0
        quartiles.append(metrics)
    return Evaluation(overall, quartiles, per_user, ranked)
