"""Hot swap: the model a process serves, replaced by a newly promoted version without dropping a request.

A ``ModelSlot`` holds the ``ModelRanker`` that serves one kind. A request
reads ``slot.ranker`` once and keeps that reference to its end (the batch,
the fold-in and the ranking all use it), so a request in flight finishes on
the version it started with. ``SlotWatcher`` asks every
``MODEL_WATCH_SECONDS`` which version the store says to serve; a new one is
loaded beside the old one, off the event loop, then swapped in by rebinding
one attribute (atomic: a request sees the old ranker or the new one, never a
mix). The old version is freed when the last request holding it ends.

A version that fails to load is refused: the old one keeps serving, the
slot keeps the refusal (``/api/health`` shows it, with the reason) while the
store still asks for that version, and never tries it again: a stored
version does not change, so what failed once fails again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recipe_ml.serving.telemetry import MODEL_REFUSED

if TYPE_CHECKING:  # the API's supervisor process imports this module and needs no numpy
    from recipe_ml.serving.ranker import ModelRanker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """A version the process would not serve, and why."""

    version: str
    reason: str


class ModelSlot:
    """The ranker one kind is served by, swapped whole."""

    def __init__(self, ranker: ModelRanker) -> None:
        self.ranker = ranker
        """Read it once per request and keep the reference: that is the version the request runs on."""
        self._gauge = MODEL_REFUSED.labels(ranker.model.kind)
        self.refused = None
        self._refused: set[str] = set()

    @property
    def version(self) -> str:
        return self.ranker.version

    @property
    def refused(self) -> Refusal | None:
        """The version the store asks for and this process refused, or None (``recipe_model_version_refused``)."""
        return self._refusal

    @refused.setter
    def refused(self, refusal: Refusal | None) -> None:
        self._refusal = refusal
        self._gauge.set(0 if refusal is None else 1)

    def swap(self, ranker: ModelRanker) -> ModelRanker:
        """Serve ``ranker`` from the next request on; returns the one it replaces."""
        old, self.ranker = self.ranker, ranker
        self.refused = None
        return old

    def refuse(self, version: str, reason: str) -> None:
        self.refused = Refusal(version, reason)
        self._refused.add(version)

    def was_refused(self, version: str) -> bool:
        return version in self._refused


class SlotWatcher:
    """Keeps a slot on the version the store says to serve."""

    def __init__(
        self,
        slot: ModelSlot,
        resolve: Callable[[], str],
        load: Callable[[str], ModelRanker],
        *,
        on_swap: Callable[[], object] = lambda: None,
    ) -> None:
        self.slot = slot
        self._resolve = resolve
        """The version to serve now (the model store's promoted, else latest, or a pinned one)."""
        self._load = load
        self._on_swap = on_swap

    async def check(self) -> bool:
        """One look at the store; True when a new version now serves."""
        slot = self.slot
        try:
            version = await asyncio.to_thread(self._resolve)
        except Exception as exc:  # the store unreadable for a moment: keep serving, look again next time
            logger.warning("model store not readable (%s: %s); %s keeps serving", type(exc).__name__, exc, slot.version)
            return False
        if version == slot.version:
            slot.refused = None  # a rollback to the version serving ends a refusal
            return False
        if slot.was_refused(version):
            return False
        logger.info("loading %s beside %s", version, slot.version)
        try:
            ranker = await asyncio.to_thread(self._load, version)
        except Exception as exc:  # whatever a damaged version raises: refused, the old one keeps serving
            slot.refuse(version, f"failed to load: {type(exc).__name__}: {exc}")
            logger.error("refused %s (%s: %s); %s keeps serving", version, type(exc).__name__, exc, slot.version)
            return False
        old = slot.swap(ranker)
        logger.info("now serving %s (was %s)", version, old.version)
        del old  # freed when the last request holding it ends
        self._on_swap()
        return True


async def every(seconds: float, step: Callable[[], Awaitable[object]]) -> None:
    """Run ``step`` now, then every ``seconds``, for good (a failing step is logged and run again next time).

    The first run at once, at start-up: it creates the thread the store is
    read in and does its first reads there, a one-off cost (memory, lazy
    imports) better paid before the process takes load than under it.
    """
    while True:
        try:
            await step()
        except Exception:  # a watcher must outlive any one failure
            logger.exception("model watch step failed")
        await asyncio.sleep(seconds)
