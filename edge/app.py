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

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match, Route

from edge.middleware import LimitRequestBody, RequestMetrics, RequireApiKey
from edge.problems import EXCEPTION_HANDLERS
from edge.routes import health, interactions, recommendations
from edge.routes.deps import DOCUMENTED_AUTH
from recipe_ml.config import Settings

CORS_METHODS = ["GET", "POST"]
CORS_HEADERS = ["Authorization", "Content-Type", "X-API-Key"]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"]
PROTECTED_ROUTERS = (recommendations.router, interactions.router)
"""The routes behind the API key (when API_KEYS is set)."""


def _known_routes() -> list[BaseRoute]:
    return [
        *(route for router in PROTECTED_ROUTERS for route in router.routes),
        *health.open_router.routes,
        *health.metrics_router.routes,
    ]


async def _no_route(request: Request) -> Response:
    """A problem for any other path under /api: 405 with ``Allow`` where the path exists, else 404."""
    for route in _known_routes():
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL and isinstance(route, APIRoute):  # the path exists, not for this method
            allowed = ", ".join(sorted((route.methods or set()) - {"HEAD"}))
            raise HTTPException(405, f"method {request.method} not allowed; use {allowed}", {"Allow": allowed})
    raise HTTPException(404, f"no endpoint {request.url.path}; see /docs for the API")


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
    app.add_middleware(RequestMetrics)  # outermost: 401s are counted too, where the route is known
    return app


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
