"""The ASGI middlewares: API keys, the body limit, request metrics and headers of the /api app; problem
bodies for BentoML's own error answers (around the whole service).

Each runs before routing (and before the body is read), so nothing of a
refused request is parsed. The guards are off in the embedded default and
switched on by a setting (``API_KEYS``, ``MAX_REQUEST_BYTES``).
"""

from __future__ import annotations

import hmac
import time
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.problems import (
    PROBLEM_JSON,
    clip,
    http_problem,
    method_not_allowed_problem,
    not_found_problem,
    problem_response,
)
from recipe_ml.serving.schemas import Problem
from recipe_ml.serving.telemetry import observe_request

OBSERVED_ENDPOINTS = frozenset({"recipes", "users", "similar_recipes", "batch", "cold_start", "interactions", "health"})
"""Route names counted in ``recipe_api_requests_total`` (the ``endpoint`` label)."""


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
                state = scope.get("state", {})
                model_used, model_version = (
                    str(state.get("model_used", "none")),
                    str(state.get("model_version", "none")),
                )
                observe_request(name, model_used, model_version, status, time.perf_counter() - started)


class ResponseHeaders:
    """ASGI middleware: ``headers`` on every answer (added where the answer does not set them)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self._headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [header for header in self._headers if header[0] not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, add_headers)


KEPT_HEADERS = frozenset({"allow", "retry-after", "www-authenticate"})
"""Headers of a rewritten error answer that still apply to the problem that replaces it."""
MAX_REWRITTEN_BODY = 4096
"""Bytes of an error body kept to explain it (BentoML's are a few words)."""


def _is_preflight(scope: Scope, headers: Headers) -> bool:
    return scope.get("method") == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


class ErrorsAsProblems:
    """ASGI middleware around BentoML's app: an error answer that is not a problem becomes one.

    BentoML's own router answers an unknown path outside /api with a plain-text
    404 (and a known one with the wrong method with a plain-text 405), and its
    CORS middleware (``http.cors``) refuses a preflight from an origin, method
    or header not allowed with a plain-text 400. This keeps each status, its
    reason and its ``Allow`` header, and sends them as every other error is
    sent; a refused preflight names the origin and the setting.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rewritten: Message | None = None
        reason = b""

        async def rewrite(message: Message) -> None:
            nonlocal rewritten, reason
            if message["type"] == "http.response.start":
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                if message["status"] >= 400 and not content_type.startswith(PROBLEM_JSON):
                    rewritten = message
                    return
            if rewritten is None:
                await send(message)
                return
            reason = (reason + message.get("body", b""))[:MAX_REWRITTEN_BODY]
            if not message.get("more_body", False):
                original = Headers(raw=rewritten.get("headers", []))
                kept = {name: value for name, value in original.items() if name in KEPT_HEADERS}
                problem = self._problem(scope, rewritten["status"], reason.decode(errors="replace"), original)
                await problem_response(problem, scope["path"], kept)(scope, receive, send)

        await self.app(scope, receive, rewrite)

    @staticmethod
    def _problem(scope: Scope, status: int, reason: str, headers: Headers) -> Problem:
        request = Headers(scope=scope)
        if status == 400 and _is_preflight(scope, request):
            detail = (
                f"CORS preflight from {clip(request['origin'])} refused: {clip(reason)} "
                "(allowed origins: CORS_ALLOW_ORIGINS)"
            )
            return Problem(
                type="urn:recipe-ml:problem:cors-refused", title="CORS preflight refused", status=400, detail=detail
            )
        if status == 404:
            return not_found_problem(scope["path"])
        if status == 405:
            return method_not_allowed_problem(scope.get("method", ""), headers.get("allow", ""))
        return http_problem(status, clip(reason) or HTTPStatus(status).phrase)
