"""What the route modules share: the JSON body route, the typed dependencies, the response helper.

The engine comes from the BentoML service the app is mounted on, through a
typed FastAPI dependency (``EngineDep``), so a route says what it needs in
its signature and a test can override it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Protocol

import bentoml
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.datastructures import Headers
from starlette.responses import Response

from recipe_ml.serving.engine import RecommendationEngine
from recipe_ml.serving.schemas import Body


class _Service(Protocol):
    """What the routes need of the BentoML service they are mounted on (``service.RecipeService``)."""

    engine: RecommendationEngine


class _JSONBody(Request):
    """Every body is JSON, whatever its Content-Type says, and an empty body is ``{}``.

    As the API always read bodies: ``curl -d`` (form Content-Type) keeps
    working, and an empty body reports each missing field by name (and
    cold-start takes its defaults) instead of one "body missing".
    """

    @property
    def headers(self) -> Headers:
        raw = [(name, value) for name, value in self.scope["headers"] if name != b"content-type"]
        return Headers(raw=[*raw, (b"content-type", b"application/json")])

    async def body(self) -> bytes:
        return await super().body() or b"{}"

    async def json(self) -> Any:
        """The parsed body; whatever makes it unparseable is FastAPI's ``json_invalid`` error (a 400 naming
        ``body``), not only a syntax error: invalid UTF-8, nesting too deep for the parser, a number
        with more digits than Python converts."""
        body = await self.body()
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(":")[0]
            raise json.JSONDecodeError(reason, body.decode(errors="replace"), 0) from None


class JSONBodyRoute(APIRoute):
    """FastAPI's route reading the body as ``_JSONBody`` (FastAPI's documented custom-Request pattern)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_JSONBody(request.scope, request.receive))

        return handle


def get_engine() -> RecommendationEngine:
    """The engine of the BentoML service serving this request."""
    service: _Service = bentoml.get_current_service()
    return service.engine


EngineDep = Annotated[RecommendationEngine, Depends(get_engine)]
"""A route's engine (the fallback chain, the cache, the live store)."""


def respond(
    request: Request, body: Body, model_used: str = "none", model_version: str = "none", status_code: int = 200
) -> Response:
    """The response (the body's one encoding, which a cache miss also kept), and the answering model and its
    version for the request metrics."""
    request.state.model_used = model_used
    request.state.model_version = model_version
    return Response(body.encoded, status_code=status_code, media_type="application/json")


DOCUMENTED_AUTH = [
    Depends(HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>` (a key of API_KEYS).")),
    Depends(APIKeyHeader(name="X-API-Key", auto_error=False, description="The alternative to the bearer token.")),
]
"""The security schemes of the OpenAPI document, on the routes that need a key when API_KEYS is set.

Documentation only: ``RequireApiKey`` enforces, before the body is read, so
a request without a key never reaches validation."""
