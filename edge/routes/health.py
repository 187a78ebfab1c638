"""Health (never behind a key) and Prometheus metrics (behind the key only with METRICS_REQUIRE_API_KEY)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from edge.problems import COMMON_ERRORS
from edge.routes.deps import EngineDep, respond
from recipe_ml.serving.schemas import Health
from recipe_ml.serving.telemetry import render

OPEN_PATHS = frozenset({"/health"})
"""Never behind an API key: load balancers and orchestrators probe it."""
METRICS_PATH = "/metrics"

open_router = APIRouter()
"""Health: never behind a key."""
metrics_router = APIRouter()
"""Metrics: behind the key only with METRICS_REQUIRE_API_KEY."""


@open_router.get(
    "/health", name="health", operation_id="health", summary="Status and loaded model versions", response_model=Health
)
async def health(request: Request, engine: EngineDep) -> Response:
    """Never behind an API key. `degraded` (HTTP 200) when Redis, Kafka or a runner is out: requests are
    still answered. `HEAD` answers the same status without the body."""
    return respond(request, await engine.health())


# Load balancers probe with HEAD; the server leaves the body out. Not in the document: it is GET's twin.
open_router.add_api_route("/health", health, methods=["HEAD"], name="health", include_in_schema=False)


@metrics_router.get(
    METRICS_PATH,
    name="metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, 401: COMMON_ERRORS[401]},
)
async def metrics() -> Response:
    """Every process of the service (API worker, runners); behind the API key when METRICS_REQUIRE_API_KEY is set."""
    content, content_type = render()
    return Response(content, media_type=content_type)
