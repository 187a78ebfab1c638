"""Offline evaluation: rank every recipe for every validation user, excluding seen ones."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recipe_ml.data import Interactions
from recipe_ml.evaluation.metrics import coverage_at_k, hit_matrix, ndcg_at_k, recall_at_k
from recipe_ml.models.base import Recommender
from recipe_ml.ranking import MMR_POOL_FACTOR, PERSONAL_WINDOW, mmr_rows, normalize_rows, with_personal_slots

BLOCK_USERS = 2048
"""Users scored per matrix product: bounds memory at BLOCK_USERS x n_recipes floats."""


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of the highest scores per row, best first (argpartition, then sort)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    ranked: np.ndarray = np.take_along_axis(part, order, axis=1)
    return ranked


def rank_users(
    model: Recommender, users: np.ndarray, k: int, exclude: sp.csr_matrix, diversity: float = 0.0
) -> np.ndarray:
    """(len(users), k) best recipes per user index, recipes in ``exclude``'s row left out.

    The serving policy, vectorised: MMR with ``diversity`` > 0 and the model's
    personal slots (``recipe_ml.ranking``), so the metrics are those of what
    users get.
    """
    ranked = np.zeros((users.size, k), dtype=np.int64)
    vectors = model.user_vectors
    unit_items = normalize_rows(model.item_vectors) if diversity > 0 else None
    for start in range(0, users.size, BLOCK_USERS):
        block = users[start : start + BLOCK_USERS]
        seen = exclude[block].tocoo()
        scores = model.score(vectors[block])
        scores[seen.row, seen.col] = -np.inf
        affinity = model.affinity(vectors[block]) if model.personal_slots > 0 else None
        slots = model.personal_slots if affinity is not None else 0
        if unit_items is None:
            top = top_k(scores, k + slots)
        else:
            pool = top_k(scores, k * MMR_POOL_FACTOR)
            relevance = np.take_along_axis(scores, pool, axis=1)
            top = np.take_along_axis(pool, mmr_rows(relevance, unit_items[pool], k + slots, diversity), axis=1)
        if affinity is not None:
            affinity[seen.row, seen.col] = -np.inf
            top = with_personal_slots(top, top_k(affinity, PERSONAL_WINDOW), slots)
        ranked[start : start + block.size] = top[:, :k]
    return ranked


def evaluate(
    model: Recommender,
    train: Interactions,
    validation: Interactions,
    ks: tuple[int, ...] = (10, 20),
    diversity: float = 0.0,
) -> dict[str, float]:
    """nDCG@k, Recall@k for each k and coverage@10 of ``model`` (fitted on ``train``) on ``validation``.

    ``diversity`` is the MMR weight of serving (0: plain ranking).
    """
    relevant = validation.matrix()
    n_relevant_all = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant_all > 0)
    ranked = rank_users(model, users, max(ks), train.matrix(), diversity)
    hits = hit_matrix(ranked, relevant[users])
    n_relevant = n_relevant_all[users]
    results: dict[str, float] = {}
    for k in ks:
        results[f"ndcg@{k}"] = float(ndcg_at_k(hits, n_relevant, k).mean())
        results[f"recall@{k}"] = float(recall_at_k(hits, n_relevant, k).mean())
    results["coverage@10"] = coverage_at_k(ranked, relevant.shape[1], 10)
    return results
