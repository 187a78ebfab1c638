"""From a row of scores to the recipes a user sees: exclusions, health, diversity.

Pure numpy on recipe indices, shared by every model and by the runners, so
the rules (never recommend what the user already interacted with, the FSA
health filter, MMR re-ranking) live in one place.
"""

from __future__ import annotations

import numpy as np

MMR_POOL_FACTOR = 5
"""MMR re-ranks the best ``top_k * MMR_POOL_FACTOR`` candidates, not all recipes."""


def health_mask(item_fsa: np.ndarray, max_fsa_score: float | None) -> np.ndarray | None:
    """Recipes allowed by the health filter, or None when there is no filter.

    FSA scores run from 4 (healthiest) to 12; a recipe with an unknown score
    (NaN) is excluded once a filter is asked for, since nothing says it passes.
    """
    if max_fsa_score is None:
        return None
    with np.errstate(invalid="ignore"):
        return np.asarray(item_fsa <= max_fsa_score)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), for cosine similarity."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def top_k(
    scores: np.ndarray,
    k: int,
    exclude: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` best entries, best first.

    ``exclude`` lists indices never returned; ``allowed`` is a boolean mask
    (False = never returned). Fewer than ``k`` come back when fewer remain.
    """
    masked = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None and exclude.size:
        masked[exclude] = -np.inf
    if allowed is not None:
        masked[~allowed] = -np.inf
    n_valid = int(np.isfinite(masked).sum())
    k = min(k, n_valid)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(-masked, k - 1)[:k] if k < masked.size else np.arange(masked.size)
    order = part[np.argsort(-masked[part], kind="stable")]
    return order.astype(np.int64), masked[order]


def mmr(
    candidates: np.ndarray,
    relevance: np.ndarray,
    unit_vectors: np.ndarray,
    k: int,
    diversity: float,
) -> np.ndarray:
    """Maximal Marginal Relevance: positions into ``candidates``, in pick order.

    Greedily picks the candidate maximising ``(1 - diversity) * relevance -
    diversity * max cosine similarity to those already picked``. Relevance is
    rescaled to [0, 1] over the candidates so the weight means the same for
    every model. ``unit_vectors`` are the candidates' normalized vectors.
    """
    n = candidates.size
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(relevance.max() - relevance.min())
    rel = (relevance - relevance.min()) / span if span > 0 else np.ones(n, dtype=np.float32)
    sims = unit_vectors @ unit_vectors.T
    max_sim = np.full(n, -np.inf, dtype=np.float32)
    picked = np.zeros(n, dtype=bool)
    order = np.empty(k, dtype=np.int64)
    for step in range(k):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        gain = (1.0 - diversity) * rel - diversity * penalty
        gain[picked] = -np.inf
        best = int(np.argmax(gain))
        order[step] = best
        picked[best] = True
        max_sim = np.maximum(max_sim, sims[best])
    return order


def rank(
    scores: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    diversity: float = 0.0,
    unit_item_vectors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The recipes to show (indices, scores), after exclusions, health and MMR.

    With ``diversity`` > 0 and item vectors, the ``k * MMR_POOL_FACTOR`` best
    candidates are re-ranked by MMR; the returned scores stay the model's, so a
    client sees why a recipe was picked even when diversity moved it.
    """
    if diversity <= 0.0 or unit_item_vectors is None:
        return top_k(scores, k, exclude, allowed)
    pool, pool_scores = top_k(scores, k * MMR_POOL_FACTOR, exclude, allowed)
    order = mmr(pool, pool_scores, unit_item_vectors[pool], k, diversity)
    return pool[order], pool_scores[order]
