"""The /api app (``create_app``), the /docs page and the BentoML service options from the settings.

FastAPI, not a bare Starlette app, because BentoML merges a mounted FastAPI
app's routes into its own OpenAPI document (``/docs.json``, shown as Swagger
UI at ``/docs``): the request and response models of ``recipe_ml.serving``
*are* the published contract a Java client is generated from, so it cannot
drift from the code. The routes live in ``edge.routes`` (one module per
resource), the error bodies in ``edge.problems``, the middlewares in
``edge.middleware``. Each security measure is off in the embedded default
and switched on by a setting (``API_KEYS``, ``MAX_REQUEST_BYTES``; CORS and
TLS are BentoML's own ``http.cors`` and ``ssl`` options, built by
``service_config``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Route

from edge.middleware import LimitRequestBody, RequestMetrics, RequireApiKey, ResponseHeaders
from edge.problems import EXCEPTION_HANDLERS, method_not_allowed_problem, not_found_problem, problem_response
from edge.routes import health, interactions, recipes, recommendations
from edge.routes.deps import DOCUMENTED_AUTH
from recipe_ml.config import Settings

CORS_METHODS = ["GET", "POST"]
CORS_HEADERS = ["Authorization", "Content-Type", "X-API-Key"]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]
PROTECTED_ROUTERS = (recommendations.router, recipes.router, interactions.router)
"""The routes behind the API key (when API_KEYS is set)."""
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
"""On every /api answer: recommendations are personal (no shared cache keeps one, nor a browser's), and a
browser never sniffs a JSON body into something it would run."""


def _known_routes() -> list[BaseRoute]:
    return [
        *(route for router in PROTECTED_ROUTERS for route in router.routes),
        *health.open_router.routes,
        *health.metrics_router.routes,
    ]


async def _no_route(request: Request) -> Response:
    """A problem for any other path under /api: 405 with ``Allow`` where the path exists, else 404."""
    methods: set[str] = set()
    for route in _known_routes():
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL and isinstance(route, APIRoute):  # the path exists, not for this method
            methods |= (route.methods or set()) - {"HEAD"}
    if methods:  # every route of the path: /recipes/{id} is a GET and a PUT
        allowed = ", ".join(sorted(methods))
        problem = method_not_allowed_problem(request.method, allowed)
        return problem_response(problem, request.url.path, {"Allow": allowed})
    return problem_response(not_found_problem(request.url.path), request.url.path)


def create_app(settings: Settings) -> FastAPI:
    """The /api app for ``settings`` (API keys, body limit)."""
    app = FastAPI(
        title="Recipe ML API",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the whole service's document is BentoML's /docs.json
        exception_handlers=EXCEPTION_HANDLERS,
    )
    keys = settings.api_key_list()
    # The document shows a key as required exactly where this server requires one.
    for router in PROTECTED_ROUTERS:
        app.include_router(router, dependencies=DOCUMENTED_AUTH if keys else None)
    app.include_router(health.open_router)
    app.include_router(
        health.metrics_router, dependencies=DOCUMENTED_AUTH if keys and settings.metrics_require_api_key else None
    )
    app.add_api_route("/{path:path}", _no_route, methods=ALL_METHODS, include_in_schema=False)
    # add_middleware puts each in front of the previous one: metrics, then keys, then the body limit.
    app.add_middleware(LimitRequestBody, limit=settings.max_request_bytes)
    if keys:
        open_paths = (
            health.OPEN_PATHS if settings.metrics_require_api_key else health.OPEN_PATHS | {health.METRICS_PATH}
        )
        app.add_middleware(RequireApiKey, keys=keys, open_paths=open_paths)
    app.add_middleware(RequestMetrics)  # 401s are counted too, where the route is known
    app.add_middleware(ResponseHeaders, headers=API_HEADERS)  # outermost: on every answer, errors too
    return app


_SWAGGER_UI = bytes(
    get_swagger_ui_html(
        openapi_url="/docs.json",
        title="Recipe ML API",
        swagger_js_url="/static_content/swagger-ui-bundle.js",
        swagger_css_url="/static_content/swagger-ui.css",
        swagger_favicon_url="/static_content/favicon-light-32x32.png",
        # A key typed into "Authorize" stays in this tab only, not in the browser's localStorage, where any
        # script of the origin (and anyone at the machine later) could read it.
        swagger_ui_parameters={"persistAuthorization": False},
    ).body
)
"""Swagger UI on BentoML's document (``/docs.json``: BentoML's routes and every /api route), whose assets
are the copy BentoML serves under /static_content, so the page works without internet access."""


def _inline_script_hashes(html: bytes) -> str:
    """The CSP sources allowing exactly the page's inline scripts (Swagger UI's start-up call)."""
    scripts = re.findall(rb"<script>(.*?)</script>", html, flags=re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in scripts)


DOCS_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src 'self' {_inline_script_hashes(_SWAGGER_UI)}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
"""/docs runs nothing but its own scripts and cannot be framed (no clickjacking of "Try it out")."""


async def _swagger_ui(_: Request) -> HTMLResponse:
    return HTMLResponse(_SWAGGER_UI, headers=DOCS_HEADERS)


async def _root_metrics(_: Request) -> Response:
    return await health.metrics()


def create_docs_app(settings: Settings) -> Starlette:
    """The app mounted at the root: /docs, and /metrics, where Prometheus looks by default and BentoML's
    document lists it (BentoML's own is off, ``BENTOML_METRICS``). It serves what /api/metrics serves,
    behind the key exactly when /api/metrics is, so no route serves metrics without a key when
    METRICS_REQUIRE_API_KEY is set. BentoML's mount only claims the paths this app routes."""
    keys = settings.api_key_list()
    guard = bool(keys) and settings.metrics_require_api_key
    return Starlette(
        routes=[
            Route("/docs", _swagger_ui, methods=["GET"]),
            Route(health.METRICS_PATH, _root_metrics, methods=["GET"]),
        ],
        middleware=[Middleware(RequireApiKey, keys=keys, open_paths=frozenset({"/docs"}))] if guard else [],
    )


BENTOML_METRICS = {"enabled": False}
"""BentoML's own HTTP metrics, off: they label every request with its raw path, so any caller (before
the API key is checked) could grow the exposition and the worker's memory without bound, and their
root ``/metrics`` serves them without a key (``create_docs_app`` serves the root one instead).
``recipe_api_requests_total`` and the other series of ``recipe_ml.serving.telemetry`` take their
labels from route names, never from the request."""


def service_config(settings: Settings) -> dict[str, Any]:
    """``@bentoml.service`` options from the settings: host and port, CORS (``http.cors``), TLS (``ssl``)."""
    http: dict[str, Any] = {"host": settings.host, "port": settings.port}
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
    config: dict[str, Any] = {"http": http, "metrics": BENTOML_METRICS}
    if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
        config["ssl"] = {"enabled": True, "certfile": str(settings.ssl_certfile), "keyfile": str(settings.ssl_keyfile)}
    return config
