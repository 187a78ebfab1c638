"""Ranking metrics for full-catalogue evaluation (binary relevance).

Definitions, used consistently in every report:

- nDCG@k = DCG@k / IDCG@k with gain 1 for a relevant recipe at rank r
  (discount 1/log2(r + 1)); the ideal DCG puts min(k, |relevant|) hits first.
- Recall@k = hits in the top k / |relevant|: the definition of the published
  protocol on this split (Anelli et al. 2023), so figures compare with it.
- Coverage@k = distinct recipes in all users' top k / catalogue size.

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
    """Share of the catalogue that appears in at least one user's top k."""
    return float(np.unique(ranked[:, :k]).size / n_items)
