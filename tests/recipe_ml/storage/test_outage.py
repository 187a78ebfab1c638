"""A Redis that stalls or restarts: fast failure once known down, an event loop that never waits, recovery."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
from prometheus_client import REGISTRY

from harness.redis_server import RedisServer
from recipe_ml.events.schema import InteractionEvent, InteractionType
from recipe_ml.storage.memory import MemoryInteractionStore
from recipe_ml.storage.offload import StorageCalls
from recipe_ml.storage.redis import OUTAGE_COOLDOWN_SECONDS, OutageBreaker, RedisCache, RedisInteractionStore
from tests.fixtures.wait import wait_until

TIMEOUT = 0.3
"""Socket timeout of the clients under test: a stalled call ends with a timeout, not a hang."""


def event(n: int) -> InteractionEvent:
    return InteractionEvent(user_id=1, recipe_id=n, interaction_type=InteractionType.VIEW, event_id=f"e{n}")


def unavailable(store: str) -> float:
    """``recipe_redis_unavailable_total{store=...}`` of this process (0 before the first outage)."""
    return REGISTRY.get_sample_value("recipe_redis_unavailable_total", {"store": store}) or 0.0


@pytest.mark.integration
def test_a_stalled_redis_fails_fast_after_the_first_timeout_and_recovers(private_redis: RedisServer) -> None:
    """The breaker's clock only moves when the test says: it stays open however slow the machine is."""
    now = [0.0]
    breaker = OutageBreaker("interactions", clock=lambda: now[0])
    store = RedisInteractionStore(private_redis.url(), 1.0, timeout_seconds=TIMEOUT, breaker=breaker)
    assert store.apply(event(1)) is True
    before = unavailable("interactions")

    private_redis.pause()
    with pytest.raises(redis.TimeoutError):
        store.apply(event(2))  # waits for the socket timeout: nobody answers
    with pytest.raises(redis.ConnectionError, match="a recent call failed"):
        store.recent_items(1)  # the breaker is open: no network call at all
    assert store.ping() is False
    assert unavailable("interactions") == before + 3, "the timeout, the refusal and the failed ping are counted"

    private_redis.resume()

    def probe() -> bool:
        now[0] += OUTAGE_COOLDOWN_SECONDS  # each cooldown is over: every call probes
        return store.ping()

    wait_until(probe, 30, "the store sees Redis come back")
    store.apply(event(2))  # the retry; the timed-out write may have landed meanwhile (then a duplicate)
    assert store.recent_items(1) == [2, 1]


@pytest.mark.integration
def test_after_a_restart_the_cache_and_store_reconnect_by_themselves(private_redis: RedisServer) -> None:
    cache = RedisCache(private_redis.url(), timeout_seconds=TIMEOUT)
    store = RedisInteractionStore(private_redis.url(), 1.0, timeout_seconds=TIMEOUT)
    cache.set("k", b"v", 60)
    assert cache.get("k") == b"v" and store.apply(event(1))

    before = unavailable("cache")
    private_redis.stop()  # the old connections die, the data is gone
    assert cache.get("k") is None  # a miss, counted as Redis unavailable
    assert unavailable("cache") == before + 1
    private_redis.start()

    wait_until(lambda: cache.ping() and store.ping(), 30, "the cache and the store reconnect")
    assert cache.get("k") is None
    cache.set("k", b"w", 60)
    assert cache.get("k") == b"w"
    assert store.apply(event(1)) is True


@pytest.mark.integration
def test_remote_calls_run_off_the_event_loop_which_keeps_serving(private_redis: RedisServer) -> None:
    """While a call waits on a stalled Redis, other coroutines keep running."""
    store = RedisInteractionStore(private_redis.url(), 1.0, timeout_seconds=TIMEOUT)
    calls = StorageCalls(offload=store.remote)
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    async def scenario() -> BaseException | None:
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0)
        before = ticks
        try:
            await calls(store.recent_items, 1)
            failure = None
        except redis.RedisError as exc:
            failure = exc
        assert ticks > before + 1, "the event loop stood still during the storage call"
        stop.set()
        await ticking
        return failure

    private_redis.pause()
    failure = asyncio.run(scenario())

    assert isinstance(failure, redis.TimeoutError)


def test_in_process_backends_are_called_inline() -> None:
    store = MemoryInteractionStore(1.0)
    calls = StorageCalls(offload=store.remote)

    async def thread_of_call() -> int:
        return await calls(threading.get_ident)

    assert not store.remote and asyncio.run(thread_of_call()) == threading.get_ident()
    assert RedisInteractionStore.remote and RedisCache.remote
