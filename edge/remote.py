"""A runner service seen as one link of the fallback chain (``recipe_ml.serving.backends.Backend``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from bentoml.exceptions import ServiceUnavailable

from recipe_ml.serving.errors import BackendOverloadedError
from recipe_ml.serving.slot import Refusal
from recipe_ml.serving.telemetry import RUNNER_RETRIES
from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult

logger = logging.getLogger("recipe_ml.service")

T = TypeVar("T")

TRANSPORT_RETRIES = 1
"""Retries of a runner call that failed in transport, before the model ran.

The dropped connections behind the 500s seen under concurrent load: BentoML
1.4's service-to-service client (``_bentoml_impl.client.proxy2``, aiohttp)
recycles its ``ClientSession`` every 100 requests (and every 300 s) and
*closes the old session at once*, while other concurrent requests are still
in flight on it. Those requests die with ``ServerDisconnectedError`` or
``ClientOSError: Can not write request body``. With 32 clients about 20% of
runner calls failed that way here (the fallback chain hid them as ALS or
popularity answers; without it they are 500s). The runners' public
``runner_connection`` setting removes the cause (``runners.base.SERVICE_CONFIG``):
one session for the life of the worker. The retry covers the one race
left, a keep-alive connection the runner's uvicorn closes after 5 s idle at
the instant a request is written on it; scoring is idempotent, so one retry
on a fresh connection is safe.
"""


class RemoteBackend:
    """A runner service as one link of the fallback chain.

    The runner swaps versions on its own (``runners.base``); ``version`` and
    ``refused`` are what it said at the last ping (``RecommendationEngine.refresh``
    pings every MODEL_WATCH_SECONDS). Each answer names its own version.
    """

    def __init__(self, name: str, proxy: Any, version: str) -> None:
        self.name = name
        self.version = version
        self.refused: Refusal | None = None
        self.supports_similarity = True
        self.personalization = "unknown until the runner answers a health check"
        self._client = proxy.to_async

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(TRANSPORT_RETRIES + 1):
            try:
                return await call()
            except ServiceUnavailable as exc:  # BentoML's dispatcher shed it ("process is overloaded")
                raise BackendOverloadedError(f"runner {self.name} is overloaded: {exc}") from exc
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == TRANSPORT_RETRIES:
                    raise
                RUNNER_RETRIES.labels(self.name).inc()
                logger.warning("runner %s dropped the connection; retrying on a fresh one", self.name)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        result: list[RankResult] = await self._call(lambda: self._client.rank(queries))
        return result

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]:
        result: list[SimilarResult] = await self._call(lambda: self._client.similar_users(queries))
        return result

    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]:
        result: list[RankResult] = await self._call(lambda: self._client.similar_recipes(queries))
        return result

    async def ping(self) -> bool:
        info: dict[str, str] = await self._client.info()
        self.personalization = info.get("personalization", self.personalization)
        self.version = info.get("version", self.version)
        refused = info.get("refused_version")
        self.refused = None if refused is None else Refusal(refused, info.get("refused_reason", ""))
        return True
