"""A loaded model answering batches of queries as one matrix product.

The two runner services and the in-process popularity fallback all wrap a
``ModelRanker``, so batching, fold-in and the ranking rules are written once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from recipe_ml.config import Settings
from recipe_ml.data import IdMap
from recipe_ml.models.base import FoldedRecipes, Recommender
from recipe_ml.ranking import (
    candidate_pool,
    exclude_recipes,
    health_mask,
    normalize_rows,
    override_positions,
    rank_rows,
    top_k_rows,
)
from recipe_ml.retrieval.base import query_rows
from recipe_ml.retrieval.candidates import CandidateQuery, ColumnSpace, column_groups, retrieve
from recipe_ml.serving.schemas import MAX_ID
from recipe_ml.serving.wire import (
    NewRecipe,
    RankQuery,
    RankResult,
    SimilarQuery,
    SimilarRecipeQuery,
    SimilarResult,
)

FOLDED_RECIPES = 1024
"""Folded-in recipes a ranker keeps (by recipe and users; ten times the new recipes a query carries): a recipe is
folded again only when its users change."""
DEFAULT_FOLD_IN_MIN_USERS: int = Settings.model_fields["fold_in_min_users"].default


def known_indices(ids: IdMap, raw_ids: list[int]) -> np.ndarray:
    """Indices of the ids the model knows; unknown ones (even beyond int64,
    as a live event may carry) are dropped.

    One conversion of the whole list, not a check per id: a query carries
    the hundreds of ids a catalogue filter excludes, on every request.
    """
    try:
        raw = np.asarray(raw_ids, dtype=np.int64)
    except OverflowError:  # an id beyond int64 is no recipe of the model: keep the ones that can be
        raw = np.asarray([raw for raw in raw_ids if 0 <= raw <= MAX_ID], dtype=np.int64)
    indices = ids.indices(raw)
    return indices[indices >= 0]


def candidate_mask(
    ids: IdMap, item_fsa: np.ndarray, include: list[int] | None, max_fsa_score: float | None
) -> np.ndarray | None:
    """Recipes a query may return: the health filter and the ``include_recipe_ids`` candidates, or None for all."""
    allowed = health_mask(item_fsa, max_fsa_score)
    if include is None:
        return allowed
    candidates = np.zeros(len(item_fsa), dtype=bool)
    candidates[known_indices(ids, include)] = True
    return candidates if allowed is None else candidates & allowed


@dataclass(frozen=True)
class NewColumns:
    """The recipes beyond the model's that a batch ranks: columns appended after the model's own."""

    ids: np.ndarray
    """(k,) recipe ids."""
    folded: FoldedRecipes
    unit: np.ndarray
    """The folded vectors of unit length (similarity, MMR)."""

    def position(self, recipe_id: int) -> int | None:
        found = np.flatnonzero(self.ids == recipe_id)
        return int(found[0]) if found.size else None

    def allowed(self, query: RankQuery | SimilarRecipeQuery, extra_banned: Sequence[int] = ()) -> np.ndarray:
        """(k,) bool: the new recipes ``query`` may return (its own list, its filters; no health score known)."""
        ok = np.isin(self.ids, [r.recipe_id for r in query.new_recipes])
        ok &= ~np.isin(self.ids, [*query.exclude_recipe_ids, *extra_banned])
        if query.include_recipe_ids is not None:
            ok &= np.isin(self.ids, query.include_recipe_ids)
        if query.max_fsa_score is not None:
            ok[:] = False
        return ok


class ModelRanker:
    """Scores users against every recipe (and every user) for one model."""

    def __init__(
        self,
        model: Recommender,
        version: str,
        *,
        precompute: bool = True,
        ann_min_recipes: int | None = None,
        fold_in_min_users: int = DEFAULT_FOLD_IN_MIN_USERS,
    ) -> None:
        self.model = model
        self.version = version
        """The model store tag: in every answer (``model_version``) and every cache key."""
        self.fold_in_min_users = fold_in_min_users
        """Known users a new recipe needs to be folded in (FOLD_IN_MIN_USERS); popularity takes every one."""
        self._folded: OrderedDict[tuple[int, tuple[int, ...]], FoldedRecipes] = OrderedDict()
        self.ann_min_recipes = ann_min_recipes
        """From this many recipes on, queries score the index's candidates (``ANN_MIN_RECIPES``); None: never."""
        if precompute:  # PRECOMPUTE_EMBEDDINGS: pay at load, not on the first request
            _ = self.unit_item_vectors
            if model.supports_similarity:
                _ = self.unit_user_vectors

    @cached_property
    def unit_item_vectors(self) -> np.ndarray:
        return normalize_rows(self.model.item_vectors)

    @cached_property
    def unit_user_vectors(self) -> np.ndarray:
        return normalize_rows(self.model.user_vectors)

    def new_columns(self, lists: Sequence[Sequence[NewRecipe]]) -> NewColumns | None:
        """The new recipes of a batch's queries (their union) that this model can place, or None.

        A recipe the model knows is its own column already; a vector model
        places a new one only from ``fold_in_min_users`` users it knows.
        """
        model = self.model
        wanted: dict[int, np.ndarray] = {}
        for recipes in lists:
            for recipe in recipes:
                if recipe.recipe_id in wanted or not 0 <= recipe.recipe_id <= MAX_ID or recipe.recipe_id in model.items:
                    continue
                users = known_indices(model.users, recipe.user_ids)
                if model.supports_similarity and len(np.unique(users)) < self.fold_in_min_users:
                    continue
                wanted[recipe.recipe_id] = users
        if not wanted:
            return None
        missing = [(rid, users) for rid, users in wanted.items() if (rid, tuple(users.tolist())) not in self._folded]
        if missing:
            folded = model.fold_in_recipes([users for _, users in missing])
            for row, (rid, users) in enumerate(missing):
                self._folded[(rid, tuple(users.tolist()))] = folded.rows(row)
        rows = []
        for rid, users in wanted.items():
            key = (rid, tuple(users.tolist()))
            self._folded.move_to_end(key)
            rows.append(self._folded[key])
        while len(self._folded) > FOLDED_RECIPES:
            self._folded.popitem(last=False)
        folded = FoldedRecipes.stacked(rows)
        return NewColumns(np.asarray(list(wanted), dtype=np.int64), folded, normalize_rows(folded.vectors))

    def _user_vectors(
        self, users: Sequence[int | None], live: Sequence[list[int]]
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """User vectors for a batch, which users the model can place, and each one's recipes.

        A training user without live interactions uses their trained vector;
        anyone with live interactions is folded in from history + live items
        (all folds of the batch in one call); an unknown user with no known
        live item cannot be placed. A query with neither user nor live items
        asks for the population's vector (a fold-in of nothing: popularity).
        The recipes (history + live) are what the personal scorer reads.
        """
        model = self.model
        n = len(users)
        vectors = np.zeros((n, model.item_vectors.shape[1]), dtype=np.float32)
        found = np.zeros(n, dtype=bool)
        histories = [np.zeros(0, dtype=np.int64) for _ in range(n)]
        fold_rows: list[int] = []
        for row, (user_id, live_ids) in enumerate(zip(users, live, strict=True)):
            index = None if user_id is None else model.users.index_of(user_id)
            live_idx = known_indices(model.items, live_ids)
            if index is not None and live_idx.size == 0:
                vectors[row] = model.user_vectors[index]
                found[row] = True
                histories[row] = model.history(index)
                continue
            if index is None and live_idx.size == 0 and (user_id is not None or live_ids):
                continue
            histories[row] = live_idx if index is None else np.union1d(model.history(index), live_idx)
            fold_rows.append(row)
            found[row] = True
        if fold_rows:
            vectors[fold_rows] = model.fold_in([histories[row] for row in fold_rows])
        return vectors, found, histories

    def rank(self, queries: Sequence[RankQuery]) -> list[RankResult]:
        """Ranked recipes for each query, scored together and ranked by ``rank_rows`` (as offline evaluation)."""
        users, lives = [q.user_id for q in queries], [q.live_recipe_ids for q in queries]
        vectors, found, histories = self._user_vectors(users, lives)
        results = [RankResult(found=False) for _ in queries]
        for rows, columns in self._column_groups(queries, vectors, found, histories):
            group = self._rank(
                [queries[r] for r in rows], vectors[rows], [histories[r] for r in rows], found[rows], columns
            )
            for row, result in zip(rows, group, strict=True):
                results[row] = result
        return results

    def _column_groups(
        self, queries: Sequence[RankQuery], vectors: np.ndarray, found: np.ndarray, histories: list[np.ndarray]
    ) -> list[tuple[list[int], np.ndarray | None]]:
        """The rows of the batch and the recipes each group scores: every recipe, or retrieval's candidates.

        Below ``ann_min_recipes`` (or without an index) one group scores the
        whole catalogue: the answers of a model without retrieval, bit for bit.
        Above, the placed users' queries go through ``retrieve`` and are
        grouped by the recipes they score (``column_groups``).
        """
        model, index = self.model, self.model.index
        everyone = list(range(len(queries)))
        if index is None or self.ann_min_recipes is None or len(model.items) < self.ann_min_recipes:
            return [(everyone, None)]
        rows = [row for row in everyone if found[row]]
        requests = [self._candidate_query(queries[row], histories[row]) for row in rows]
        got = retrieve(index, query_rows(vectors[rows]), requests)
        return [([rows[i] for i in group], columns) for group, columns in column_groups(got)]

    def _candidate_query(self, query: RankQuery, history: np.ndarray) -> CandidateQuery:
        """What retrieval needs to know of one query: how many recipes, which are allowed, which are banned."""
        boosted = known_indices(self.model.items, list(query.boost)) if query.boost else np.zeros(0, dtype=np.int64)
        banned, allowed = self._filters(query, history)
        return CandidateQuery(candidate_pool(query.top_k, query.diversity), allowed, banned, boosted)

    def _filters(self, query: RankQuery, history: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The recipes a query never returns (its exclusions, live recipes, history) and those it may (or None)."""
        model = self.model
        banned = np.concatenate([known_indices(model.items, query.exclude_recipe_ids + query.live_recipe_ids), history])
        return banned, candidate_mask(model.items, model.item_fsa, query.include_recipe_ids, query.max_fsa_score)

    def _rank(
        self,
        queries: Sequence[RankQuery],
        vectors: np.ndarray,
        histories: list[np.ndarray],
        found: np.ndarray,
        columns: np.ndarray | None,
    ) -> list[RankResult]:
        """The answers of ``queries`` scored over ``columns`` (sorted recipe indices; None: every recipe).

        Every row is scored (one matrix product for the batch, whatever it
        holds), and only the rows of users the model placed (``found``) are ranked.
        """
        model = self.model
        space = ColumnSpace(columns)
        new = self.new_columns([q.new_recipes for q in queries])
        inputs = model.rank_inputs(vectors, model.history_rows(histories), columns, None if new is None else new.folded)
        column_ids = space.take(model.items.ids)
        owned = len(column_ids)
        unit = space.take(self.unit_item_vectors)
        if new is not None:
            column_ids = np.concatenate([column_ids, new.ids])
            unit = np.vstack([unit, new.unit])
        for row, query in enumerate(queries):
            if query.boost:
                pairs = [(rid, value) for rid, value in query.boost.items() if 0 <= rid <= MAX_ID]
                boost_ids = np.asarray([rid for rid, _ in pairs], dtype=np.int64)
                boost_idx = space.positions(model.items.indices(boost_ids))
                if new is not None:
                    for position in np.flatnonzero(np.isin(new.ids, boost_ids)):
                        boost_idx[boost_ids == new.ids[position]] = owned + position
                boost_val = np.asarray([value for _, value in pairs], dtype=np.float32)
                inputs.scores[row, boost_idx[boost_idx >= 0]] += boost_val[boost_idx >= 0]
                inputs.ranking[row, boost_idx[boost_idx >= 0]] += boost_val[boost_idx >= 0]
            banned, allowed = self._filters(query, histories[row])
            banned = space.positions(banned)
            exclude_recipes(inputs, row, banned[banned >= 0])
            if allowed is not None:
                exclude_recipes(inputs, row, np.flatnonzero(~space.take(allowed)))
            if new is not None:
                exclude_recipes(inputs, row, owned + np.flatnonzero(~new.allowed(query, query.live_recipe_ids)))
        positions = override_positions(inputs.positions, [q.personalization for q in queries])
        ranked: dict[int, np.ndarray] = {}
        for diversity in {q.diversity for q in queries}:
            rows = [r for r, q in enumerate(queries) if found[r] and q.diversity == diversity]
            if not rows:
                continue
            top = rank_rows(
                inputs.ranking[rows],
                max(queries[r].top_k for r in rows),
                diversity=diversity,
                unit_item_vectors=unit,
                personal=None if inputs.personal is None else inputs.personal[rows],
                positions=positions[rows],
            )
            ranked.update(zip(rows, top, strict=True))
        results = []
        for row, query in enumerate(queries):
            if not found[row]:
                results.append(RankResult(found=False))
                continue
            indices = ranked[row][: query.top_k]
            indices = indices[indices >= 0]
            results.append(
                RankResult(
                    found=True,
                    recipe_ids=column_ids[indices].tolist(),
                    scores=inputs.scores[row, indices].tolist(),
                    personalized_by=None if model.personal is None else model.personal.kind,
                    model_version=self.version,
                )
            )
        return results

    def similar_users(self, queries: Sequence[SimilarQuery]) -> list[SimilarResult]:
        """The most similar training users (cosine of user vectors) for each query."""
        if not self.model.supports_similarity:
            raise NotImplementedError(f"{self.model.kind} vectors carry no per-user signal")
        vectors, found, _ = self._user_vectors([q.user_id for q in queries], [q.live_recipe_ids for q in queries])
        sims = normalize_rows(vectors) @ self.unit_user_vectors.T
        results = []
        for row, query in enumerate(queries):
            if not found[row]:
                results.append(SimilarResult(found=False))
                continue
            index = self.model.users.index_of(query.user_id)
            if index is not None:
                sims[row, index] = -np.inf  # not one's own most similar user
            indices = top_k_rows(sims[row : row + 1], query.top_k)[0]
            indices = indices[np.isfinite(sims[row, indices])]
            picked = sims[row, indices]
            user_ids = self.model.users.ids[indices].tolist()
            results.append(
                SimilarResult(found=True, user_ids=user_ids, scores=picked.tolist(), model_version=self.version)
            )
        return results

    def similar_recipes(self, queries: Sequence[SimilarRecipeQuery]) -> list[RankResult]:
        """The recipes closest to each query's recipe (cosine of recipe vectors), with the ranking filters.

        Cosine, not the dot product: the dot product would favour recipes with
        long vectors (the popular ones) whatever the recipe on the page is.
        """
        if not self.model.supports_similarity:
            raise NotImplementedError(f"{self.model.kind} vectors carry no per-recipe signal")
        model = self.model
        results = []
        for query in queries:
            new = self.new_columns([query.new_recipes])
            index = model.items.index_of(query.recipe_id) if 0 <= query.recipe_id <= MAX_ID else None
            at_new = None if new is None or index is not None else new.position(query.recipe_id)
            if index is None and at_new is None:
                results.append(RankResult(found=False))
                continue
            unit, column_ids = self.unit_item_vectors, model.items.ids
            if new is not None:
                unit, column_ids = np.vstack([unit, new.unit]), np.concatenate([column_ids, new.ids])
            column = index if index is not None else len(model.items) + int(at_new or 0)
            # One row at a time: a matrix product over the batch sums in another order, and near-ties
            # would then rank differently in a batch than alone.
            sims = unit @ unit[column]
            ranking = sims.copy()
            ranking[known_indices(model.items, query.exclude_recipe_ids)] = -np.inf
            ranking[column] = -np.inf
            allowed = candidate_mask(model.items, model.item_fsa, query.include_recipe_ids, query.max_fsa_score)
            if allowed is not None:
                ranking[: len(model.items)][~allowed] = -np.inf
            if new is not None:
                ranking[len(model.items) :][~new.allowed(query)] = -np.inf
            top = rank_rows(ranking[None, :], query.top_k, diversity=query.diversity, unit_item_vectors=unit)[0]
            indices = top[top >= 0]
            results.append(
                RankResult(
                    found=True,
                    recipe_ids=column_ids[indices].tolist(),
                    scores=sims[indices].tolist(),
                    model_version=self.version,
                )
            )
        return results
