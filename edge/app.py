"""The HTTP API under ``/api``: a FastAPI app, its error bodies, API keys and the body limit.

FastAPI, not a bare Starlette app, because BentoML merges a mounted FastAPI
app's routes into its own OpenAPI document (``/docs.json``, shown as Swagger
UI at ``/docs``): the request and response models below *are* the published
contract a Java client is generated from, so it cannot drift from the code.

Every error is one body, RFC 9457 ``application/problem+json`` (``Problem``),
which Spring's ``ProblemDetail`` reads as it is: a malformed request is a 4xx
naming the field, never a 500. Each security measure is off in the embedded
default and switched on by a setting (``API_KEYS``, ``MAX_REQUEST_BYTES``;
CORS and TLS are BentoML's own ``http.cors`` and ``ssl`` options, built by
``service_config``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Annotated, Any, Protocol

import bentoml
from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recipe_ml.config import Settings, get_settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.schema import InteractionEvent
from recipe_ml.serving.engine import NoModelError, RecommendationEngine, UnknownRecipeError, UnknownUserError
from recipe_ml.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ColdStartRequest,
    ColdStartResponse,
    FieldError,
    Health,
    InteractionAccepted,
    Problem,
    RecipeRequest,
    RecipeResponse,
    SimilarRecipesRequest,
    SimilarRecipesResponse,
    SimilarUsersRequest,
    SimilarUsersResponse,
)
from recipe_ml.serving.telemetry import observe_request, render

logger = logging.getLogger("recipe_ml.service")

PROBLEM_JSON = "application/problem+json"
OPEN_PATHS = frozenset({"/health"})
"""Never behind an API key: load balancers and orchestrators probe it."""
METRICS_PATH = "/metrics"
OBSERVED_ENDPOINTS = frozenset({"recipes", "users", "similar_recipes", "batch", "cold_start", "interactions", "health"})
"""Route names counted in ``recipe_api_requests_total`` (the ``endpoint`` label)."""
CORS_METHODS = ["GET", "POST"]
CORS_HEADERS = ["Authorization", "Content-Type", "X-API-Key"]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]


class _Service(Protocol):
    """What the routes need of the BentoML service they are mounted on (``service.RecipeService``)."""

    engine: RecommendationEngine
    applier: EventApplier


class StoreUnavailableError(RuntimeError):
    """The interaction store is down: an event cannot be recorded now (503, retry)."""


# -- problem+json ------------------------------------------------------------------


def problem_response(problem: Problem, path: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """``problem`` as ``application/problem+json``, with the request path as ``instance``."""
    body = problem.model_copy(update={"instance": path}).model_dump(mode="json")
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=PROBLEM_JSON)


def http_problem(status: int, detail: str) -> Problem:
    """A plain HTTP error (404, 405, 413...): ``about:blank`` and the status phrase as title."""
    return Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)


def _field(loc: tuple[int | str, ...]) -> str:
    """``("body", "recent_recipe_ids", 1)`` -> ``recent_recipe_ids.1``; the whole body is ``body``."""
    parts = loc[1:] if loc and loc[0] == "body" else loc
    return ".".join(str(part) for part in parts) or "body"


def validation_problem(errors: list[dict[str, Any]]) -> Problem:
    """400 when the body is not JSON, else 422; ``errors`` names every invalid field."""
    invalid_json = any(error["type"] == "json_invalid" for error in errors)
    fields = [
        FieldError(
            field="body" if error["type"] == "json_invalid" else _field(tuple(error["loc"])),
            message=error["msg"],
            type=error["type"],
        )
        for error in errors
    ]
    detail = (
        "request body is not valid JSON" if invalid_json else "invalid request: " + ", ".join(f.field for f in fields)
    )
    return Problem(
        type="urn:recipe-ml:problem:invalid-request",
        title="Invalid request",
        status=400 if invalid_json else 422,
        detail=detail,
        errors=fields,
    )


def _unavailable(detail: str) -> Problem:
    return Problem(type="urn:recipe-ml:problem:unavailable", title="Service unavailable", status=503, detail=detail)


def _problem_doc(description: str) -> dict[str, Any]:
    """An error response in the document: ``model`` registers the Problem schema, ``content`` names the
    media type the service sends (FastAPI adds an ``application/json`` entry of the same schema)."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem_doc("The body is not JSON (`errors[0].field` is `body`)."),
    401: _problem_doc("API_KEYS is set and the request has no valid key."),
    413: _problem_doc("The body is larger than MAX_REQUEST_BYTES."),
    422: _problem_doc("A field is missing, unknown, of the wrong type or out of range; `errors` names it."),
    503: _problem_doc("No model (or, for interactions, the interaction store) can answer now; retry."),
}
UNKNOWN_USER: dict[int | str, dict[str, Any]] = {
    404: _problem_doc("The user is unknown to the models and has no interactions: use cold-start.")
}
UNKNOWN_RECIPE: dict[int | str, dict[str, Any]] = {404: _problem_doc("The recipe is unknown to the models.")}


