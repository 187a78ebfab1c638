"""From rows of scores to the recipes users see: exclusions, health, diversity, personal positions.

Pure numpy on recipe indices. ``rank_rows`` is the one ranking policy and
``exclude_recipes`` the one way a recipe is kept out of a row: the runners
call them with a batch of queries, offline evaluation with blocks of users,
the benchmark's peer with one user, so the evaluation measures what serving
does by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MMR_POOL_FACTOR = 5
"""MMR re-ranks the best ``top_k * MMR_POOL_FACTOR`` candidates, not all recipes."""
TOP_K_CHUNKS = 4
"""Slices of a row per recipe wanted, whose maxima bound the best ``k`` (``_top_k_row``); at most this many
times ``k`` recipes are then sorted."""
EXCLUDED_GAIN = -1e30
"""MMR gain of an excluded candidate: below every valid one, above the already picked (-inf)."""
PERSONAL_WINDOW = 10
"""Personal positions are the last positions of the top 10 (what coverage@10 and personalisation count)."""


@dataclass
class RankInputs:
    """What the ranking policy needs for a batch of users (``Recommender.rank_inputs`` makes it).

    Not frozen, and its arrays are written in place: they are this batch's own
    (made for one call, shared with nothing), and the caller masks them
    (``exclude_recipes``) and boosts them before ``rank_rows``. A copy of
    each (n, n_items) array per batch would cost as much as the ranking.
    """

    scores: np.ndarray
    """(n, n_items) the model's own scores: what a client is shown."""
    ranking: np.ndarray
    """(n, n_items) the scores the list is ranked by (the model's, plus the personal scorer's weight)."""
    personal: np.ndarray | None
    """(n, n_items) scores of the personal positions' picks, or None: no personal positions."""
    positions: np.ndarray
    """(n,) personal positions per user by default (the adaptive policy, or the fixed fallback)."""


