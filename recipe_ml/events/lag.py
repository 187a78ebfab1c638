"""How far one consumer is behind its topic, read by Prometheus when it scrapes.

The consumer thread writes what it learns (log ends from its fetches, the
group's committed offsets, the events in hand, the events applied) and the
metrics server thread reads it, so the state sits behind a lock and the
values that depend on the time (ages, the rate) are computed at scrape time:
an event stuck behind a Redis outage gets older with every scrape although
the consumer thread is busy retrying it.

A value that is not known is not exported at all (no sample), never a stale
or a made-up one: Prometheus then shows the series as absent, which alerts
can tell apart from a lag of zero.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kafka import TopicPartition
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

RATE_WINDOW_SECONDS = 10
"""``recipe_consumer_applied_per_second`` averages over this many complete seconds."""


@dataclass
class _Partition:
    end: int | None = None
    """The log end offset (the next offset to be written), from the last fetch."""
    committed: int | None = None
    """The group's committed offset: the next event the group has not committed."""
    in_hand_since: float | None = None
    """Timestamp (seconds) of the oldest event fetched and not applied yet."""


class LagTracker(Collector):
    """Per-partition lag and event age, and the events applied per second, of one consumer."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._applied_per_second: Counter[int] = Counter()

    # Written by the consumer thread
    def log_end(self, partition: TopicPartition, offset: int | None) -> None:
        """The log end the last fetch reported (None: no fetch answered for the partition yet)."""
        with self._lock:
            self._partitions.setdefault(partition, _Partition()).end = offset

    def committed(self, partition: TopicPartition, offset: int) -> None:
        """The group's committed offset, as committed by this consumer or read from the broker."""
        with self._lock:
            self._partitions.setdefault(partition, _Partition()).committed = offset

    def knows_committed(self, partition: TopicPartition) -> bool:
        with self._lock:
            state = self._partitions.get(partition)
            return state is not None and state.committed is not None

    def in_hand(self, partition: TopicPartition, timestamp_ms: int | None) -> None:
        """The oldest event fetched and not yet applied is ``timestamp_ms`` old (None: none left in hand).

        A record without a timestamp (the broker's -1) counts from now.
        """
        since = None
        if timestamp_ms is not None:
            since = timestamp_ms / 1000 if timestamp_ms >= 0 else self._clock()
        with self._lock:
            self._partitions.setdefault(partition, _Partition()).in_hand_since = since

    def applied(self, count: int = 1) -> None:
        with self._lock:
            self._applied_per_second[int(self._clock())] += count

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions this consumer no longer owns: their series go (the new owner exports them)."""
        with self._lock:
            for partition in partitions:
                self._partitions.pop(partition, None)

    def unknown(self) -> None:
        """The broker did not answer: lags are unknown until it answers again."""
        with self._lock:
            for state in self._partitions.values():
                state.committed = None

    # Read by the metrics server thread
    def lag(self, partition: TopicPartition) -> int | None:
        """Events of ``partition`` not committed by the group yet; None when unknown."""
        with self._lock:
            state = self._partitions.get(partition)
            return None if state is None else _lag(state)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "recipe_consumer_lag",
            "Events of the partition the group has not committed (log end minus committed offset); "
            "absent while unknown",
            labels=["topic", "partition"],
        )
        age = GaugeMetricFamily(
            "recipe_consumer_oldest_unapplied_age_seconds",
            "Age of the oldest event of the partition not applied yet (0 when caught up); absent while unknown",
            labels=["topic", "partition"],
        )
        now = self._clock()
        with self._lock:
            for partition, state in sorted(self._partitions.items()):
                behind = _lag(state)
                if behind is None:
                    continue
                labels = [partition.topic, str(partition.partition)]
                lag.add_metric(labels, behind)
                if state.in_hand_since is not None:
                    age.add_metric(labels, max(0.0, now - state.in_hand_since))
                elif behind == 0:
                    age.add_metric(labels, 0.0)
            second = int(now)
            for old in [s for s in self._applied_per_second if s < second - RATE_WINDOW_SECONDS]:
                del self._applied_per_second[old]
            applied = sum(n for s, n in self._applied_per_second.items() if s < second)
        yield lag
        yield age
        yield GaugeMetricFamily(
            "recipe_consumer_applied_per_second",
            f"Events applied per second, over the last {RATE_WINDOW_SECONDS} complete seconds",
            value=applied / RATE_WINDOW_SECONDS,
        )


def _lag(state: _Partition) -> int | None:
    if state.end is None or state.committed is None:
        return None
    return max(0, state.end - state.committed)
