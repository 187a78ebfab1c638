"""From a row of scores to the recipes a user sees: exclusions, health, diversity.

Pure numpy on recipe indices, shared by every model and by the runners, so
the rules (never recommend what the user already interacted with, the FSA
health filter, MMR re-ranking, personal slots) live in one place.
"""

from __future__ import annotations

import numpy as np

MMR_POOL_FACTOR = 5
"""MMR re-ranks the best ``top_k * MMR_POOL_FACTOR`` candidates, not all recipes."""
PERSONAL_WINDOW = 10
"""Personal slots are the last positions of the top 10 (what the metrics' coverage@10 counts)."""


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


def mmr_rows(relevance: np.ndarray, unit_vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Maximal Marginal Relevance for a batch: (n, k) positions into each row's candidates, in pick order.

    ``relevance`` is (n, c), ``unit_vectors`` (n, c, dim), the candidates'
    normalized vectors. Each row greedily picks the candidate maximising
    ``(1 - diversity) * relevance - diversity * max cosine similarity to those
    already picked``. Relevance is rescaled to [0, 1] per row so the weight
    means the same for every model. Batched so offline evaluation measures
    MMR as served, for every user at once.
    """
    n, c = relevance.shape
    k = min(k, c)
    low = relevance.min(axis=1, keepdims=True)
    span = relevance.max(axis=1, keepdims=True) - low
    rel = np.where(span > 0, (relevance - low) / np.where(span > 0, span, 1.0), 1.0)
    sims = np.matmul(unit_vectors, unit_vectors.transpose(0, 2, 1))
    penalty = np.zeros((n, c), dtype=np.float32)  # max similarity to the picked ones (0 before any pick)
    picked = np.zeros((n, c), dtype=bool)
    order = np.empty((n, k), dtype=np.int64)
    rows = np.arange(n)
    for step in range(k):
        gain = (1.0 - diversity) * rel - diversity * penalty
        gain[picked] = -np.inf
        best = np.argmax(gain, axis=1)
        order[:, step] = best
        picked[rows, best] = True
        chosen = sims[rows, best]
        penalty = chosen if step == 0 else np.maximum(penalty, chosen)
    return order


def mmr(
    candidates: np.ndarray,
    relevance: np.ndarray,
    unit_vectors: np.ndarray,
    k: int,
    diversity: float,
) -> np.ndarray:
    """Maximal Marginal Relevance for one user: positions into ``candidates``, in pick order (see ``mmr_rows``)."""
    if candidates.size == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    order: np.ndarray = mmr_rows(relevance[None, :], unit_vectors[None, :, :], k, diversity)[0]
    return order


def with_personal_slots(ranked: np.ndarray, personal: np.ndarray, slots: int) -> np.ndarray:
    """Rankings (n, m) whose last ``slots`` of the top ``PERSONAL_WINDOW`` are personal picks.

    ``ranked`` (n, m) is the ranking by score, best first; ``personal`` (n,
    p) the recipes by affinity, best first, with the same exclusions applied
    and ``p >= PERSONAL_WINDOW``. Positions ``PERSONAL_WINDOW - slots`` to
    ``PERSONAL_WINDOW - 1`` take each row's best personal recipes that are not
    already above them; the ranking by score resumes after them, without the
    recipes moved up. Why the last slots: on this data the popular recipes
    carry most hits, so the top positions stay theirs, and a few personal
    recipes at the end of the top 10 cost little nDCG but multiply catalogue
    coverage (validation, Two-Tower: coverage@10 0.2% -> 6.8% for one slot, nDCG@20 -1%).
    """
    m = ranked.shape[1]
    window = min(PERSONAL_WINDOW, m)
    slots = min(slots, window, personal.shape[1])
    if slots <= 0:
        return ranked
    head = ranked[:, : window - slots]
    in_head = (personal[:, :, None] == head[:, None, :]).any(axis=2)
    picks = np.take_along_axis(personal, np.argsort(in_head, axis=1, kind="stable")[:, :slots], axis=1)
    tail = ranked[:, window - slots :]
    moved = (tail[:, :, None] == picks[:, None, :]).any(axis=2)
    tail = np.take_along_axis(tail, np.argsort(moved, axis=1, kind="stable"), axis=1)
    return np.concatenate([head, picks, tail], axis=1)[:, :m]


def rank(
    scores: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    diversity: float = 0.0,
    unit_item_vectors: np.ndarray | None = None,
    affinity: np.ndarray | None = None,
    personal_slots: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The recipes to show (indices, scores), after exclusions, health, MMR and personal slots.

    With ``diversity`` > 0 and item vectors, the ``k * MMR_POOL_FACTOR`` best
    candidates are re-ranked by MMR. With ``affinity`` and ``personal_slots``
    the last slots of the top ``PERSONAL_WINDOW`` go to the best recipes by
    affinity (``with_personal_slots``). The returned scores stay the model's,
    so a client sees why a recipe was picked even when the policy moved it.
    """
    slots = personal_slots if affinity is not None else 0
    if diversity <= 0.0 or unit_item_vectors is None:
        indices, _ = top_k(scores, k + slots, exclude, allowed)
    else:
        pool, pool_scores = top_k(scores, k * MMR_POOL_FACTOR, exclude, allowed)
        indices = pool[mmr(pool, pool_scores, unit_item_vectors[pool], k + slots, diversity)]
    if affinity is not None and slots > 0 and indices.size:
        personal, _ = top_k(affinity, PERSONAL_WINDOW, exclude, allowed)
        indices = with_personal_slots(indices[None, :], personal[None, :], slots)[0]
    indices = indices[:k]
    return indices, np.asarray(scores[indices], dtype=np.float32)