# -- request handling ----------------------------------------------------------------


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


class JSONBodyRoute(APIRoute):
    """FastAPI's route reading the body as ``_JSONBody`` (FastAPI's documented custom-Request pattern)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_JSONBody(request.scope, request.receive))

        return handle


def _service() -> _Service:
    service: _Service = bentoml.get_current_service()
    return service


def _engine() -> RecommendationEngine:
    return _service().engine


def _json(request: Request, body: BaseModel, model_used: str = "none", status_code: int = 200) -> Response:
    """The response, and the answering model for the request metrics."""
    request.state.model_used = model_used
    return Response(body.model_dump_json(), status_code=status_code, media_type="application/json")


DOCUMENTED_AUTH = [
    Depends(HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>` (a key of API_KEYS).")),
    Depends(APIKeyHeader(name="X-API-Key", auto_error=False, description="The alternative to the bearer token.")),
]
"""The security schemes of the OpenAPI document, on the routes that need a key when API_KEYS is set.

Documentation only: ``RequireApiKey`` enforces, before the body is read, so
a request without a key never reaches validation."""

router = APIRouter(route_class=JSONBodyRoute)
"""The routes behind the API key (when API_KEYS is set)."""
open_router = APIRouter()
"""Health: never behind a key."""
metrics_router = APIRouter()
"""Metrics: behind the key only with METRICS_REQUIRE_API_KEY."""


@router.post(
    "/recommendations/recipes",
    name="recipes",
    operation_id="recommendRecipes",
    summary="Personal recommendations of a user",
    response_model=RecipeResponse,
    responses={**COMMON_ERRORS, **UNKNOWN_USER},
)
async def recipes(body: RecipeRequest, request: Request) -> Response:
    """Recipes for one user, never one they already interacted with; from the cache when asked again
    within CACHE_TTL_SECONDS. `model_used` names the model that answered (two_tower+ease: the Two-Tower
    with its personal scorer; else als, else popularity)."""
    response = await _engine().recommend(body)
    return _json(request, response, response.model_used)


@router.post(
    "/recommendations/users",
    name="users",
    operation_id="similarUsers",
    summary="Users with a similar taste",
    response_model=SimilarUsersResponse,
    responses={**COMMON_ERRORS, **UNKNOWN_USER},
)
async def users(body: SimilarUsersRequest, request: Request) -> Response:
    """The training users closest to this user (cosine of user vectors); 503 when only popularity is up."""
    response = await _engine().similar_users(body)
    return _json(request, response, response.model_used)


@router.post(
    "/recommendations/similar-recipes",
    name="similar_recipes",
    operation_id="similarRecipes",
    summary='Recipes like a recipe ("more like this")',
    response_model=SimilarRecipesResponse,
    responses={**COMMON_ERRORS, **UNKNOWN_RECIPE},
)
async def similar_recipes(body: SimilarRecipesRequest, request: Request) -> Response:
    """The recipes closest to `recipe_id` in the models' recipe space (cosine), with the same filters as
    recommendations; the same for every user, so cached across users."""
    response = await _engine().similar_recipes(body)
    return _json(request, response, response.model_used)


@router.post(
    "/recommendations/batch",
    name="batch",
    operation_id="recommendBatch",
    summary="Recommendations for several users",
    response_model=BatchResponse,
    responses=COMMON_ERRORS,
)
async def batch(body: BatchRequest, request: Request) -> Response:
    """One entry per user id, in order; `status` says which kind: `ok` (recommendations) or `error` (a
    problem, e.g. an unknown user). An unknown user fails its entry, not the batch (HTTP 200)."""
    response = await _engine().recommend_batch(body)
    used = {result.model_used for result in response.results if result.status == "ok"}
    model_used = used.pop() if len(used) == 1 else ("mixed" if used else "none")
    return _json(request, response, model_used)


@router.post(
    "/recommendations/cold-start",
    name="cold_start",
    operation_id="coldStart",
    summary="Trending recipes, or recommendations from a new user's first recipes",
    response_model=ColdStartResponse,
    responses=COMMON_ERRORS,
)
async def cold_start(request: Request, body: Annotated[ColdStartRequest | None, Body()] = None) -> Response:
    """Without `recent_recipe_ids`: popularity with recency (live interactions weigh more). With them: the
    recipes are folded into a user vector. The body may be left out (every field has a default)."""
    response = await _engine().cold_start(body or ColdStartRequest())
    return _json(request, response, response.model_used)


@router.post(
    "/interactions",
    name="interactions",
    operation_id="postInteraction",
    summary="Apply one interaction event (the HTTP alternative to Kafka)",
    status_code=202,
    response_model=InteractionAccepted,
    responses=COMMON_ERRORS,
)
async def interactions(body: InteractionEvent, request: Request) -> Response:
    """The event the backend publishes to Kafka (camelCase or snake_case keys), applied through the
    consumer's code: the user's cached answers are dropped at once. The same `eventId` again changes
    nothing (`duplicate`). 503 while the interaction store is down: keep the event and retry."""
    engine = _engine()
    try:
        applied = await engine.storage(_service().applier.apply, body)
    except engine.store.unavailable as exc:
        raise StoreUnavailableError(f"interaction store unavailable ({type(exc).__name__}); retry later") from exc
    accepted = InteractionAccepted(applied=applied, duplicate=not applied, event_id=body.dedupe_id())
    return _json(request, accepted, status_code=202)


@open_router.get(
    "/health", name="health", operation_id="health", summary="Status and loaded model versions", response_model=Health
)
async def health(request: Request) -> Response:
    """Never behind an API key. `degraded` (HTTP 200) when Redis, Kafka or a runner is out: requests are
    still answered."""
    return _json(request, Health.model_validate(await _engine().health()))


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


async def _no_route(request: Request) -> Response:
    """A problem for any other path under /api: 405 with ``Allow`` where the path exists, else 404."""
    for route in (*router.routes, *open_router.routes, *metrics_router.routes):
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL and isinstance(route, APIRoute):  # the path exists, not for this method
            allowed = ", ".join(sorted((route.methods or set()) - {"HEAD"}))
            raise HTTPException(405, f"method {request.method} not allowed; use {allowed}", {"Allow": allowed})
    raise HTTPException(404, f"no endpoint {request.url.path}; see /docs for the API")


# -- errors --------------------------------------------------------------------------


async def _on_invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(list(exc.errors())), request.url.path)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem_response(http_problem(exc.status_code, str(exc.detail)), request.url.path, dict(exc.headers or {}))


async def _on_unknown(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnknownUserError | UnknownRecipeError)
    return problem_response(exc.problem(), request.url.path)


async def _on_unavailable(request: Request, exc: Exception) -> Response:
    return problem_response(_unavailable(str(exc)), request.url.path, {"Retry-After": "1"})


async def _on_bug(request: Request, exc: Exception) -> Response:
    """Still a problem+json body, so a client's error mapping holds; the traceback goes to the log only."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(title="Internal Server Error", status=500, detail="internal error; see the service log")
    return problem_response(problem, request.url.path)