def take_rows(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Each row's elements at its own ``indices``: ``np.take_along_axis(values, indices, axis=1)`` for 2-d arrays.

    Plain fancy indexing, the same elements without ``take_along_axis``'s per-call checks, which cost more than
    the gather itself for the one to few rows of a request (ranking makes a dozen such gathers a row).
    """
    rows = np.arange(values.shape[0])[:, None]
    taken: np.ndarray = values[rows, indices]
    return taken


def exclude_recipes(inputs: RankInputs, rows: np.ndarray | int, recipes: np.ndarray) -> None:
    """Keep ``recipes`` out of ``rows``' lists: -inf in the ranking and the personal scores, in place.

    ``rows`` and ``recipes`` index the (n, n_items) arrays together, as numpy
    does: a row and its recipe indices (or a boolean mask over the recipes),
    or pairs (row, recipe). The shown ``scores`` are left as they are: a
    recipe excluded from a row is never shown in it.
    """
    for matrix in (inputs.ranking, inputs.personal):
        if matrix is not None:
            matrix[rows, recipes] = -np.inf


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


def mmr_rows(relevance: np.ndarray, unit_vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Maximal Marginal Relevance for a batch: (n, k) positions into each row's candidates, in pick order.

    ``relevance`` is (n, c), ``unit_vectors`` (n, c, dim), the candidates'
    normalized vectors. Each row greedily picks the candidate maximising
    ``(1 - diversity) * relevance - diversity * max cosine similarity to those
    already picked``. Relevance is rescaled to [0, 1] per row so the weight
    means the same for every model. A candidate with relevance -inf (excluded)
    is picked only once every valid one is. Batched so offline evaluation
    measures MMR as served, for every user at once.
    """
    n, c = relevance.shape
    k = min(k, c)
    finite = np.isfinite(relevance)
    low = np.where(finite, relevance, np.inf).min(axis=1, keepdims=True)
    span = np.where(finite, relevance, -np.inf).max(axis=1, keepdims=True) - low
    valid_span = np.isfinite(span) & (span > 0)
    rel = np.where(valid_span, (relevance - np.where(valid_span, low, 0.0)) / np.where(valid_span, span, 1.0), 1.0)
    # A candidate's gain is ``base - penalty``: ``base`` its weighted relevance (EXCLUDED_GAIN when excluded, which
    # a penalty of at most ``diversity`` in size leaves as it is in float32), ``penalty`` the diversity-weighted
    # highest similarity to the picks so far. Weighting the similarities once gives the same floats as weighting
    # their maximum at each step (rounding keeps order), so the picks are the ones of the formula above. A
    # candidate's similarity to itself is +inf: once picked, its penalty rules it out of the steps that follow.
    rel = np.where(finite, rel, EXCLUDED_GAIN)  # no inf left to weight (0 x inf would be NaN)
    base = np.where(finite, (1.0 - diversity) * rel, EXCLUDED_GAIN)
    weighted = diversity * np.matmul(unit_vectors, unit_vectors.transpose(0, 2, 1))
    weighted.reshape(n, c * c)[:, :: c + 1] = np.inf
    order = np.empty((k, n), dtype=np.int64)
    if k == 0:
        return order.T
    if n == 1:  # one row (a request for one user, the common case): 1-d steps, a pick is a plain index
        gains, picked, similarity = base[0], order[:, 0], weighted[0]

        def pick(gain: np.ndarray) -> Any:
            return int(gain.argmax())

        def similar(best: Any) -> np.ndarray:
            row: np.ndarray = similarity[best]
            return row

    else:
        gains, picked, similarities, starts = base, order, weighted.reshape(n * c, c), np.arange(n) * c

        def pick(gain: np.ndarray) -> Any:
            return gain.argmax(axis=1)

        def similar(best: Any) -> np.ndarray:
            rows: np.ndarray = similarities[starts + best]
            return rows

    gain = gains.copy()
    best = pick(gain)  # the first pick has no penalty; after it, the highest similarity (negative ones too)
    picked[0] = best
    penalty = np.array(similar(best))
    for step in range(1, k):
        np.subtract(gains, penalty, out=gain)
        best = pick(gain)
        picked[step] = best
        np.maximum(penalty, similar(best), out=penalty)
    return order.T


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, min(k, n_items)) indices of the highest scores per row, best first; equal scores by lower index.

    Exactly ``np.argsort(-scores, axis=1, kind="stable")[:, :k]`` (NaN last), without sorting the row:
    each row is read by ``_top_k_row``.
    """
    n, width = scores.shape
    k = max(min(k, width), 0)
    ranked = np.empty((n, k), dtype=np.int64)
    if k:
        for row in range(n):
            ranked[row] = _top_k_row(scores[row], k)
    return ranked


def _top_k_row(row: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` (>= 1, <= ``row.size``) best of one row, as ``top_k_rows`` orders them.

    Why not ``np.argpartition``: over the few thousand recipes of a row it costs several times the rest of the
    selection, and it is paid two or three times a ranked list. Instead, a lower bound of the top ``k`` is read
    off the maxima of ``TOP_K_CHUNKS * k`` slices of the row: the k-th largest of those maxima is reached by ``k``
    recipes of ``k`` different slices, so every recipe of the top ``k`` scores at least that much, and only the
    few recipes at or above it are sorted. When that bound lets too many through (a row mostly -inf: an include
    list, most recipes excluded) the k-th largest score itself is the bound (``np.partition``); a NaN, which
    neither bound orders, sends the row to the full sort.
    """
    width = row.size
    chunks = TOP_K_CHUNKS * k
    span = width // chunks
    if span >= 2:
        maxima = row[: chunks * span].reshape(chunks, span).max(axis=1)
        bound = np.partition(maxima, chunks - k)[chunks - k]
        candidates = np.flatnonzero(row >= bound)
        if k <= candidates.size <= TOP_K_CHUNKS * k:
            picked: np.ndarray = candidates[np.argsort(-row[candidates], kind="stable")[:k]]
            return picked
    threshold = np.partition(row, width - k)[width - k]
    above = np.flatnonzero(row > threshold)
    tied = np.flatnonzero(row == threshold)[: k - above.size]
    if above.size + tied.size < k:  # a NaN in the row
        ordered: np.ndarray = np.argsort(-row, kind="stable")[:k]
        return ordered
    return np.concatenate([above[np.argsort(-row[above], kind="stable")], tied])


@dataclass(frozen=True)
class PersonalPolicy:
    """How a personal scorer enters a ranking: its weight in the scores, and how many positions are its own.

    The number of personal positions grows with the user's history:
    ``round(intercept + per_doubling * log2(history length))``, clipped to the
    top 10. Why adaptive: a user with three recipes gives the personal scorer
    little to go on, and the popular recipes are their best bet; a heavy user's
    own tastes predict better. The three numbers are fitted on validation
    (``recipe_ml.evaluation.policy``), never set by hand.
    """

    blend_weight: float
    """Weight of the personal scores added to the model's scores (the non-personal positions)."""
    intercept: float
    per_doubling: float

    def positions(self, history_lengths: np.ndarray) -> np.ndarray:
        """(n,) personal positions in the top 10 for users with these history lengths."""
        raw = self.intercept + self.per_doubling * np.log2(np.maximum(np.asarray(history_lengths), 1))
        positions: np.ndarray = np.clip(np.rint(raw), 0, PERSONAL_WINDOW).astype(np.int64)
        return positions

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def override_positions(adaptive: np.ndarray, personalization: Sequence[float | None]) -> np.ndarray:
    """Personal positions per row: a request's ``personalization`` (share of the top 10) wins over the policy's."""
    return np.asarray(
        [
            default if share is None else round(share * PERSONAL_WINDOW)
            for default, share in zip(adaptive.tolist(), personalization, strict=True)
        ],
        dtype=np.int64,
    )


