"""A runner service seen as one link of the fallback chain (``recipe_ml.serving.backends.Backend``)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import aiohttp
from bentoml.exceptions import ServiceUnavailable

from recipe_ml.serving.errors import BackendOverloadedError
from recipe_ml.serving.slot import Refusal
from recipe_ml.serving.telemetry import HOP_QUERIES, RUNNER_RETRIES
from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult

logger = logging.getLogger("recipe_ml.service")

T = TypeVar("T")
Q = TypeVar("Q")
R = TypeVar("R")

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


class Coalesced(Generic[Q, R]):
    """A runner API as a worker's concurrent requests call it: the queries that wait share the next hop.

    BentoML's server costs a runner about as much per request as the ranking
    does, whatever its dispatcher batches afterwards, so a hop that carries
    the queries of several requests pays that once for all of them. No wait
    is added: a call goes at once when no hop of this API is open; the calls
    that come while one is open wait for it to come back and leave together
    (at most ``max_queries`` queries a hop; a call's own are never split).
    A hop's failure is each of its calls' (each falls through the chain on
    its own). A call given up on (its timeout) is left out of the hop it
    waited for, and a hop lasts at most ``timeout`` seconds, so a stalled
    runner keeps no call waiting longer than the call itself would wait.
    """

    def __init__(
        self,
        send: Callable[[list[Q]], Awaitable[list[R]]],
        max_queries: int,
        timeout: float,
        observe: Callable[[int], None] = lambda queries: None,
    ) -> None:
        self._send = send
        self._observe = observe
        """Told the number of queries of each hop (``HOP_QUERIES``)."""
        self._max_queries = max_queries
        self._timeout = timeout
        self._waiting: deque[tuple[list[Q], asyncio.Future[list[R]]]] = deque()
        self._hop: asyncio.Task[None] | None = None
        """The open hop (held: the event loop keeps only a weak reference to a task)."""

    async def __call__(self, queries: list[Q]) -> list[R]:
        answer: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._waiting.append((queries, answer))
        if self._hop is None:
            self._start()
        return await answer

    def _start(self) -> None:
        """Open a hop with the calls waiting (none left, or all given up on: no hop)."""
        hop: list[tuple[list[Q], asyncio.Future[list[R]]]] = []
        size = 0
        while self._waiting:
            queries, answer = self._waiting[0]
            if answer.done():  # given up on while it waited
                self._waiting.popleft()
            elif hop and size + len(queries) > self._max_queries:
                break
            else:
                hop.append(self._waiting.popleft())
                size += len(queries)
        self._hop = None
        if hop:
            self._observe(size)
            self._hop = asyncio.ensure_future(self._carry(hop))

    async def _carry(self, hop: list[tuple[list[Q], asyncio.Future[list[R]]]]) -> None:
        try:
            results = await asyncio.wait_for(self._send([q for queries, _ in hop for q in queries]), self._timeout)
        except asyncio.CancelledError:  # the hop is stopped (the worker is stopping): so are its calls
            for _, answer in hop:
                answer.cancel()
            self._hop = None  # a call that comes later opens a hop of its own
            raise
        except Exception as exc:  # the hop's failure is each of its calls'
            for _, answer in hop:
                if not answer.done():
                    answer.set_exception(exc)
        else:
            first = 0
            for queries, answer in hop:
                if not answer.done():
                    answer.set_result(results[first : first + len(queries)])
                first += len(queries)
        self._start()


class RemoteBackend:
    """A runner service as one link of the fallback chain.

    The runner swaps versions on its own (``runners.base``); ``version`` and
    ``refused`` are what it said at the last ping (``RecommendationEngine.refresh``
    pings every MODEL_WATCH_SECONDS). Each answer names its own version.
    """

    def __init__(self, name: str, proxy: Any, version: str, max_queries: int, timeout: float) -> None:
        self.name = name
        self.version = version
        self.refused: Refusal | None = None
        self.supports_similarity = True
        self.personalization = "unknown until the runner answers a health check"
        self._client = proxy.to_async
        self._rank: Coalesced[RankQuery, RankResult] = self._coalesced("rank", "recommend", max_queries, timeout)
        self._similar_users: Coalesced[SimilarQuery, SimilarResult] = self._coalesced(
            "similar_users", "similar_users", max_queries, timeout
        )
        self._similar_recipes: Coalesced[SimilarRecipeQuery, RankResult] = self._coalesced(
            "similar_recipes", "similar_recipes", max_queries, timeout
        )

    def _coalesced(self, method: str, api: str, max_queries: int, timeout: float) -> Coalesced[Any, Any]:
        """The runner API ``method``, its concurrent calls sharing hops; ``api``: its label (the runner's too).

        The client's method is looked up at each hop: BentoML's client has its methods once it has connected.
        """
        return Coalesced(
            lambda queries: self._call(lambda: getattr(self._client, method)(queries)),
            max_queries,
            timeout,
            HOP_QUERIES.labels(self.name, api).observe,
        )

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
        return await self._rank(queries)

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]:
        return await self._similar_users(queries)

    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]:
        return await self._similar_recipes(queries)

    async def ping(self) -> bool:
        info: dict[str, str] = await self._client.info()
        self.personalization = info.get("personalization", self.personalization)
        self.version = info.get("version", self.version)
        refused = info.get("refused_version")
        self.refused = None if refused is None else Refusal(refused, info.get("refused_reason", ""))
        return True
