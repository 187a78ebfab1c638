"""Workarounds for BentoML (and uvicorn) internals, each tied to the versions it was written for.

The one module allowed to reach into ``bentoml._internal`` or uvicorn's
protocol classes: everything else uses their public APIs. Each workaround
checks ``bentoml.__version__`` (``uvicorn.__version__``) and does nothing on
a version it was not written for (it logs why), and
``tests/edge/test_compat.py`` fails on such a version, so an upgrade makes
someone look again rather than silently run without it or with a patch that
no longer fits.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import json
import logging
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
import h11
import uvicorn
from _bentoml_sdk.io_models import IOMixin
from bentoml._internal.models.model import ModelStore
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.datastructures import Headers
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge.problems import PROBLEM_JSON, http_problem, problem_response

logger = logging.getLogger(__name__)

WRITTEN_FOR = frozenset({"1.4.40"})
"""BentoML versions these workarounds were checked against (their source read, their tests run)."""
UVICORN_WRITTEN_FOR = frozenset({"0.54.0"})
"""uvicorn versions the header timeout was checked against (the h11 protocol BentoML's workers run)."""


async def _call_with_cancelled_timer(self: TimeoutMiddleware, scope: Any, receive: Any, send: Any) -> None:
    """``TimeoutMiddleware.__call__`` of BentoML 1.4.40, with its timer released.

    Why: the original schedules ``loop.call_later(timeout, ...)`` per request
    and never cancels it. The timer handle keeps a copy of the request's
    ``contextvars.Context`` (and in it the OpenTelemetry span and whatever the
    request touched) alive for the whole traffic timeout, so memory grows
    with request rate x timeout, and those survivors reach the old GC
    generations, whose collections make the latency tails. Here the timer
    runs in an empty context (it only fails a future) and is cancelled as
    soon as the response starts or the request ends. As the original, no
    response started within the timeout means the request is cancelled; the
    answer is a problem+json, as every other error: 408 (and the connection
    closed) when the body had not all arrived, which bounds how long a slow
    or short body (a ``Content-Length`` larger than what is sent) holds a
    request, else 504.

    What lets it go: a BentoML release whose ``TimeoutMiddleware`` cancels
    its timer (or drops the per-request timer); then remove this patch and
    the patch's test.
    """
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter, context=contextvars.Context())
    headers = Headers(scope=scope)
    body_received = scope["type"] != "http" or (
        headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
    )

    async def _receive() -> Any:
        nonlocal body_received
        message = await receive()
        body_received = body_received or not message.get("more_body", False)
        return message

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
            timer.cancel()
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, _receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            if body_received:
                problem = http_problem(504, f"not answered within {self.timeout} seconds")
                await problem_response(problem, scope["path"])(scope, receive, send)
            else:
                problem = http_problem(408, f"request body not received within {self.timeout} seconds")
                await problem_response(problem, scope["path"], {"Connection": "close"})(scope, receive, send)
    else:
        await fut
    finally:
        timer.cancel()


def release_request_timers() -> bool:
    """Install ``_call_with_cancelled_timer`` on this BentoML version; True when installed.

    Idempotent. Call it before the server handles requests (``service.py``
    does, at import, in every BentoML process).
    """
    if bentoml.__version__ not in WRITTEN_FOR:
        logger.warning(
            "bentoml %s: TimeoutMiddleware timer fix not applied (written for %s); check whether it is still needed",
            bentoml.__version__,
            ", ".join(sorted(WRITTEN_FOR)),
        )
        return False
    TimeoutMiddleware.__call__ = _call_with_cancelled_timer  # type: ignore[method-assign]
    return True


