"""The HTTP API under ``/api``: routes, request parsing and the mapping of errors to JSON.

Routes are a Starlette app that ``service.py`` mounts under ``/api`` (BentoML's
own ``/healthz``, ``/readyz`` and ``/metrics`` stay where BentoML puts them):
that gives GET routes and full control of error bodies, so every malformed
request is a 4xx JSON naming the field, never a 500.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import bentoml
import redis
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from recipe_ml.events.applier import EventApplier
from recipe_ml.events.schema import InteractionEvent
from recipe_ml.serving.engine import NoModelError, RecommendationEngine, UnknownUserError
from recipe_ml.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ColdStartRequest,
    RecipeRequest,
    SimilarUsersRequest,
)
from recipe_ml.serving.telemetry import observe_request, render


class _Service(Protocol):
    """What the routes need of the BentoML service they are mounted on (``service.RecipeService``)."""

    engine: RecommendationEngine
    applier: EventApplier


M = TypeVar("M", bound=BaseModel)


class StoreUnavailableError(RuntimeError):
    """The interaction store is down: an event cannot be recorded now (503, retry)."""


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


def _service() -> _Service:
    service: _Service = bentoml.get_current_service()
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
        applied = await _engine().storage(_service().applier.apply, event)
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
