"""Storage calls from async code, off the event loop.

The storage interfaces are synchronous (the Kafka consumer is a plain
thread). An async request handler that called a Redis backend directly would
stop the whole event loop, and every request in flight with it, for as long
as Redis takes to answer: up to the socket timeout when Redis stalls. So
calls to a ``remote`` backend run in a small thread pool of their own; calls
to the in-process backends stay inline, where a hop to a thread would cost
more than the call. Together with the Redis backends' ``OutageBreaker``
(fast failure while Redis is down), a stalled Redis costs the requests one
timeout, not the event loop its liveness. A bounded pool rather than an
async Redis client: one client and one set of Lua scripts serve both the
consumer and the API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

STORAGE_THREADS = 8
"""Concurrent storage calls per process; more wait their turn (a Redis call is short, or fails fast)."""


class StorageCalls:
    """Runs storage calls inline (in-process backends) or in a bounded thread pool (``remote`` ones)."""

    def __init__(self, *, offload: bool, threads: int = STORAGE_THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="storage") if offload else None

    async def __call__(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args, **kwargs)``, awaited without holding the event loop when it does network I/O."""
        if self._pool is None:
            return call(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: call(*args, **kwargs))
