"""A loaded model answering batches of queries as one matrix product.

The two runner services and the in-process popularity fallback all wrap a
``ModelRanker``, so batching, fold-in and the ranking rules are written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from recipe_ml.data import IdMap
from recipe_ml.models.base import Recommender
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
from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult


def known_indices(ids: IdMap, raw_ids: list[int]) -> np.ndarray:
    """Indices of the ids the model knows; unknown ones (even beyond int64,
    as a live event may carry) are dropped."""
    in_range = np.asarray([raw for raw in raw_ids if 0 <= raw <= MAX_ID], dtype=np.int64)
    indices = ids.indices(in_range)
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


class ModelRanker:
    """Scores users against every recipe (and every user) for one model."""

    def __init__(
        self, model: Recommender, version: str, *, precompute: bool = True, ann_min_recipes: int | None = None
    ) -> None:
        self.model = model
        self.version = version
        """The model store tag: in every answer (``model_version``) and every cache key."""
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
        inputs = model.rank_inputs(vectors, model.history_rows(histories), columns)
        for row, query in enumerate(queries):
            if query.boost:
                pairs = [(rid, value) for rid, value in query.boost.items() if 0 <= rid <= MAX_ID]
                boost_idx = space.positions(model.items.indices(np.asarray([rid for rid, _ in pairs], dtype=np.int64)))
                boost_val = np.asarray([value for _, value in pairs], dtype=np.float32)
                inputs.scores[row, boost_idx[boost_idx >= 0]] += boost_val[boost_idx >= 0]
                inputs.ranking[row, boost_idx[boost_idx >= 0]] += boost_val[boost_idx >= 0]
            banned, allowed = self._filters(query, histories[row])
            banned = space.positions(banned)
            exclude_recipes(inputs, row, banned[banned >= 0])
            if allowed is not None:
                exclude_recipes(inputs, row, ~space.take(allowed))
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
                unit_item_vectors=space.take(self.unit_item_vectors),
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
                    recipe_ids=model.items.ids[space.recipes(indices)].tolist(),
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
            index = model.items.index_of(query.recipe_id) if 0 <= query.recipe_id <= MAX_ID else None
            if index is None:
                results.append(RankResult(found=False))
                continue
            # One row at a time: a matrix product over the batch sums in another order, and near-ties
            # would then rank differently in a batch than alone.
            sims = self.unit_item_vectors @ self.unit_item_vectors[index]
            ranking = sims.copy()
            exclude = np.concatenate([known_indices(model.items, query.exclude_recipe_ids), [index]]).astype(np.int64)
            ranking[exclude] = -np.inf
            allowed = candidate_mask(model.items, model.item_fsa, query.include_recipe_ids, query.max_fsa_score)
            if allowed is not None:
                ranking[~allowed] = -np.inf
            top = rank_rows(
                ranking[None, :], query.top_k, diversity=query.diversity, unit_item_vectors=self.unit_item_vectors
            )[0]
            indices = top[top >= 0]
            results.append(
                RankResult(
                    found=True,
                    recipe_ids=model.items.ids[indices].tolist(),
                    scores=sims[indices].tolist(),
                    model_version=self.version,
                )
            )
        return results
