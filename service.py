"""The recipe recommendation API: ``bentoml serve service:RecipeService``.

Thin on purpose: it parses HTTP, hands requests to ``RecommendationEngine``
(``recipe_ml.serving``) and turns its answers and errors into JSON. The two
model runners are separate services composed with ``bentoml.depends``; the
popularity model is small and scored in this process, so it is the fallback
that cannot fail. This process never imports torch.

Routes are a Starlette app mounted under ``/api`` (BentoML's own ``/healthz``,
``/readyz`` and ``/metrics`` stay where BentoML puts them): that gives GET
routes and full control of error bodies, so every malformed request is a 4xx
JSON naming the field, never a 500.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import bentoml
import redis
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from edge.model_store import load_from_store, store_entry
from recipe_ml.config import get_settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.schema import InteractionEvent
from recipe_ml.serving.engine import Backend, LocalBackend, NoModelError, RecommendationEngine, UnknownUserError
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ColdStartRequest,
    RankQuery,
    RankResult,
    RecipeRequest,
    SimilarQuery,
    SimilarResult,
    SimilarUsersRequest,
)
from recipe_ml.serving.telemetry import RUNNER_RETRIES, observe_request, render
from recipe_ml.storage import open_cache, open_interaction_store
from runners.als import ALSRunner
from runners.two_tower import TwoTowerRunner

logger = logging.getLogger("recipe_ml.service")

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

TRANSPORT_RETRIES = 1
"""Retries of a runner call that failed in transport, before the model ran.

The dropped connections behind the 500s seen under concurrent load: BentoML
1.4's service-to-service client (``_bentoml_impl.client.proxy2``, aiohttp)
recycles its ``ClientSession`` every 100 requests (and every 300 s) and
*closes the old session at once*, while other concurrent requests are still
in flight on it. Those requests die with ``ServerDisconnectedError`` or
``ClientOSError: Can not write request body``. With 32 clients about 20% of
runner calls failed that way here (the fallback chain hid them as ALS or
popularity answers; without it they are 500s). ``_never_recycle`` removes the
cause: one session for the life of the worker (the runners sit behind a
fixed Unix socket, so recycling buys nothing). The retry covers the one race
left, a keep-alive connection the runner's uvicorn closes after 5 s idle at
the instant a request is written on it; scoring is idempotent, so one retry
on a fresh connection is safe.
"""


def _never_recycle(client: Any) -> None:
    """Disable the session recycling of BentoML's dependency client (see above)."""
    manager = client._session_manager
    manager.max_requests = sys.maxsize
    manager.max_age = math.inf


class StoreUnavailableError(RuntimeError):
    """The interaction store is down: an event cannot be recorded now (503, retry)."""