# -- middleware ----------------------------------------------------------------------


def _route_path(scope: Scope) -> str:
    """The path inside the mount (``/health``), whatever prefix the app is mounted under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def presented_key(headers: Headers) -> str | None:
    """The key of ``Authorization: Bearer <key>``, else of ``X-API-Key``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


class RequireApiKey:
    """ASGI middleware: every path but ``open_paths`` needs one of ``keys`` (401 problem otherwise).

    It runs before routing and before the body is read, so nothing of an
    unauthenticated request is parsed. Keys are compared in constant time
    and never logged, nor echoed in the 401.
    """

    def __init__(self, app: ASGIApp, keys: list[str], open_paths: frozenset[str]) -> None:
        self.app = app
        self._keys = [key.encode() for key in keys]
        self._open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in self._open_paths:
            await self.app(scope, receive, send)
            return
        key = presented_key(Headers(scope=scope))
        if key is not None and any(hmac.compare_digest(key.encode(), known) for known in self._keys):
            await self.app(scope, receive, send)
            return
        detail = (
            "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
            if key is None
            else "invalid API key"
        )
        problem = Problem(type="urn:recipe-ml:problem:unauthorized", title="Unauthorized", status=401, detail=detail)
        response = problem_response(problem, scope["path"], {"WWW-Authenticate": 'Bearer realm="recipe-ml"'})
        await response(scope, receive, send)


class BodyTooLarge(HTTPException):
    """413; an ``HTTPException`` so that a route reading the body turns it into the problem response."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than MAX_REQUEST_BYTES ({limit} bytes)")


class LimitRequestBody:
    """ASGI middleware: bodies over ``limit`` bytes are a 413 problem, and are never read whole.

    A declared ``Content-Length`` over the limit is refused before anything
    is read; a body without one (chunked) is counted as its chunks arrive and
    refused at the first chunk past the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:  # read outside a route (which would have answered it already)
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = BodyTooLarge(self.limit)
        response = problem_response(http_problem(413, str(exc.detail)), scope["path"], {"Connection": "close"})
        await response(scope, receive, send)