def _raw_problem(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection, for where no ASGI app runs."""
    body = json.dumps(http_problem(status, detail).model_dump(mode="json")).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: {PROBLEM_JSON}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


_ORIGINAL_CONNECTION_MADE = H11Protocol.connection_made
_ORIGINAL_CONNECTION_LOST = H11Protocol.connection_lost
_ORIGINAL_ON_RESPONSE_COMPLETE = H11Protocol.on_response_complete


def _headers_timed_out(protocol: H11Protocol, seconds: float) -> None:
    """Close a connection whose request headers did not all arrive in ``seconds``: 408 if some did."""
    if protocol.transport.is_closing() or protocol.conn.their_state is not h11.IDLE:
        return  # closed, or the request line and headers are in (the body is TimeoutMiddleware's)
    if protocol.conn.trailing_data[0]:
        protocol.transport.write(_raw_problem(408, f"request headers not received within {seconds:g} seconds"))
    protocol.transport.close()


def _arm_header_timer(protocol: H11Protocol, seconds: float) -> None:
    previous: asyncio.TimerHandle | None = getattr(protocol, "_header_timer", None)
    if previous is not None:
        previous.cancel()
    protocol._header_timer = protocol.loop.call_later(seconds, _headers_timed_out, protocol, seconds)  # type: ignore[attr-defined]


def _invalid_request_as_problem(self: H11Protocol, msg: str) -> None:
    """``H11Protocol.send_400_response`` of uvicorn 0.54.0 (``msg`` is already logged), as a problem+json."""
    self.transport.write(_raw_problem(400, "malformed HTTP/1.1 request line or headers"))
    self.transport.close()


def bound_header_reads(seconds: float) -> bool:
    """Give uvicorn's h11 protocol a request header timeout; True when installed (idempotent).

    Why: uvicorn has no header read timeout (only a keep-alive timeout, armed
    after a response and cancelled by any byte), so a client that sends a
    request's headers slowly, or never finishes them, holds a connection (and
    a worker's file descriptor) for as long as it likes; a few hundred such
    clients exhaust a worker. Here a timer armed when the connection opens,
    and again after each answer, closes the connection when the next
    request's headers are not complete within ``seconds``: with a 408
    problem+json when part of a request had arrived, silently when nothing
    had. Malformed requests get a problem+json 400 instead of uvicorn's plain
    text. BentoML starts its workers with uvicorn's default protocol, h11
    (httptools is not installed); the patch does nothing where httptools would
    be used instead.

    What lets it go: a uvicorn release with a header (or request) read
    timeout that BentoML passes through, or BentoML's own.
    """
    if uvicorn.__version__ not in UVICORN_WRITTEN_FOR or importlib.util.find_spec("httptools") is not None:
        logger.warning(
            "uvicorn %s: request header timeout not applied (written for %s with h11)",
            uvicorn.__version__,
            ", ".join(sorted(UVICORN_WRITTEN_FOR)),
        )
        return False

    def connection_made(self: H11Protocol, transport: asyncio.Transport) -> None:
        _ORIGINAL_CONNECTION_MADE(self, transport)
        _arm_header_timer(self, seconds)

    def on_response_complete(self: H11Protocol) -> None:
        _ORIGINAL_ON_RESPONSE_COMPLETE(self)
        _arm_header_timer(self, seconds)

    def connection_lost(self: H11Protocol, exc: Exception | None) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
        _ORIGINAL_CONNECTION_LOST(self, exc)

    H11Protocol.connection_made = connection_made  # type: ignore[method-assign]
    H11Protocol.on_response_complete = on_response_complete  # type: ignore[method-assign]
    H11Protocol.connection_lost = connection_lost  # type: ignore[method-assign]
    H11Protocol.send_400_response = _invalid_request_as_problem  # type: ignore[method-assign]
    return True


_MIME_TYPES: dict[type, str] = {}
"""IO model class -> its MIME type, filled on first use by ``_cached_mime_type``."""
_ORIGINAL_MIME_TYPE = IOMixin.__dict__["mime_type"].__func__


def _cached_mime_type(cls: type) -> str:
    """``IOMixin.mime_type`` of BentoML 1.4.40, computed once per IO model class.

    Why: BentoML asks every response for its MIME type, and for a root model
    (an API returning a list, as the runners' batched APIs do) it builds a
    pydantic ``TypeAdapter`` and the whole JSON schema each time to read its
    ``type``: a large share of a runner's CPU per request, for an answer that
    depends on the class alone.

    What lets it go: a BentoML release that computes or caches the MIME type
    once per IO class.
    """
    mime = _MIME_TYPES.get(cls)
    if mime is None:
        mime = _MIME_TYPES[cls] = _ORIGINAL_MIME_TYPE(cls)
    return mime


def cache_mime_types() -> bool:
    """Install ``_cached_mime_type`` on this BentoML version; True when installed (idempotent)."""
    if bentoml.__version__ not in WRITTEN_FOR:
        logger.warning("bentoml %s: MIME type cache not applied (written for %s)", bentoml.__version__, WRITTEN_FOR)
        return False
    IOMixin.mime_type = classmethod(_cached_mime_type)
    return True


def model_store_at(home: Path) -> dict[str, Any]:
    """Keyword arguments that point ``bentoml.models.create/get/list`` at the store under ``home``.

    Why: BentoML picks its model store from ``$BENTOML_HOME`` once, at
    import, and its public API has no way to name another store; training
    into a given home and the tests' private stores need one per call. The
    ``_model_store`` argument those functions take is the only door.

    What lets it go: a public store selection in ``bentoml.models`` (a
    ``home``/``store`` argument, or a public ``ModelStore``).
    """
    if bentoml.__version__ not in WRITTEN_FOR:
        logger.warning("bentoml %s: model store selection written for %s", bentoml.__version__, sorted(WRITTEN_FOR))
    (home / "models").mkdir(parents=True, exist_ok=True)  # as BentoML does for its default store
    return {"_model_store": ModelStore(home / "models")}


def versions_directory(entry: bentoml.Model) -> Path:
    """The directory holding every version of ``entry``'s name: where its promotion record lives.

    Why: the BentoML model store has no public way to change the labels of
    a stored version (``ModelInfo`` is frozen; ``bentoml models`` has no
    update command), so "the version to serve" cannot be a label moved from
    one version to the next. The project keeps a small promotion record
    beside the versions instead (``edge.model_store``), in the directory that
    BentoML 1.4.40 lays out as ``<store>/<name>/<version>`` (a version's
    ``path``) and whose plain files it ignores when it lists versions, as it
    ignores its own ``latest`` file there. The record thus travels with a
    mounted store and goes away when the name's last version is deleted.

    What lets it go: a public API that relabels a stored version (or a
    store-level alias); then promote through it and drop the record.
    """
    if bentoml.__version__ not in WRITTEN_FOR:
        logger.warning("bentoml %s: model store layout assumed as of %s", bentoml.__version__, sorted(WRITTEN_FOR))
    return Path(entry.path).parent