class RemoteBackend:
    """A runner service as one link of the fallback chain."""

    def __init__(self, name: str, proxy: Any, version: str) -> None:
        self.name = name
        self.version = version
        self.supports_similarity = True
        self._client = proxy.to_async
        _never_recycle(self._client)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(TRANSPORT_RETRIES + 1):
            try:
                return await call()
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == TRANSPORT_RETRIES:
                    raise
                RUNNER_RETRIES.labels(self.name).inc()
                logger.warning("runner %s dropped the connection; retrying on a fresh one", self.name)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def recommend(self, queries: list[RankQuery]) -> list[RankResult]:
        result: list[RankResult] = await self._call(lambda: self._client.recommend(queries))
        return result

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]:
        result: list[SimilarResult] = await self._call(lambda: self._client.similar_users(queries))
        return result

    async def ping(self) -> bool:
        info: dict[str, str] = await self._client.info()
        return info.get("version") == self.version


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def _validation_error(exc: ValidationError) -> JSONResponse:
    errors = [
        {"field": _field(err["loc"]), "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    invalid_json = any(err["type"] == "json_invalid" for err in errors)
    fields = ", ".join(err["field"] for err in errors)
    detail = "request body is not valid JSON" if invalid_json else f"invalid request: {fields}"
    return JSONResponse({"detail": detail, "errors": errors}, status_code=400 if invalid_json else 422)


async def _parse(request: Request, model: type[M]) -> M:
    body = await request.body()
    return model.model_validate_json(body or b"{}")


def _service() -> RecipeService:
    service: RecipeService = bentoml.get_current_service()
    return service


def _engine() -> RecommendationEngine:
    return _service().engine


def _endpoint(name: str, handler: Callable[[Request], Awaitable[tuple[BaseModel | dict[str, Any], str]]]) -> Any:
    """Wrap a handler: JSON response, error mapping and request metrics in one place."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        model_used = "none"
        try:
            body, model_used = await handler(request)
            content = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
            response: Response = JSONResponse(content, status_code=202 if name == "interactions" else 200)
        except ValidationError as exc:
            response = _validation_error(exc)
        except UnknownUserError as exc:
            response = JSONResponse(
                {"detail": str(exc), "user_id": exc.user_id, "cold_start": "/api/recommendations/cold-start"},
                status_code=404,
            )
        except (NoModelError, StoreUnavailableError) as exc:
            response = JSONResponse({"detail": str(exc)}, status_code=503)
        observe_request(name, model_used, response.status_code, time.perf_counter() - started)
        return response

    return endpoint


async def _recipes(request: Request) -> tuple[BaseModel, str]:
    response = await _engine().recommend(await _parse(request, RecipeRequest))
    return response, response.model_used


async def _users(request: Request) -> tuple[BaseModel, str]:
    response = await _engine().similar_users(await _parse(request, SimilarUsersRequest))
    return response, response.model_used


async def _batch(request: Request) -> tuple[BaseModel, str]:
    response: BatchResponse = await _engine().recommend_batch(await _parse(request, BatchRequest))
    used = {getattr(result, "model_used", None) for result in response.results} - {None}
    return response, str(used.pop()) if len(used) == 1 else ("mixed" if used else "none")


async def _cold_start(request: Request) -> tuple[BaseModel, str]:
    response = await _engine().cold_start(await _parse(request, ColdStartRequest))
    return response, response.model_used


async def _interactions(request: Request) -> tuple[dict[str, Any], str]:
    """Apply an interaction event in-process: the consumer's code path, over HTTP."""
    event = await _parse(request, InteractionEvent)
    try:
        applied = _service().applier.apply(event)
    except (redis.RedisError, OSError) as exc:
        raise StoreUnavailableError(f"interaction store unavailable ({type(exc).__name__}); retry later") from exc
    return {"applied": applied, "duplicate": not applied, "event_id": event.dedupe_id()}, "none"


async def _health(_: Request) -> tuple[dict[str, Any], str]:
    return await _engine().health(), "none"


async def _metrics(_: Request) -> Response:
    content, content_type = render()
    return Response(content, media_type=content_type)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


ROUTES = [
    Route("/recommendations/recipes", _endpoint("recipes", _recipes), methods=["POST"]),
    Route("/recommendations/users", _endpoint("users", _users), methods=["POST"]),
    Route("/recommendations/batch", _endpoint("batch", _batch), methods=["POST"]),
    Route("/recommendations/cold-start", _endpoint("cold_start", _cold_start), methods=["POST"]),
    Route("/interactions", _endpoint("interactions", _interactions), methods=["POST"]),
    Route("/health", _endpoint("health", _health), methods=["GET"]),
    Route("/metrics", _metrics, methods=["GET"]),
]


async def _no_route(request: Request) -> Response:
    """JSON for any other path under /api (BentoML's mount would answer plain text)."""
    for route in ROUTES:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL and route.methods:  # the path exists, not for this method
            allowed = ", ".join(sorted(route.methods - {"HEAD"}))
            raise HTTPException(405, f"method {request.method} not allowed; use {allowed}", {"Allow": allowed})
    raise HTTPException(404, f"no endpoint {request.url.path}; see README for the API")


app = Starlette(
    routes=[*ROUTES, Route("/{path:path}", _no_route, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])],
    exception_handlers={HTTPException: _http_error},
)


_settings = get_settings()


@bentoml.service(
    name="recipe_ml_service",
    workers=_settings.workers,
    traffic={"timeout": 30},
    http={"port": _settings.port},  # PORT (8000) unless `bentoml serve --port` says otherwise
)
@bentoml.asgi_app(app, path="/api")
class RecipeService:
    """Composes the runners and holds the engine (the fallback chain, cache, live store)."""

    two_tower = bentoml.depends(TwoTowerRunner)
    als = bentoml.depends(ALSRunner)

    def __init__(self) -> None:
        settings = get_settings()
        logging.getLogger("recipe_ml").setLevel("DEBUG" if settings.debug else settings.log_level)
        popularity, popularity_tag = load_from_store(settings.popularity_model)
        chain: list[Backend] = [
            RemoteBackend("two_tower", self.two_tower, str(store_entry(settings.two_tower_model).tag)),
            RemoteBackend("als", self.als, str(store_entry(settings.als_model).tag)),
            LocalBackend(ModelRanker(popularity, popularity_tag, precompute=settings.precompute_embeddings)),
        ]
        cache = open_cache(settings.redis_url)
        store = open_interaction_store(settings.redis_url, settings.popularity_half_life_hours)
        self.engine = RecommendationEngine(chain, cache=cache, store=store, settings=settings)
        self.applier = EventApplier(store=store, cache=cache)
