"""The recommendation logic behind every endpoint, without a web server.

A request goes: response cache → live interactions of the user → the
fallback chain (Two-Tower → ALS → popularity; a model that raises or is
slower than ``runner_timeout_seconds`` falls through, and the response says
which answered) → cache. Redis trouble never fails a request: the cache
swallows it and live interactions count as none.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

from pydantic import BaseModel

from recipe_ml.config import Settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.schema import InteractionEvent
from recipe_ml.serving.backends import Backend
from recipe_ml.serving.errors import (
    BackendOverloadedError,
    NoModelError,
    StoreUnavailableError,
    UnknownRecipeError,
    UnknownUserError,
)
from recipe_ml.serving.schemas import (
    BatchError,
    BatchRecipes,
    BatchRequest,
    BatchResponse,
    ColdStartRequest,
    ColdStartResponse,
    InteractionAccepted,
    RecipeRequest,
    RecipeResponse,
    SimilarRecipesRequest,
    SimilarRecipesResponse,
    SimilarUsersRequest,
    SimilarUsersResponse,
)
from recipe_ml.serving.telemetry import CACHE, FALLBACKS
from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult
from recipe_ml.storage.base import InteractionStore, ResponseCache
from recipe_ml.storage.offload import StorageCalls

logger = logging.getLogger(__name__)

TRENDING_LIMIT = 500
"""Live trending recipes blended into cold-start popularity."""

R = TypeVar("R", bound=BaseModel)
A = TypeVar("A", RankResult, SimilarResult)
Answer = RecipeResponse | SimilarUsersResponse | SimilarRecipesResponse


@dataclass(frozen=True)
class Serving:
    """The model versions one request is keyed on: all of the chain (the key), the preferred one's (``head``)."""

    key: str
    head: str


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
    ) -> None:
        if not chain:
            raise ValueError("the model chain needs at least one backend")
        self.chain = list(chain)
        self.cache = cache
        self.store = store
        self.settings = settings
        self.storage = StorageCalls(offload=cache.remote or store.remote)
        """How async code calls ``cache`` and ``store``: never on the event loop when they are remote."""
        self._applier = EventApplier(store=store, cache=cache)

    # -- the chain ---------------------------------------------------------
    async def _ask(
        self, call: Callable[[Backend], Awaitable[list[A]]], failure: str, *, similarity: bool = False
    ) -> tuple[Backend, list[A]]:
        """The backend that answered first down the chain, and its answers; a failure or timeout falls through."""
        for backend in self.chain:
            if similarity and not backend.supports_similarity:
                continue
            try:
                return backend, await asyncio.wait_for(call(backend), self.settings.runner_timeout_seconds)
            except Exception as exc:  # any failure of one model falls through to the next
                self._fell_through(backend, exc)
        raise NoModelError(failure)

    async def _ask_recommend(self, queries: list[RankQuery]) -> tuple[Backend, list[RankResult]]:
        return await self._ask(lambda backend: backend.recommend(queries), "no model could rank recipes")

    async def _ask_similar(self, queries: list[SimilarQuery]) -> tuple[Backend, list[SimilarResult]]:
        return await self._ask(
            lambda backend: backend.similar_users(queries),
            "no model with user embeddings is available for similar users; try again later",
            similarity=True,
        )

    async def _ask_similar_recipes(self, queries: list[SimilarRecipeQuery]) -> tuple[Backend, list[RankResult]]:
        return await self._ask(
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
    async def _live(self, user_ids: Sequence[int]) -> list[list[int]]:
        """Recipes each user interacted with since training (one store round trip); none when it is down."""
        if not user_ids:
            return []
        try:
            return await self.storage(self.store.recent_items_many, user_ids)
        except Exception as exc:  # the store being down degrades, never fails, a request
            logger.warning("interaction store unavailable (%s); serving without live interactions", exc)
            return [[] for _ in user_ids]

    async def _trending_boost(self) -> dict[int, float]:
        """Recency-decayed live popularity scaled to [0, 1], added to trained popularity."""
        try:
            trending = await self.storage(self.store.trending, TRENDING_LIMIT)
        except Exception as exc:  # the store being down degrades, never fails, a request
            logger.warning("interaction store unavailable (%s); cold-start without trending", exc)
            return {}
        top = max((weight for _, weight in trending), default=0.0)
        return {rid: weight / top for rid, weight in trending} if top > 0 else {}

    def _serving(self) -> Serving:
        """The versions serving now, as this process last heard (a swap changes them)."""
        versions = "|".join(f"{b.name}={b.version}" for b in self.chain)
        return Serving(hashlib.sha1(versions.encode()).hexdigest()[:12], self.chain[0].version)

    @staticmethod
    def _key(endpoint: str, request: BaseModel, serving: Serving) -> str:
        return f"resp:{serving.key}:{endpoint}:{request.model_dump_json()}"

    @staticmethod
    def _cached(endpoint: str, raw: bytes | None, response_type: type[R], started: float) -> R | None:
        """The response a cache lookup found (counted as a hit or a miss)."""
        CACHE.labels(endpoint, "miss" if raw is None else "hit").inc()
        if raw is None:
            return None
        return response_type.model_validate_json(raw).model_copy(
            update={"cached": True, "latency_ms": _elapsed_ms(started)}
        )

    async def _store(self, key: str, response: Answer, serving: Serving, user_id: int | None) -> None:
        """Cache only answers of the preferred model's version the key names.

        A fallback answer is not kept for a TTL after the preferred model is
        back; an answer of a version swapped in since the key was made is not
        kept under the old version's key.
        """
        ttl = self.settings.cache_ttl_seconds
        if response.model_version == serving.head and ttl > 0:
            await self.storage(self.cache.set, key, response.model_dump_json().encode(), ttl, user_id=user_id)

    # -- endpoints -------------------------------------------------------------
    @staticmethod
    def _rank_query(
        request: RecipeRequest | BatchRequest | ColdStartRequest, user_id: int | None, live: list[int]
    ) -> RankQuery:
        return RankQuery.model_validate({"user_id": user_id, "live_recipe_ids": live, **request.ranking_options()})

    async def recommend(self, request: RecipeRequest) -> RecipeResponse:
        """Personal recommendations; raises ``UnknownUserError``."""
        result = (await self._recommend_users(_as_batch(request), time.perf_counter()))[request.user_id]
        if isinstance(result, UnknownUserError):
            raise result
        return result

    async def recommend_batch(self, request: BatchRequest) -> BatchResponse:
        """One result per user, in the request's order (a repeated id answers twice)."""
        started = time.perf_counter()
        results = await self._recommend_users(request, started)
        return BatchResponse(
            results=[_batch_entry(uid, results[uid]) for uid in request.user_ids], latency_ms=_elapsed_ms(started)
        )

    async def _recommend_users(
        self, request: BatchRequest, started: float
    ) -> dict[int, RecipeResponse | UnknownUserError]:
        """The answer (or the error) for each distinct user; hits come from the cache, misses are scored as one batch.

        The cache and the live interactions are each read in one round trip for the whole batch.
        """
        results: dict[int, RecipeResponse | UnknownUserError] = {}
        user_ids = list(dict.fromkeys(request.user_ids))
        serving = self._serving()
        keys = [self._key("recipes", _single(request, user_id), serving) for user_id in user_ids]
        missed: list[tuple[int, str]] = []
        raws = await self.storage(self.cache.get_many, keys)
        for user_id, key, raw in zip(user_ids, keys, raws, strict=True):
            hit = self._cached("recipes", raw, RecipeResponse, started)
            if hit is not None:
                results[user_id] = hit
            else:
                missed.append((user_id, key))
        lives = await self._live([user_id for user_id, _ in missed])
        misses = {
            user_id: (key, self._rank_query(request, user_id, live))
            for (user_id, key), live in zip(missed, lives, strict=True)
        }
        if misses:
            backend, answers = await self._ask_recommend([query for _, query in misses.values()])
            for (user_id, (key, _)), answer in zip(misses.items(), answers, strict=True):
                if not answer.found:
                    results[user_id] = UnknownUserError(user_id)
                    continue
                response = RecipeResponse(
                    user_id=user_id,
                    recommendations=answer.recommendations(),
                    model_used=answer.model_used or backend.name,
                    model_version=answer.model_version or backend.version,
                    latency_ms=_elapsed_ms(started),
                )
                await self._store(key, response, serving, user_id)
                results[user_id] = response
        return results

    async def cold_start(self, request: ColdStartRequest) -> ColdStartResponse:
        """Fold-in from a new user's first recipes, else popularity blended with trending.

        Not cached: trending moves with every interaction and this path is cheap.
        """
        started = time.perf_counter()
        query = self._rank_query(request, None, [])
        if request.recent_recipe_ids:
            backend, (answer,) = await self._ask_recommend(
                [query.model_copy(update={"live_recipe_ids": request.recent_recipe_ids})]
            )
            if answer.found:
                return ColdStartResponse(
                    recommendations=answer.recommendations(),
                    model_used=answer.model_used or backend.name,
                    model_version=answer.model_version or backend.version,
                    latency_ms=_elapsed_ms(started),
                )
        popularity = self.chain[-1]
        (answer,) = await popularity.recommend(
            [
                query.model_copy(
                    update={
                        "boost": await self._trending_boost(),
                        "exclude_recipe_ids": [*request.exclude_recipe_ids, *request.recent_recipe_ids],
                    }
                )
            ]
        )
        return ColdStartResponse(
            recommendations=answer.recommendations(),
            model_used=answer.model_used or popularity.name,
            model_version=answer.model_version or popularity.version,
            latency_ms=_elapsed_ms(started),
        )

    async def similar_users(self, request: SimilarUsersRequest) -> SimilarUsersResponse:
        """Training users closest to this one in embedding space; raises ``UnknownUserError``."""
        started = time.perf_counter()
        serving = self._serving()
        key = self._key("users", request, serving)
        hit = self._cached("users", await self.storage(self.cache.get, key), SimilarUsersResponse, started)
        if hit is not None:
            return hit
        (live,) = await self._live([request.user_id])
        query = SimilarQuery(user_id=request.user_id, live_recipe_ids=live, top_k=request.top_k)
        backend, (answer,) = await self._ask_similar([query])
        if not answer.found:
            raise UnknownUserError(request.user_id)
        response = SimilarUsersResponse(
            user_id=request.user_id,
            similar_users=answer.similar_users(),
            model_used=backend.name,
            model_version=answer.model_version or backend.version,
            latency_ms=_elapsed_ms(started),
        )
        await self._store(key, response, serving, request.user_id)
        return response

    async def similar_recipes(self, request: SimilarRecipesRequest) -> SimilarRecipesResponse:
        """The recipes closest to one recipe ("more like this"); raises ``UnknownRecipeError``.

        Not personal, so the cached answer is shared by every user and no
        interaction invalidates it (it expires with the TTL or a new model version).
        """
        started = time.perf_counter()
        serving = self._serving()
        key = self._key("similar_recipes", request, serving)
        hit = self._cached("similar_recipes", await self.storage(self.cache.get, key), SimilarRecipesResponse, started)
        if hit is not None:
            return hit
        query = SimilarRecipeQuery.model_validate({"recipe_id": request.recipe_id, **request.ranking_options()})
        backend, (answer,) = await self._ask_similar_recipes([query])
        if not answer.found:
            raise UnknownRecipeError(request.recipe_id)
        response = SimilarRecipesResponse(
            recipe_id=request.recipe_id,
            similar_recipes=answer.recommendations(),
            model_used=backend.name,
            model_version=answer.model_version or backend.version,
            latency_ms=_elapsed_ms(started),
        )
        await self._store(key, response, serving, None)
        return response

    async def record_interaction(self, event: InteractionEvent) -> InteractionAccepted:
        """Apply one event (the consumer's code path); raises ``StoreUnavailableError`` while the store is down."""
        try:
            applied = await self.storage(self._applier.apply, event)
        except self.store.unavailable as exc:
            raise StoreUnavailableError(f"interaction store unavailable ({type(exc).__name__}); retry later") from exc
        return InteractionAccepted(applied=applied, duplicate=not applied, event_id=event.dedupe_id())

    async def refresh(self) -> list[bool | BaseException]:
        """Ping every model: each says which version it serves now (runners swap on their own); cache keys follow."""
        return await asyncio.gather(
            *(asyncio.wait_for(b.ping(), self.settings.runner_timeout_seconds) for b in self.chain),
            return_exceptions=True,
        )

    async def health(self) -> dict[str, object]:
        """Model versions, refused ones and reachability; "degraded" (not down) when anything but popularity is out."""
        settings = self.settings
        pings = await self.refresh()
        models = {b.name: (b.version if ok is True else "unavailable") for b, ok in zip(self.chain, pings, strict=True)}
        refused = {b.name: asdict(b.refused) for b in self.chain if b.refused is not None}
        if settings.redis_url is None:
            redis = "not configured"
        else:
            redis = "ok" if await self.storage(self.cache.ping) else "unreachable"
        if settings.kafka_bootstrap_servers is None:
            kafka = "not configured"
        else:
            reachable = await asyncio.to_thread(tcp_reachable, settings.kafka_bootstrap_servers)
            kafka = "ok" if reachable else "unreachable"
        degraded = "unavailable" in models.values() or "unreachable" in (redis, kafka)
        personalization = {b.name: b.personalization for b in self.chain}
        return {
            "status": "degraded" if degraded else "ok",
            "models": models,
            "refused": refused,
            "personalization": personalization,
            "redis": redis,
            "kafka": kafka,
        }


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def _batch_entry(user_id: int, result: RecipeResponse | UnknownUserError) -> BatchRecipes | BatchError:
    if isinstance(result, UnknownUserError):
        return BatchError(user_id=user_id, problem=result.problem())
    return BatchRecipes.model_validate(result.model_dump())


def _single(request: BatchRequest, user_id: int) -> RecipeRequest:
    """The single-user request a batch entry stands for (same cache entry)."""
    return RecipeRequest.model_validate({"user_id": user_id, **request.ranking_options()})


def _as_batch(request: RecipeRequest) -> BatchRequest:
    return BatchRequest.model_validate({"user_ids": [request.user_id], **request.ranking_options()})
