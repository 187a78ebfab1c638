"""Ranking metrics for full-catalogue evaluation (binary relevance).

Definitions, used consistently in every report:

- nDCG@k = DCG@k / IDCG@k with gain 1 for a relevant recipe at rank r
  (discount 1/log2(r + 1)); the ideal DCG puts min(k, |relevant|) hits first.
- Recall@k = hits in the top k / |relevant|: the definition of the published
  protocol on this split (Anelli et al. 2023), so figures compare with it.
- Coverage@k = distinct recipes in all users' top k / catalogue size.
- Personalisation@k = 1 - mean share of recipes two users' top k have in
  common, over a fixed seeded sample of user pairs (1: no two lists share a
  recipe; 0: everyone sees the same list).
- Novelty@k = mean popularity percentile of the recommended recipes, counted
  from the most popular (0: the most interacted-with recipe, 1: the least).

Users without relevant recipes are left out of the averages.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hit_matrix(ranked: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """(n, K) bool: whether ``ranked[u, r]`` is in row ``u`` of ``relevant``."""
    n_items = relevant.shape[1]
    coo = relevant.tocoo()
    keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    queries = np.arange(ranked.shape[0], dtype=np.int64)[:, None] * n_items + ranked
    if keys.size == 0:
        return np.zeros(ranked.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, queries), keys.size - 1)
    hits: np.ndarray = keys[pos] == queries
    return hits


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user nDCG@k from the hit matrix of the ranked lists (0 where nothing is relevant)."""
    discounts = _discounts(k)
    dcg = (hits[:, :k] * discounts[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal_cumulative = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cumulative[np.minimum(n_relevant, k)]
    ndcg: np.ndarray = np.divide(dcg, idcg, out=np.zeros_like(dcg, dtype=np.float64), where=idcg > 0)
    return ndcg


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user hits in the top k / |relevant| (0 where nothing is relevant)."""
    found = hits[:, :k].sum(axis=1).astype(np.float64)
    recall: np.ndarray = np.divide(found, n_relevant, out=np.zeros_like(found), where=n_relevant > 0)
    return recall


def coverage_at_k(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top k (-1 padding ignored)."""
    shown = np.unique(ranked[:, :k])
    return float(shown[shown >= 0].size / n_items)


PAIRS = 20_000
"""User pairs sampled for personalisation: enough for a stable mean, cheap to compare."""


def personalisation_at_k(ranked: np.ndarray, k: int = 10, n_pairs: int = PAIRS, seed: int = 0) -> float:
    """1 - mean overlap share of two users' top k, over ``n_pairs`` seeded pairs of distinct rows."""
    n = ranked.shape[0]
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, size=n_pairs)
    second = (first + rng.integers(1, n, size=n_pairs)) % n  # never the same row
    a, b = ranked[first, :k], ranked[second, :k]
    shared = ((a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)).any(axis=2).sum(axis=1)
    return float(1.0 - shared.mean() / k)


def popularity_percentile(counts: np.ndarray) -> np.ndarray:
    """(n_items,) rank of each recipe by interactions, 0 for the most popular, 1 for the least."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    percentile = np.empty(order.size, dtype=np.float64)
    percentile[order] = np.arange(order.size) / max(order.size - 1, 1)
    return percentile


def novelty_at_k(ranked: np.ndarray, percentile: np.ndarray, k: int = 10) -> float:
    """Mean ``popularity_percentile`` of the recommended recipes in the top k (-1 padding ignored)."""
    top = ranked[:, :k]
    shown = top[top >= 0]
    return float(percentile[shown].mean()) if shown.size else 0.0