def candidate_pool(k: int, diversity: float) -> int:
    """How many of a row's best recipes ``rank_rows`` reads for a list of ``k``: what a retrieval must supply.

    The list is at least the personal window long; MMR re-ranks
    ``MMR_POOL_FACTOR`` times that, and without MMR up to a window of personal
    positions follow the head.
    """
    k = max(k, PERSONAL_WINDOW)
    return k * MMR_POOL_FACTOR if diversity > 0 else k + PERSONAL_WINDOW


def rank_rows(
    scores: np.ndarray,
    k: int,
    *,
    diversity: float = 0.0,
    unit_item_vectors: np.ndarray | None = None,
    personal: np.ndarray | None = None,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """(n, k) recipes to show per row, best first; -1 pads a row with fewer than ``k`` recipes left.

    ``scores`` (n, n_items) holds -inf for every recipe a row must not return
    (seen, excluded, failing the health filter), and so does ``personal``, the
    personal scorer's scores (``exclude_recipes`` sets both). With
    ``diversity`` > 0 and item vectors, the ``k * MMR_POOL_FACTOR`` best
    candidates are re-ranked by MMR. Then the last ``positions[row]`` of the
    top ``min(PERSONAL_WINDOW, k)`` go to the row's best personal recipes not
    already above them, and the ranking by score resumes after them without
    the recipes moved up. Why the last positions:
    the popular recipes carry most hits on this data, so the top of the list
    stays theirs; personal recipes below them cost little accuracy and make
    the lists differ from user to user. A ``k`` below the window is the first
    ``k`` of the top ``PERSONAL_WINDOW``, so a shorter list is always the head
    of a longer one (a client paging through the list sees the same order).
    """
    n, n_items = scores.shape
    shown = min(k, n_items)
    k = min(max(k, PERSONAL_WINDOW), n_items)
    window = min(PERSONAL_WINDOW, k)
    slots = np.zeros(n, dtype=np.int64) if personal is None or positions is None else np.minimum(positions, window)
    extra = int(slots.max(initial=0))
    if diversity <= 0.0 or unit_item_vectors is None:
        ranked = top_k_rows(scores, k + extra)
    else:
        pool = top_k_rows(scores, k * MMR_POOL_FACTOR)
        relevance = take_rows(scores, pool)
        picked = mmr_rows(relevance, unit_item_vectors[pool], k + extra, diversity)
        ranked = take_rows(pool, picked)
    valid = np.isfinite(take_rows(scores, ranked))
    if extra == 0 or personal is None:
        return _padded(ranked, valid, k)[:, :shown]
    head_len = (window - slots)[:, None]
    position = np.arange(ranked.shape[1])[None, :]
    in_head = position < head_len
    best = top_k_rows(personal, PERSONAL_WINDOW + extra)
    usable = np.isfinite(take_rows(personal, best))
    usable &= ~((best[:, :, None] == ranked[:, None, :]) & (in_head & valid)[:, None, :]).any(axis=2)
    order = np.argsort(~usable, axis=1, kind="stable")[:, :extra]
    picks = take_rows(best, order)
    pick_ok = take_rows(usable, order) & (np.arange(extra)[None, :] < slots[:, None])
    moved = ((ranked[:, :, None] == picks[:, None, :]) & pick_ok[:, None, :]).any(axis=2)
    # Order keys: the head keeps its positions, the picks follow it, the rest of the ranking after them.
    ranked_keys = np.where(in_head, position, position + PERSONAL_WINDOW + extra).astype(np.float64)
    ranked_keys[~valid | (moved & ~in_head)] = np.inf
    pick_keys = np.where(pick_ok, head_len + np.arange(extra)[None, :], np.inf)
    candidates = np.concatenate([ranked, picks], axis=1)
    keys = np.concatenate([ranked_keys, pick_keys], axis=1)
    order = np.argsort(keys, axis=1, kind="stable")
    return _padded(take_rows(candidates, order), np.isfinite(take_rows(keys, order)), k)[:, :shown]


def _padded(ranked: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """The valid recipes of each row in order, first ``k`` columns, -1 where a row ran out of them."""
    order = np.argsort(~valid, axis=1, kind="stable")
    out = np.where(take_rows(valid, order), take_rows(ranked, order), -1)[:, :k]
    if out.shape[1] < k:
        out = np.concatenate([out, np.full((out.shape[0], k - out.shape[1]), -1, dtype=np.int64)], axis=1)
    return out.astype(np.int64)
