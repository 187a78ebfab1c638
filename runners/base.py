"""What the Two-Tower and ALS runner services share: load once, score in batches.

Each runner is its own BentoML service (own process) so that adaptive
batching turns concurrent API requests into one matrix product, and so that
torch, when the Two-Tower runs on CUDA, lives only in its runner's process.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import bentoml

from edge.app import BENTOML_METRICS
from edge.heap import freeze_after_load
from edge.hotswap import served_slot, start_watching
from recipe_ml.config import Settings, get_settings
from recipe_ml.serving.telemetry import BATCH_SIZE
from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult

CONNECTION_LIFETIME_SECONDS = 365 * 24 * 3600.0
"""How long the API keeps one connection session to a runner: for good.

BentoML's dependency client recycles its session every 100 requests and
300 s by default and closes the old one at once, while concurrent requests
are still in flight on it; they die with a dropped connection. The runners
sit behind a fixed local socket, so recycling buys nothing."""


def batching_options(settings: Settings) -> dict[str, int]:
    """The adaptive batching limits of the runner APIs.

    ``max_batch_size``: a whole /batch request (up to MAX_BATCH_SIZE queries)
    fits in one batch. ``max_latency_ms``: half the API's
    ``runner_timeout_seconds``. BentoML's dispatcher sheds a queued request it
    cannot start within this (503, "process is overloaded"), so under overload
    the API hears it at once and asks the next model with time left, and the
    runner does not spend CPU on answers the API has already given up on (with
    BentoML's 60 s default it would, and fall further behind).
    """
    return {
        "max_batch_size": max(128, settings.max_batch_size),
        "max_latency_ms": max(1, int(settings.runner_timeout_seconds * 1000 / 2)),
    }


def service_options(settings: Settings) -> dict[str, object]:
    """``@bentoml.service`` options of a runner: one worker, the API's timeout, one connection for good.

    One worker per runner: one copy of the model in memory, batches stay
    large. ``traffic.timeout`` is the API's ``runner_timeout_seconds``: past
    it the API has moved on to the next model, so the runner need not finish
    (BentoML also gives its client to this service that timeout).
    ``runner_connection`` is read by the clients of this service (the API's
    ``bentoml.depends``). BentoML's HTTP metrics are off here as in the API (``edge.app.BENTOML_METRICS``).
    """
    return {
        "workers": 1,
        "traffic": {"timeout": settings.runner_timeout_seconds},
        "runner_connection": {"max_requests": 2**31 - 1, "max_age": CONNECTION_LIFETIME_SECONDS},
        "metrics": BENTOML_METRICS,
    }


DECORATION_SETTINGS = get_settings()
"""The settings as the runner classes are decorated, at import: BentoML takes a service's options and its
APIs' batching limits then, so they cannot be read later (``RankerRunner.__init__`` reads its own)."""

batched_api = bentoml.api(batchable=True, **batching_options(DECORATION_SETTINGS))
"""The decorator of the adaptive-batching APIs (one list of queries in, one list out)."""

SERVICE_CONFIG = service_options(DECORATION_SETTINGS)
"""The options of the runner services' ``@bentoml.service`` (``runners.als``, ``runners.two_tower``)."""


class RankerRunner:
    """Base of the runner services; subclasses set ``kind``.

    Each batch runs on the ranker the slot held when the batch started
    (``self.slot.ranker``, read once), so a swap never splits a batch.
    """

    kind: ClassVar[str]
    """The model kind served (a row of ``recipe_ml.models.REGISTRY``)."""

    def __init__(self) -> None:
        self.slot, self.watcher = served_slot(self.kind, get_settings())
        self._watch: asyncio.Task[None] | None = None
        freeze_after_load()

    @bentoml.on_startup  # type: ignore[untyped-decorator]
    async def watch_the_store(self) -> None:
        """Follow promotions from now on (on the worker's event loop)."""
        self._watch = start_watching(get_settings(), self.watcher.check)

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    async def stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    # The APIs are ``async`` although they compute: scoring a batch takes a few
    # tenths of a millisecond, less than BentoML's hop to a worker thread for a
    # sync API, and the event loop has nothing else to do meanwhile.
    @batched_api  # type: ignore[untyped-decorator]
    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        """Ranked recipes for every query of the adaptive batch."""
        BATCH_SIZE.labels(self.kind, "recommend").observe(len(queries))  # "recommend": the published label
        return self.slot.ranker.rank(queries)

    @batched_api  # type: ignore[untyped-decorator]
    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]:
        """Most similar training users for every query of the adaptive batch."""
        BATCH_SIZE.labels(self.kind, "similar_users").observe(len(queries))
        return self.slot.ranker.similar_users(queries)

    @batched_api  # type: ignore[untyped-decorator]
    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]:
        """Nearest recipes ("more like this") for every query of the adaptive batch."""
        BATCH_SIZE.labels(self.kind, "similar_recipes").observe(len(queries))
        return self.slot.ranker.similar_recipes(queries)

    @bentoml.api  # type: ignore[untyped-decorator]
    async def info(self) -> dict[str, str]:
        """The model kind, the store tag serving, its personalisation policy, and a refused version if any.

        The API's health check, and how the API learns of a swap (its watcher pings every MODEL_WATCH_SECONDS).
        """
        ranker = self.slot.ranker
        info = {"kind": self.kind, "version": ranker.version, "personalization": ranker.model.personalization}
        refused = self.slot.refused
        if refused is not None:
            info |= {"refused_version": refused.version, "refused_reason": refused.reason}
        return info
