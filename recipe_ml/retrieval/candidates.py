"""Which recipes a query scores: the index's candidates, or every allowed recipe when a filter is restrictive.

An HNSW search returns the best recipes of the whole catalogue; a query that
may only return a few of them (``include_recipe_ids``, the health filter, a
long history of recipes it excludes) would find few or none of its allowed
recipes among them, and recall collapses. So the index is asked for more
candidates as the allowed share shrinks, and past ``MAX_FETCH`` (or when the
answer still holds too few allowed recipes, as with a filter that keeps only
low-scoring recipes) the query is scored exactly over its allowed set, which
is then small enough to be cheap. The model scores the candidates itself
(float32, its own bias), so the index only decides which recipes are looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recipe_ml.retrieval.base import RecipeIndex

MAX_FETCH = 4096
"""Most candidates asked of the index for one query; a query that would need more is scored exactly."""
OVERSAMPLE = 1.5
"""Margin on the candidates asked: filtered and excluded recipes take their share of the index's answer."""


@dataclass(frozen=True)
class CandidateQuery:
    """What one query needs from retrieval."""

    need: int
    """How many of the best allowed recipes the ranking reads (``recipe_ml.ranking.candidate_pool``)."""
    allowed: np.ndarray | None
    """(n_items,) bool, the recipes the query may return, or None: all of them."""
    banned: np.ndarray
    """Recipe indices the query never returns (its history, exclusions)."""
    required: np.ndarray
    """Recipe indices scored whatever the index says (boosted recipes)."""


@dataclass(frozen=True)
class Candidates:
    """The recipes one query scores."""

    columns: np.ndarray | None
    """Sorted recipe indices, or None: every recipe."""
    exact: bool
    """True when ``columns`` is the whole allowed set (exact scoring), False for the index's candidates."""


def retrieve(index: RecipeIndex, queries: np.ndarray, requests: Sequence[CandidateQuery]) -> list[Candidates]:
    """The candidates of each query; ``queries`` are ``[u, 1]`` rows (``query_rows``).

    The queries answered by the index are searched in one call, each reading
    the head of the answer it asked for; the index's exact tail is a
    candidate of every one of them.
    """
    n_items = len(index)
    fetch = [_fetch(request, n_items) for request in requests]
    searched = [row for row, count in enumerate(fetch) if count is not None]
    out = [_exact(request) for request in requests]
    if not searched:
        return out
    keys = index.search(queries[searched], max(int(fetch[row] or 0) for row in searched))
    for found, row in zip(keys, searched, strict=True):
        request = requests[row]
        found = np.concatenate([found[: fetch[row]], index.tail])
        usable = found[(found >= 0) & ~np.isin(found, request.banned)]
        if request.allowed is not None:
            usable = usable[request.allowed[usable]]
        if usable.size >= request.need:
            out[row] = Candidates(np.union1d(usable, request.required), exact=False)
    return out


def column_groups(found: Sequence[Candidates]) -> list[tuple[list[int], np.ndarray | None]]:
    """Positions of the queries that score the same recipes, and those recipes, group by group.

    The index's candidates of every query are scored together (their union: a
    query scored over a few more recipes only gains); the queries scored
    exactly form one group per distinct allowed set (a batch request's users
    share theirs), and those with no filter one group over every recipe.
    """
    searched = [i for i, got in enumerate(found) if not got.exact]
    groups: list[tuple[list[int], np.ndarray | None]] = []
    if searched:
        columns = [got.columns for got in found if not got.exact and got.columns is not None]
        groups.append((searched, np.unique(np.concatenate(columns))))
    exact: dict[bytes | None, list[int]] = {}
    for i, got in enumerate(found):
        if got.exact:
            exact.setdefault(None if got.columns is None else got.columns.tobytes(), []).append(i)
    groups.extend((rows, found[rows[0]].columns) for rows in exact.values())
    return groups


def _fetch(request: CandidateQuery, n_items: int) -> int | None:
    """Candidates to ask of the index for ``request``, or None: score its allowed set exactly."""
    n_allowed = n_items if request.allowed is None else int(np.count_nonzero(request.allowed))
    if n_allowed == 0:
        return None
    fetch = math.ceil((request.need + len(request.banned)) * n_items / n_allowed * OVERSAMPLE)
    return None if fetch > MAX_FETCH or fetch >= n_allowed else fetch


def _exact(request: CandidateQuery) -> Candidates:
    """Every allowed recipe: the exact answer (None when nothing is filtered, the whole catalogue)."""
    return Candidates(None if request.allowed is None else np.flatnonzero(request.allowed), exact=True)


class ColumnSpace:
    """Recipe indices seen through a subset of columns: the scores of a group of queries over their candidates.

    With ``columns`` None every method returns its argument: the catalogue
    itself, so a ranking without retrieval runs the same operations as before.
    """

    def __init__(self, columns: np.ndarray | None) -> None:
        self.columns = columns

    def positions(self, indices: np.ndarray) -> np.ndarray:
        """Column position of each recipe index, -1 where the recipe is not a column (or the index is -1)."""
        if self.columns is None:
            return indices
        if len(self.columns) == 0:
            return np.full_like(indices, -1)
        at = np.searchsorted(self.columns, indices).clip(max=len(self.columns) - 1)
        return np.where((self.columns[at] == indices) & (indices >= 0), at, -1)

    def take(self, per_recipe: np.ndarray) -> np.ndarray:
        """The entries (or rows) of ``per_recipe``, one per recipe, of the columns."""
        return per_recipe if self.columns is None else per_recipe[self.columns]

    def recipes(self, positions: np.ndarray) -> np.ndarray:
        """Recipe indices of column ``positions``."""
        return positions if self.columns is None else self.columns[positions]
