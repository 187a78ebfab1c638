"""Workarounds for BentoML internals, each tied to the versions it was written for.

The one module allowed to reach into ``bentoml._internal``: everything else
uses BentoML's public API. Each workaround checks ``bentoml.__version__`` and
does nothing on a version it was not written for (it logs why), and
``tests/edge/test_compat.py`` fails on such a version, so an upgrade makes
someone look again rather than silently run without it or with a patch that
no longer fits.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from pathlib import Path
from typing import Any

import bentoml
from _bentoml_sdk.io_models import IOMixin
from bentoml._internal.models.model import ModelStore
from bentoml._internal.server.http.traffic import TimeoutMiddleware
from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)

WRITTEN_FOR = frozenset({"1.4.40"})
"""BentoML versions these workarounds were checked against (their source read, their tests run)."""


async def _call_with_cancelled_timer(self: TimeoutMiddleware, scope: Any, receive: Any, send: Any) -> None:
    """``TimeoutMiddleware.__call__`` of BentoML 1.4.40, with its timer released.

    Why: the original schedules ``loop.call_later(timeout, ...)`` per request
    and never cancels it. The timer handle keeps a copy of the request's
    ``contextvars.Context`` (and in it the OpenTelemetry span and whatever the
    request touched) alive for the whole traffic timeout, so memory grows
    with request rate x timeout, and those survivors reach the old GC
    generations, whose collections make the latency tails. Here the timer
    runs in an empty context (it only fails a future) and is cancelled as
    soon as the response starts or the request ends. The behaviour is
    otherwise the original's: no response started within the timeout means
    the request is cancelled and answered 504.

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

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
            timer.cancel()
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            body = {"error": f"Not able to process the request in {self.timeout} seconds"}
            await JSONResponse(body, status_code=504)(scope, receive, send)
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
