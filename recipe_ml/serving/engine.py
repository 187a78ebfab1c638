"""The recommendation logic behind every endpoint, without a web server.

A request goes: response cache → live interactions of the user → the
fallback chain (Two-Tower → ALS → popularity; a model that raises or is
slower than ``runner_timeout_seconds`` falls through, and the response says
which answered) → cache. Redis trouble never fails a request: the cache
swallows it and live interactions count as none.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from typing import TypeVar, cast

from recipe_ml.catalogue.filters import CatalogueView, LiveCatalogue, pick_fresh
from recipe_ml.config import Settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.attribution import Attributor
from recipe_ml.events.schema import InteractionEvent, new_recommendation_id
from recipe_ml.experiments import NO_EXPERIMENT, Variant
from recipe_ml.serving.backends import Backend, LocalBackend
from recipe_ml.serving.catalogue import CatalogueEndpoints
from recipe_ml.serving.errors import (
    BackendOverloadedError,
    NoModelError,
    StoreUnavailableError,
    UnknownRecipeError,
    UnknownUserError,
)
from recipe_ml.serving.impressions import Impression, ImpressionLog, open_impression_log
from recipe_ml.serving.options import RankOptions
from recipe_ml.serving.response_cache import CachedResponses, elapsed_ms
from recipe_ml.serving.schemas import (
    ActiveExperiment,
    BatchError,
    BatchRecipes,
    BatchRequest,
    BatchResponse,
    CatalogueHealth,
    ColdStartRequest,
    ColdStartResponse,
    ExperimentVariant,
    Health,
    InteractionAccepted,
    ModelUsed,
    Reachability,
    RecipeRequest,
    RecipeResponse,
    RefusedVersion,
    SimilarRecipesRequest,
    SimilarRecipesResponse,
    SimilarUsersRequest,
    SimilarUsersResponse,
)
from recipe_ml.serving.telemetry import ATTRIBUTION, FALLBACKS, FILTERED
from recipe_ml.serving.wire import (
    NewRecipe,
    RankQuery,
    RankResult,
    SimilarQuery,
    SimilarRecipeQuery,
    SimilarResult,
)
from recipe_ml.storage.base import CatalogueStore, InteractionStore, ResponseCache
from recipe_ml.storage.memory import MemoryCatalogue
from recipe_ml.storage.offload import StorageCalls

logger = logging.getLogger(__name__)

TRENDING_LIMIT = 500
"""Live trending recipes blended into cold-start popularity."""
MAX_NEW_RECIPES = 100
"""Recipes the models were not trained on that every query carries (the most trending of them)."""
NEW_RECIPES_SECONDS = 1.0
"""How long this process reuses the list of new recipes and their users before reading the store again."""
FRESH_POSITION = 10
"""The position of the top 10 the fresh slot takes (the last: a shorter list is the head of a longer one)."""

A = TypeVar("A", RankResult, SimilarResult)


def tcp_reachable(servers: str, timeout: float = 0.5) -> bool:
    """True when one of the comma-separated ``host:port`` accepts a connection."""
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


class RecommendationEngine:
    """Answers API requests through the cache, live state and the model chain."""

    def __init__(
        self,
        chain: Sequence[Backend],
        cache: ResponseCache,
        store: InteractionStore,
        settings: Settings,
        impressions: ImpressionLog | None = None,
        catalogue: CatalogueStore | None = None,
    ) -> None:
        if not chain:
            raise ValueError("the model chain needs at least one backend")
        self.chain = list(chain)
        self.cache = cache
        self.store = store
        self.settings = settings
        catalogue = catalogue if catalogue is not None else MemoryCatalogue(settings.catalogue_max_recipes)
        self.offload = StorageCalls(offload=cache.remote or store.remote or catalogue.remote)
        """How async code calls ``cache`` and ``store``: in a thread pool when remote, never on the event loop."""
        self.responses = CachedResponses(cache, self.offload, self.chain, settings)
        """The response cache as the endpoints use it (keys, hits, which answers are kept)."""
        self.catalogue = LiveCatalogue(catalogue, self.offload)
        """The catalogue's current version, whose filters every answer obeys (and whose version keys the cache)."""
        self.recipes = CatalogueEndpoints(catalogue, store, self.offload, self._known_recipe)
        """The catalogue routes."""
        self._local = next((b for b in self.chain if isinstance(b, LocalBackend)), None)
        """The in-process link (popularity): whose recipes and users say what the models were trained on."""
        self._new: tuple[float, list[NewRecipe], frozenset[int]] = (-NEW_RECIPES_SECONDS, [], frozenset())
        """(when read, the recipes the models were not trained on that have live interactions, with their users,
        the ids of those the models fold in): what every query carries, and what health and the fresh slot read."""
        self.experiment = settings.experiment()
        self._chains = {variant.name: _chain_of(self.chain, variant) for variant in self.experiment.variants}
        """Each variant's chain: the whole chain, or from the variant's ``first_model`` on."""
        self.impressions = impressions if impressions is not None else open_impression_log(settings, store)
        attributor = Attributor(
            store,
            self.impressions.publish_attribution,
            ATTRIBUTION,
            settings.attribution_window_hours * 3600,
            self.impressions.pending,
        )
        self._applier = EventApplier(store=store, cache=cache, attributor=attributor)

    def _known_recipe(self, recipe_id: int) -> bool:
        """True when the models were trained on the recipe (the in-process model's recipes: all were trained on
        the same ratings)."""
        return self._local is not None and recipe_id in self._local.slot.ranker.model.items

    def _folds(self, recipe: NewRecipe) -> bool:
        """True when enough users the models know tried ``recipe`` for the models to fold it in (as they do)."""
        if self._local is None:
            return False
        users = self._local.slot.ranker.model.users
        return len({user for user in recipe.user_ids if user in users}) >= self.settings.fold_in_min_users

    def _arm(self, user_id: int | None, forced: str | None) -> Variant:
        """The variant serving ``user_id``: the one the request forces (validated), else the assigned one."""
        variant = None if forced is None else self.experiment.variant(forced)
        return variant if variant is not None else self.experiment.assign(user_id)

    def _shown(self, endpoint: str, response: RecipeResponse | ColdStartResponse | SimilarRecipesResponse) -> None:
        """Publish the impression of a ranked list of recipes that is about to reach the client."""
        recipes = response.similar_recipes if isinstance(response, SimilarRecipesResponse) else response.recommendations
        user_id = getattr(response, "user_id", None)
        self._publish(endpoint, response, user_id, [r.recipe_id for r in recipes])

    def _publish(
        self,
        endpoint: str,
        response: RecipeResponse | ColdStartResponse | SimilarRecipesResponse | SimilarUsersResponse,
        user_id: int | None,
        ranked: list[int],
    ) -> None:
        if not self.impressions.enabled:  # IMPRESSION_LOG_ENABLED=false: not even the record is built
            return
        self.impressions.publish(
            Impression(
                recommendation_id=response.recommendation_id,
                endpoint=endpoint,
                variant=response.variant,
                model=response.model_used,
                model_version=response.model_version,
                user_id=user_id,
                recipe_ids=ranked,
            )
        )

    def _version(self, model_used: str, answer: RankResult | SimilarResult) -> str:
        """The store tag of the version that produced ``answer`` (it says so; else the link's last known one)."""
        return answer.model_version or next(b.version for b in self.chain if b.name == model_used)

    # -- the chain ---------------------------------------------------------
    async def _ask(
        self,
        variant: Variant,
        call: Callable[[Backend], Awaitable[list[A]]],
        failure: str,
        *,
        similarity: bool = False,
    ) -> tuple[ModelUsed, list[A]]:
        """The first answer down the chain; a failure or timeout falls through to the next model.

        The answering link's name is a published ``model_used`` value (the chain is the registry's kinds);
        the response model validates it, so a link of another name could never reach a client.
        """
        for backend in self._chains[variant.name]:
            if similarity and not backend.supports_similarity:
                continue
            try:
                return cast(ModelUsed, backend.name), await asyncio.wait_for(
                    call(backend), self.settings.runner_timeout_seconds
                )
            except Exception as exc:  # any failure of one model falls through to the next
                self._fell_through(backend, exc)
        raise NoModelError(failure)

    async def _ask_rank(self, variant: Variant, queries: list[RankQuery]) -> tuple[ModelUsed, list[RankResult]]:
        return await self._ask(variant, lambda backend: backend.rank(queries), "no model could rank recipes")

    async def _ask_similar(
        self, variant: Variant, queries: list[SimilarQuery]
    ) -> tuple[ModelUsed, list[SimilarResult]]:
        return await self._ask(
            variant,
            lambda backend: backend.similar_users(queries),
            "no model with user embeddings is available for similar users; try again later",
            similarity=True,
        )

    async def _ask_similar_recipes(
        self, variant: Variant, queries: list[SimilarRecipeQuery]
    ) -> tuple[ModelUsed, list[RankResult]]:
        return await self._ask(
            variant,
            lambda backend: backend.similar_recipes(queries),
            "no model with recipe embeddings is available for similar recipes; try again later",
            similarity=True,
        )

    @staticmethod
    def _fell_through(backend: Backend, exc: Exception) -> None:
        if isinstance(exc, TimeoutError):
            reason = "timeout"
        elif isinstance(exc, BackendOverloadedError):
            reason = "overloaded"
        else:
            reason = type(exc).__name__
        FALLBACKS.labels(backend.name, reason).inc()
        logger.warning("model %s failed (%s: %s); falling back", backend.name, reason, exc)

    # -- state ---------------------------------------------------------------
    async def new_recipes(self) -> list[NewRecipe]:
        """The trending recipes the models were not trained on, with their users: what every query carries.

        Read at most every ``NEW_RECIPES_SECONDS`` (two round trips); the last list while the store is down.
        """
        read_at, known, _ = self._new
        if time.monotonic() - read_at < NEW_RECIPES_SECONDS:
            return known
        try:
            trending = await self.offload(self.store.trending, TRENDING_LIMIT)
            unknown = [recipe for recipe, _ in trending if not self._known_recipe(recipe)][:MAX_NEW_RECIPES]
            users = await self.offload(self.store.recipe_users, unknown)
        except Exception as exc:  # the store being down degrades, never fails, a request
            logger.warning("interaction store unavailable (%s); serving the new recipes last read", exc)
            return known
        fresh = [NewRecipe(recipe_id=recipe, user_ids=ids) for recipe, ids in zip(unknown, users, strict=True)]
        self._new = (time.monotonic(), fresh, frozenset(recipe.recipe_id for recipe in fresh if self._folds(recipe)))
        return fresh

    def _folded_in(self) -> int:
        """How many of the new recipes last read enough users the models know tried for the models to fold them in.

        From the list the queries carry, not read afresh: health pings the stores, it does not use them.
        """
        return len(self._new[2])

    def _fresh_slots(self, variant: Variant) -> int:
        """FRESH_RECIPE_SLOTS, or the variant's override of it."""
        slots = variant.overrides.fresh_recipe_slots
        return self.settings.fresh_recipe_slots if slots is None else slots

    def _fresh_candidates(self, view: CatalogueView, variant: Variant) -> list[int]:
        """Recently published recipes the models do not know and too few users have tried (newest first); none
        when the variant has no fresh slot. "Tried" is what the new recipes last read (``new_recipes``) say."""
        if self._fresh_slots(variant) == 0:
            return []
        since = time.time() - self.settings.fresh_recipe_days * 86400
        tried = self._new[2]
        recent = itertools.takewhile(lambda entry: entry[0] >= since, view.published)
        return [recipe for _, recipe in recent if recipe not in tried and not self._known_recipe(recipe)]

    @staticmethod
    def _with_fresh(
        answer: RankResult,
        options: RankOptions,
        user_id: int | None,
        fresh: list[int],
        live: list[int],
    ) -> RankResult:
        """``answer`` with its ``FRESH_POSITION`` given to one of the ``fresh`` recipes (``_fresh_candidates``),
        when the list allows."""
        if not fresh or options.top_k < FRESH_POSITION or options.max_fsa_score is not None:
            return answer
        banned = {*options.exclude_recipe_ids, *live}
        if options.include_recipe_ids is not None:
            included = set(options.include_recipe_ids)
            fresh = [recipe for recipe in fresh if recipe in included]
        picked = pick_fresh(fresh, user_id, answer.recipe_ids, banned)
        if picked is None:
            return answer
        at = min(FRESH_POSITION, len(answer.recipe_ids) + 1) - 1
        ids, scores = list(answer.recipe_ids), list(answer.scores)
        ids.insert(at, picked)
        scores.insert(at, scores[at - 1] if at > 0 else 0.0)
        return answer.model_copy(update={"recipe_ids": ids[: options.top_k], "scores": scores[: options.top_k]})

    async def _live(self, user_ids: Sequence[int]) -> list[list[int]]:
        """Recipes each user interacted with since training (one store round trip); none when it is down."""
        if not user_ids:
            return []
        try:
            return await self.offload(self.store.recent_items_many, user_ids)
        except Exception as exc:  # the store being down degrades, never fails, a request
            logger.warning("interaction store unavailable (%s); serving without live interactions", exc)
            return [[] for _ in user_ids]

    async def _trending_boost(self) -> dict[int, float]:
        """Recency-decayed live popularity scaled to [0, 1], added to trained popularity."""
        try:
            trending = await self.offload(self.store.trending, TRENDING_LIMIT)
        except Exception as exc:  # the store being down degrades, never fails, a request
            logger.warning("interaction store unavailable (%s); cold-start without trending", exc)
            return {}
        top = max((weight for _, weight in trending), default=0.0)
        return {rid: weight / top for rid, weight in trending} if top > 0 else {}

    # -- endpoints -------------------------------------------------------------
    async def recommend(self, request: RecipeRequest) -> RecipeResponse:
        """Personal recommendations; raises ``UnknownUserError``."""
        started = time.perf_counter()
        results = await self._recommend_users([request.user_id], request.rank_options(), started, request.variant)
        result = results[request.user_id]
        if isinstance(result, UnknownUserError):
            raise result
        self._shown("recipes", result)
        return result

    async def recommend_batch(self, request: BatchRequest) -> BatchResponse:
        """One result per user, in the request's order (a repeated id answers twice)."""
        started = time.perf_counter()
        results = await self._recommend_users(request.user_ids, request.rank_options(), started, request.variant)
        for result in results.values():
            if not isinstance(result, UnknownUserError):
                self._shown("batch", result)
        return BatchResponse(
            results=[_batch_entry(uid, results[uid]) for uid in request.user_ids], latency_ms=elapsed_ms(started)
        )

    async def _recommend_users(
        self, requested: Sequence[int], options: RankOptions, started: float, forced: str | None
    ) -> dict[int, RecipeResponse | UnknownUserError]:
        """The answer (or the error) for each distinct user, each user served by their variant."""
        arms: dict[str, tuple[Variant, list[int]]] = {}
        for user_id in dict.fromkeys(requested):
            variant = self._arm(user_id, forced)
            arms.setdefault(variant.name, (variant, []))[1].append(user_id)
        if len(arms) == 1:
            ((variant, user_ids),) = arms.values()
            return await self._recommend_arm(variant, user_ids, options, started)
        parts = await asyncio.gather(
            *(self._recommend_arm(variant, user_ids, options, started) for variant, user_ids in arms.values())
        )
        return {user_id: result for part in parts for user_id, result in part.items()}

    async def _recommend_arm(
        self, variant: Variant, user_ids: list[int], request_options: RankOptions, started: float
    ) -> dict[int, RecipeResponse | UnknownUserError]:
        """The answers of one variant's users; hits come from the cache, misses are scored as one batch.

        A user's answer is cached under the user, the variant and the options, whether it was asked alone
        or in a batch. The cache and the live interactions are each read in one round trip for the batch.
        """
        results: dict[int, RecipeResponse | UnknownUserError] = {}
        options = _overridden(request_options, variant)
        view = await self.catalogue.view()
        serving = self.responses.serving(view.version)
        keys = [
            self.responses.key("recipes", f"{user_id}:{variant.name}:{options.key}", serving) for user_id in user_ids
        ]
        missed: list[tuple[int, str]] = []
        hits = await self.responses.read_many("recipes", keys, RecipeResponse, started)
        for user_id, key, hit in zip(user_ids, keys, hits, strict=True):
            if hit is not None:
                results[user_id] = hit
            else:
                missed.append((user_id, key))
        if not missed:
            return results
        lives = await self._live([user_id for user_id, _ in missed])
        filtered = _filtered(view, options)
        new = await self.new_recipes()
        fresh = self._fresh_candidates(view, variant)
        queries = [
            RankQuery.of(filtered, user_id, live, new_recipes=new)
            for (user_id, _), live in zip(missed, lives, strict=True)
        ]
        model_used, answers = await self._ask_rank(variant, queries)
        for (user_id, key), answer, live in zip(missed, answers, lives, strict=True):
            if not answer.found:
                results[user_id] = UnknownUserError(user_id)
                continue
            answer = self._with_fresh(answer, filtered, user_id, fresh, live)
            response = RecipeResponse(
                recommendation_id=new_recommendation_id(),
                variant=variant.name,
                user_id=user_id,
                recommendations=answer.recommendations(),
                exhausted=len(answer.recipe_ids) < options.top_k,
                model_used=model_used,
                personalized_by=answer.personalized_by,
                model_version=self._version(model_used, answer),
                latency_ms=elapsed_ms(started),
            )
            await self.responses.keep(key, response, serving, user_id)
            results[user_id] = response
        return results

    async def cold_start(self, request: ColdStartRequest) -> ColdStartResponse:
        """Fold-in from a new user's first recipes, else popularity blended with trending.

        Not cached: trending moves with every interaction and this path is cheap.
        """
        started = time.perf_counter()
        variant = self._arm(None, request.variant)
        view = await self.catalogue.view()
        options = _filtered(view, _overridden(request.rank_options(), variant))
        response = await self._cold_start(request, variant, options, view, started)
        self._shown("cold_start", response)
        return response

    async def _cold_start(
        self, request: ColdStartRequest, variant: Variant, options: RankOptions, view: CatalogueView, started: float
    ) -> ColdStartResponse:
        new = await self.new_recipes()
        fresh = self._fresh_candidates(view, variant)
        if request.recent_recipe_ids:
            query = RankQuery.of(options, None, request.recent_recipe_ids, new_recipes=new)
            model_used, (answer,) = await self._ask_rank(variant, [query])
            if answer.found:
                answer = self._with_fresh(answer, options, None, fresh, request.recent_recipe_ids)
                return ColdStartResponse(
                    recommendation_id=new_recommendation_id(),
                    variant=variant.name,
                    recommendations=answer.recommendations(),
                    exhausted=len(answer.recipe_ids) < options.top_k,
                    model_used=model_used,
                    personalized_by=answer.personalized_by,
                    model_version=self._version(model_used, answer),
                    latency_ms=elapsed_ms(started),
                )
        popularity = self.chain[-1]
        unseen = replace(options, exclude_recipe_ids=[*options.exclude_recipe_ids, *request.recent_recipe_ids])
        boost = await self._trending_boost()
        (answer,) = await popularity.rank([RankQuery.of(unseen, None, [], boost=boost, new_recipes=new)])
        answer = self._with_fresh(answer, unseen, None, fresh, [])
        return ColdStartResponse(
            recommendation_id=new_recommendation_id(),
            variant=variant.name,
            recommendations=answer.recommendations(),
            exhausted=len(answer.recipe_ids) < options.top_k,
            model_used=cast(ModelUsed, popularity.name),
            personalized_by=answer.personalized_by,
            model_version=answer.model_version or popularity.version,
            latency_ms=elapsed_ms(started),
        )

    async def similar_users(self, request: SimilarUsersRequest) -> SimilarUsersResponse:
        """Training users closest to this one in embedding space; raises ``UnknownUserError``."""
        started = time.perf_counter()
        variant = self._arm(request.user_id, request.variant)
        response = await self._similar_users(request, variant, started)
        self._publish("users", response, request.user_id, [user.user_id for user in response.similar_users])
        return response

    async def _similar_users(
        self, request: SimilarUsersRequest, variant: Variant, started: float
    ) -> SimilarUsersResponse:
        serving = self.responses.serving(None)
        key = self.responses.key("users", f"{variant.name}:{request.model_dump_json()}", serving)
        hit = await self.responses.read("users", key, SimilarUsersResponse, started)
        if hit is not None:
            return hit
        (live,) = await self._live([request.user_id])
        query = SimilarQuery(user_id=request.user_id, live_recipe_ids=live, top_k=request.top_k)
        model_used, (answer,) = await self._ask_similar(variant, [query])
        if not answer.found:
            raise UnknownUserError(request.user_id)
        response = SimilarUsersResponse(
            recommendation_id=new_recommendation_id(),
            variant=variant.name,
            user_id=request.user_id,
            similar_users=answer.similar_users(),
            model_used=model_used,
            model_version=self._version(model_used, answer),
            latency_ms=elapsed_ms(started),
        )
        await self.responses.keep(key, response, serving, request.user_id)
        return response

    async def similar_recipes(self, request: SimilarRecipesRequest) -> SimilarRecipesResponse:
        """The recipes closest to one recipe ("more like this"); raises ``UnknownRecipeError``.

        Not personal, so the cached answer is shared by every user and no
        interaction invalidates it (it expires with the TTL or a new model version).
        """
        started = time.perf_counter()
        variant = self._arm(None, request.variant)
        response = await self._similar_recipes(request, variant, started)
        self._shown("similar_recipes", response)
        return response

    async def _similar_recipes(
        self, request: SimilarRecipesRequest, variant: Variant, started: float
    ) -> SimilarRecipesResponse:
        view = await self.catalogue.view()
        serving = self.responses.serving(view.version)
        options = _overridden(request.rank_options(), variant)
        key = self.responses.key("similar_recipes", f"{variant.name}:{options.key}:{request.recipe_id}", serving)
        hit = await self.responses.read("similar_recipes", key, SimilarRecipesResponse, started)
        if hit is not None:
            return hit
        query = SimilarRecipeQuery.of(_filtered(view, options), request.recipe_id, await self.new_recipes())
        model_used, (answer,) = await self._ask_similar_recipes(variant, [query])
        if not answer.found:
            raise UnknownRecipeError(request.recipe_id)
        response = SimilarRecipesResponse(
            recommendation_id=new_recommendation_id(),
            variant=variant.name,
            recipe_id=request.recipe_id,
            similar_recipes=answer.recommendations(),
            exhausted=len(answer.recipe_ids) < options.top_k,
            model_used=model_used,
            model_version=self._version(model_used, answer),
            latency_ms=elapsed_ms(started),
        )
        await self.responses.keep(key, response, serving, None)
        return response

    async def record_interaction(self, event: InteractionEvent) -> InteractionAccepted:
        """Apply one event (the consumer's code path); raises ``StoreUnavailableError`` while the store is down."""
        try:
            applied = await self.offload(self._applier.apply, event)
        except self.store.unavailable as exc:
            raise StoreUnavailableError(f"interaction store unavailable ({type(exc).__name__}); retry later") from exc
        return InteractionAccepted(applied=applied, duplicate=not applied, event_id=event.dedupe_id())

    async def refresh(self) -> list[bool | BaseException]:
        """Ping every model: each says which version it serves now (runners swap on their own); cache keys follow."""
        return await asyncio.gather(
            *(asyncio.wait_for(b.ping(), self.settings.runner_timeout_seconds) for b in self.chain),
            return_exceptions=True,
        )

    async def health(self) -> Health:
        """Model versions, refused ones and reachability; "degraded" (not down) when anything but popularity is out."""
        settings = self.settings
        pings = await self.refresh()
        models = {b.name: (b.version if ok is True else "unavailable") for b, ok in zip(self.chain, pings, strict=True)}
        refused = {b.name: RefusedVersion(**asdict(b.refused)) for b in self.chain if b.refused is not None}
        redis: Reachability
        kafka: Reachability
        if settings.redis_url is None:
            redis = "not configured"
        else:
            redis = "ok" if await self.offload(self.cache.ping) else "unreachable"
        if settings.kafka_bootstrap_servers is None:
            kafka = "not configured"
        else:
            reachable = await asyncio.to_thread(tcp_reachable, settings.kafka_bootstrap_servers)
            kafka = "ok" if reachable else "unreachable"
        degraded = "unavailable" in models.values() or "unreachable" in (redis, kafka)
        view = await self.catalogue.view()
        return Health(
            status="degraded" if degraded else "ok",
            models=models,
            refused=refused,
            personalization={b.name: b.personalization for b in self.chain},
            redis=redis,
            kafka=kafka,
            experiment=self._active_experiment(),
            catalogue=CatalogueHealth(
                recipes=view.size, hidden=view.hidden, version=view.version, folded_in=self._folded_in()
            ),
        )

    def _active_experiment(self) -> ActiveExperiment | None:
        if self.experiment is NO_EXPERIMENT:
            return None
        variants = [
            ExperimentVariant(
                name=variant.name, weight=variant.weight, overrides=variant.overrides.model_dump(exclude_none=True)
            )
            for variant in self.experiment.variants
        ]
        return ActiveExperiment(name=self.experiment.name, variants=variants)


def _chain_of(chain: list[Backend], variant: Variant) -> list[Backend]:
    """The chain from the variant's ``first_model`` on (all of it when it names none, or a model not in it)."""
    names = [backend.name for backend in chain]
    first = variant.overrides.first_model
    return chain[names.index(first) :] if first in names else chain


def _overridden(options: RankOptions, variant: Variant) -> RankOptions:
    """The request's options with what the variant overrides."""
    overrides = variant.overrides
    if overrides.diversity is not None:
        options = replace(options, diversity=overrides.diversity)
    if overrides.personalization is not None:
        options = replace(options, personalization=overrides.personalization)
    return options


def _filtered(view: CatalogueView, options: RankOptions) -> RankOptions:
    """``options`` with the catalogue's filters as recipe ids, and what they kept out counted."""
    filtered, resolved = view.apply(options)
    for name, count in resolved.kept_out.items():
        if count:
            FILTERED.labels(name).inc(count)
    return filtered


def _batch_entry(user_id: int, result: RecipeResponse | UnknownUserError) -> BatchRecipes | BatchError:
    if isinstance(result, UnknownUserError):
        return BatchError(user_id=user_id, problem=result.problem())
    return BatchRecipes.of(result)