class RequestMetrics:
    """ASGI middleware: ``observe_request`` for every answer of a named endpoint, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            name = getattr(scope.get("route"), "name", None)
            if name in OBSERVED_ENDPOINTS:
                model_used = str(scope.get("state", {}).get("model_used", "none"))
                observe_request(name, model_used, status, time.perf_counter() - started)


class CorsRefusalAsProblem:
    """ASGI middleware around BentoML's CORS middleware (``http.cors``): a refused preflight is a problem.

    Starlette's CORS middleware refuses a preflight from an origin (or with a
    method or header) not allowed with a plain-text 400; this keeps its
    decision and its reason and sends them as every other error is sent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else Headers()
        if (
            scope.get("method") != "OPTIONS"
            or "origin" not in headers
            or "access-control-request-method" not in headers
        ):
            await self.app(scope, receive, send)
            return
        refused = False
        reason = b""

        async def rewrite(message: Message) -> None:
            nonlocal refused, reason
            if message["type"] == "http.response.start" and message["status"] == 400:
                refused = True
                return
            if not refused:
                await send(message)
                return
            reason += message.get("body", b"")
            if not message.get("more_body", False):
                detail = (
                    f"CORS preflight from {headers['origin']} refused: {reason.decode(errors='replace')} "
                    "(allowed origins: CORS_ALLOW_ORIGINS)"
                )
                problem = Problem(
                    type="urn:recipe-ml:problem:cors-refused", title="CORS preflight refused", status=400, detail=detail
                )
                await problem_response(problem, scope["path"])(scope, receive, send)

        await self.app(scope, receive, rewrite)


def create_app(settings: Settings) -> FastAPI:
    """The /api app for ``settings`` (API keys, body limit)."""
    app = FastAPI(
        title="Recipe ML API",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the whole service's document is BentoML's /docs.json
        exception_handlers={
            RequestValidationError: _on_invalid_request,
            HTTPException: _on_http_error,
            UnknownUserError: _on_unknown,
            UnknownRecipeError: _on_unknown,
            NoModelError: _on_unavailable,
            StoreUnavailableError: _on_unavailable,
            Exception: _on_bug,
        },
    )
    keys = settings.api_key_list()
    # The document shows a key as required exactly where this server requires one.
    app.include_router(router, dependencies=DOCUMENTED_AUTH if keys else None)
    app.include_router(open_router)
    app.include_router(
        metrics_router, dependencies=DOCUMENTED_AUTH if keys and settings.metrics_require_api_key else None
    )
    app.add_api_route("/{path:path}", _no_route, methods=ALL_METHODS, include_in_schema=False)
    # add_middleware puts each in front of the previous one: metrics, then keys, then the body limit.
    app.add_middleware(LimitRequestBody, limit=settings.max_request_bytes)
    if keys:
        open_paths = OPEN_PATHS if settings.metrics_require_api_key else OPEN_PATHS | {METRICS_PATH}
        app.add_middleware(RequireApiKey, keys=keys, open_paths=open_paths)
    app.add_middleware(RequestMetrics)  # outermost: 401s are counted too, where the route is known
    return app


# -- /docs and the BentoML service configuration ------------------------------------


async def _swagger_ui(_: Request) -> HTMLResponse:
    """Swagger UI on BentoML's document (``/docs.json``: BentoML's routes and every /api route).

    The assets are the Swagger UI copy BentoML serves under /static_content,
    so the page works without internet access.
    """
    return get_swagger_ui_html(
        openapi_url="/docs.json",
        title="Recipe ML API",
        swagger_js_url="/static_content/swagger-ui-bundle.js",
        swagger_css_url="/static_content/swagger-ui.css",
        swagger_favicon_url="/static_content/favicon-light-32x32.png",
        swagger_ui_parameters={"persistAuthorization": True},
    )


docs_app = Starlette(routes=[Route("/docs", _swagger_ui, methods=["GET"])])
"""Mounted at the root: BentoML's mount only claims the paths its app routes, so this takes /docs alone."""


def service_config(settings: Settings) -> dict[str, Any]:
    """``@bentoml.service`` options from the settings: port, CORS (``http.cors``) and TLS (``ssl``)."""
    http: dict[str, Any] = {"port": settings.port}
    origins = settings.cors_origin_list()
    if origins:
        http["cors"] = {
            "enabled": True,
            "access_control_allow_origins": origins,
            "access_control_allow_methods": CORS_METHODS,
            "access_control_allow_headers": CORS_HEADERS,
            "access_control_allow_credentials": settings.cors_allow_credentials,
            "access_control_max_age": 600,
        }
    config: dict[str, Any] = {"http": http}
    if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
        config["ssl"] = {"enabled": True, "certfile": str(settings.ssl_certfile), "keyfile": str(settings.ssl_keyfile)}
    return config


app = create_app(get_settings())
