"""Calls of a runner API that share hops (``edge.remote.Coalesced``), against a runner stand-in that holds each hop
until the test lets it go."""

from __future__ import annotations

import asyncio

import pytest

from edge.remote import Coalesced

pytestmark = pytest.mark.anyio

DEADLINE = 30.0
"""Seconds a test waits for a condition before failing."""


class Runner:
    """Answers each query ``q`` with ``q * 10``; each hop waits for ``release`` (set: hops answer at once)."""

    def __init__(self, *, held: bool = False) -> None:
        self.hops: list[list[int]] = []
        self.release = asyncio.Event()
        if not held:
            self.release.set()
        self.fail: Exception | None = None

    async def send(self, queries: list[int]) -> list[int]:
        self.hops.append(list(queries))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [q * 10 for q in queries]


async def until(condition: object) -> None:
    """Wait until ``condition()`` is true (fails past ``DEADLINE``)."""
    async with asyncio.timeout(DEADLINE):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0)


async def test_a_lone_call_goes_at_once_in_a_hop_of_its_own() -> None:
    runner = Runner()
    hops: list[int] = []
    coalesced = Coalesced(runner.send, max_queries=8, timeout=DEADLINE, observe=hops.append)

    assert await coalesced([1, 2]) == [10, 20]
    assert await coalesced([3]) == [30]
    assert runner.hops == [[1, 2], [3]] and hops == [2, 1]


async def test_calls_that_come_while_a_hop_is_open_leave_together_each_with_its_answers() -> None:
    runner = Runner(held=True)
    coalesced = Coalesced(runner.send, max_queries=8, timeout=DEADLINE)

    first = asyncio.ensure_future(coalesced([1]))
    await until(lambda: len(runner.hops) == 1)
    waiting = [asyncio.ensure_future(coalesced(queries)) for queries in ([2, 3], [4], [5, 6])]
    await asyncio.sleep(0)
    assert len(runner.hops) == 1  # they wait for the open hop
    runner.release.set()

    assert await first == [10]
    assert await asyncio.gather(*waiting) == [[20, 30], [40], [50, 60]]
    assert runner.hops == [[1], [2, 3, 4, 5, 6]]


async def test_a_hop_carries_at_most_max_queries_and_never_splits_a_call() -> None:
    runner = Runner(held=True)
    coalesced = Coalesced(runner.send, max_queries=3, timeout=DEADLINE)

    first = asyncio.ensure_future(coalesced([0]))
    await until(lambda: len(runner.hops) == 1)
    waiting = [asyncio.ensure_future(coalesced(q)) for q in ([1, 2], [3, 4], [5, 6, 7, 8], [9])]
    await asyncio.sleep(0)
    runner.release.set()

    await first
    assert await asyncio.gather(*waiting) == [[10, 20], [30, 40], [50, 60, 70, 80], [90]]
    # [3, 4] would make 4: next hop; a call of 4 goes alone, however many max_queries says.
    assert runner.hops == [[0], [1, 2], [3, 4], [5, 6, 7, 8], [9]]


async def test_a_failed_hop_fails_each_of_its_calls_and_the_next_hop_still_goes() -> None:
    runner = Runner(held=True)
    coalesced = Coalesced(runner.send, max_queries=8, timeout=DEADLINE)

    first = asyncio.ensure_future(coalesced([1]))
    await until(lambda: len(runner.hops) == 1)
    waiting = [asyncio.ensure_future(coalesced([q])) for q in (2, 3)]
    runner.fail = ConnectionError("runner went away")
    runner.release.set()

    with pytest.raises(ConnectionError, match="went away"):
        await first
    for call in waiting:
        with pytest.raises(ConnectionError, match="went away"):
            await call
    runner.fail = None
    assert await coalesced([4]) == [40]
    assert runner.hops == [[1], [2, 3], [4]]


async def test_a_call_given_up_on_is_left_out_of_the_hop_it_waited_for() -> None:
    runner = Runner(held=True)
    coalesced = Coalesced(runner.send, max_queries=8, timeout=DEADLINE)

    first = asyncio.ensure_future(coalesced([1]))
    await until(lambda: len(runner.hops) == 1)
    given_up = asyncio.ensure_future(asyncio.wait_for(coalesced([2]), 0.01))
    kept = asyncio.ensure_future(coalesced([3]))
    with pytest.raises(TimeoutError):
        await given_up
    runner.release.set()

    assert await first == [10] and await kept == [30]
    assert runner.hops == [[1], [3]]


async def test_a_stalled_hop_ends_at_its_timeout_and_the_calls_behind_it_go_in_the_next() -> None:
    stalled = asyncio.Event()  # never set: the first hop stalls

    async def send(queries: list[int]) -> list[int]:
        hops.append(list(queries))
        if len(hops) == 1:
            await stalled.wait()
        return [q * 10 for q in queries]

    hops: list[list[int]] = []
    coalesced = Coalesced(send, max_queries=8, timeout=0.05)

    first = asyncio.ensure_future(coalesced([1]))
    await until(lambda: len(hops) == 1)
    behind = asyncio.ensure_future(coalesced([2]))

    with pytest.raises(TimeoutError):
        await first
    assert await behind == [20]
    assert hops == [[1], [2]]


async def test_a_stopped_hop_cancels_its_calls_and_a_later_call_opens_its_own() -> None:
    runner = Runner(held=True)
    coalesced = Coalesced(runner.send, max_queries=8, timeout=DEADLINE)

    first = asyncio.ensure_future(coalesced([1]))
    await until(lambda: len(runner.hops) == 1)
    hop = coalesced._hop
    assert hop is not None
    hop.cancel()

    with pytest.raises(asyncio.CancelledError):
        await first
    runner.release.set()
    assert await coalesced([2]) == [20]  # a later call is not left behind the stopped hop
    assert runner.hops == [[1], [2]]
