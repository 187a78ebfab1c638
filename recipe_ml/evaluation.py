"""Offline evaluation: rank every recipe for every validation user, excluding seen ones."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recipe_ml.data import Interactions
from recipe_ml.metrics import coverage_at_k, hit_matrix, ndcg_at_k, recall_at_k
from recipe_ml.models.base import Recommender

BLOCK_USERS = 2048
"""Users scored per matrix product: bounds memory at BLOCK_USERS x n_recipes floats."""


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of the highest scores per row, best first (argpartition, then sort)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    ranked: np.ndarray = np.take_along_axis(part, order, axis=1)
    return ranked


def rank_users(model: Recommender, users: np.ndarray, k: int, exclude: sp.csr_matrix) -> np.ndarray:
    """(len(users), k) best recipes per user index, recipes in ``exclude``'s row left out."""
    ranked = np.zeros((users.size, k), dtype=np.int64)
    vectors = model.user_vectors
    for start in range(0, users.size, BLOCK_USERS):
        block = users[start : start + BLOCK_USERS]
        scores = model.score(vectors[block])
        seen = exclude[block].tocoo()
        scores[seen.row, seen.col] = -np.inf
        ranked[start : start + block.size] = top_k(scores, k)
    return ranked


def evaluate(
    model: Recommender, train: Interactions, validation: Interactions, ks: tuple[int, ...] = (10, 20)
) -> dict[str, float]:
    """nDCG@k, Recall@k for each k and coverage@10 of ``model`` (fitted on ``train``) on ``validation``."""
    relevant = validation.matrix()
    n_relevant_all = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant_all > 0)
    ranked = rank_users(model, users, max(ks), train.matrix())
    hits = hit_matrix(ranked, relevant[users])
    n_relevant = n_relevant_all[users]
    results: dict[str, float] = {}
    for k in ks:
        results[f"ndcg@{k}"] = float(ndcg_at_k(hits, n_relevant, k).mean())
        results[f"recall@{k}"] = float(recall_at_k(hits, n_relevant, k).mean())
    results["coverage@10"] = coverage_at_k(ranked, relevant.shape[1], 10)
    return results
