"""The lag tracker's arithmetic, on a clock the test moves (the broker side is in test_consumer.py)."""

from __future__ import annotations

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from recipe_ml.events.lag import RATE_WINDOW_SECONDS, LagTracker

P0 = TopicPartition("interactions", 0)
P1 = TopicPartition("interactions", 1)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scraped(tracker: LagTracker) -> dict[tuple[str, str], float]:
    """``(metric, partition) -> value`` of one scrape (``partition`` empty for the unlabelled gauge)."""
    registry = CollectorRegistry()
    registry.register(tracker)
    return {
        (sample.name, sample.labels.get("partition", "")): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_lag_is_absent_until_the_log_end_and_the_committed_offset_are_known() -> None:
    tracker = LagTracker(clock=Clock(1000.0))
    tracker.log_end(P0, 10)
    tracker.committed(P1, 3)
    assert tracker.lag(P0) is None and tracker.lag(P1) is None
    assert not any(name == "recipe_consumer_lag" for name, _ in scraped(tracker))
    tracker.committed(P0, 4)
    assert tracker.lag(P0) == 6
    assert scraped(tracker)[("recipe_consumer_lag", "0")] == 6


def test_the_age_of_an_event_in_hand_grows_with_every_scrape() -> None:
    """An event stuck behind a Redis outage gets older although the consumer thread is busy retrying it."""
    clock = Clock(1000.0)
    tracker = LagTracker(clock=clock)
    tracker.log_end(P0, 5)
    tracker.committed(P0, 2)
    tracker.in_hand(P0, 990_000)  # milliseconds, 10 s ago
    assert scraped(tracker)[("recipe_consumer_oldest_unapplied_age_seconds", "0")] == 10
    clock.now += 30
    assert scraped(tracker)[("recipe_consumer_oldest_unapplied_age_seconds", "0")] == 40
    tracker.in_hand(P0, -1)  # a record without a timestamp counts from now
    assert scraped(tracker)[("recipe_consumer_oldest_unapplied_age_seconds", "0")] == 0


def test_the_age_is_zero_when_caught_up_and_unknown_when_behind_with_nothing_in_hand() -> None:
    tracker = LagTracker(clock=Clock(1000.0))
    tracker.log_end(P0, 5)
    tracker.committed(P0, 5)
    tracker.log_end(P1, 9)
    tracker.committed(P1, 2)
    samples = scraped(tracker)
    assert samples[("recipe_consumer_oldest_unapplied_age_seconds", "0")] == 0
    assert ("recipe_consumer_oldest_unapplied_age_seconds", "1") not in samples
    assert samples[("recipe_consumer_lag", "1")] == 7


def test_an_unreachable_broker_or_a_revoked_partition_removes_the_series() -> None:
    tracker = LagTracker(clock=Clock(1000.0))
    for partition in (P0, P1):
        tracker.log_end(partition, 5)
        tracker.committed(partition, 5)
    tracker.forget([P1])
    assert {key for key in scraped(tracker) if key[0] == "recipe_consumer_lag"} == {("recipe_consumer_lag", "0")}
    tracker.unknown()
    assert not tracker.knows_committed(P0)
    assert not any(name.startswith("recipe_consumer_lag") for name, _ in scraped(tracker))
    tracker.committed(P0, 5)  # a commit that succeeds proves the broker answers again
    assert scraped(tracker)[("recipe_consumer_lag", "0")] == 0


def test_applied_per_second_averages_the_last_complete_seconds_and_decays_when_idle() -> None:
    clock = Clock(1000.0)
    tracker = LagTracker(clock=clock)
    for second in range(RATE_WINDOW_SECONDS):
        clock.now = 1000.0 + second
        tracker.applied(30)
    clock.now = 1000.0 + RATE_WINDOW_SECONDS + 0.5
    tracker.applied(1000)  # the current, incomplete second is not counted yet
    assert scraped(tracker)[("recipe_consumer_applied_per_second", "")] == 30
    clock.now += 2 * RATE_WINDOW_SECONDS
    assert scraped(tracker)[("recipe_consumer_applied_per_second", "")] == 0
