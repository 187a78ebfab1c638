"""The impression log: every sink receives what was published, and a stuck sink costs records, never a caller."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from recipe_ml.config import Settings
from recipe_ml.events.attribution import Attribution, AttributionMetrics, Attributor
from recipe_ml.events.schema import InteractionEvent, InteractionType, new_recommendation_id
from recipe_ml.serving.impressions import (
    Impression,
    ImpressionLog,
    JsonlSink,
    KafkaSink,
    LogRecord,
    MemorySink,
    open_impression_log,
)
from recipe_ml.serving.telemetry import IMPRESSIONS, IMPRESSIONS_DROPPED, SHOWN_LISTS_DROPPED
from recipe_ml.storage.base import ShownList
from recipe_ml.storage.memory import MemoryInteractionStore
from recipe_ml.storage.redis import RedisInteractionStore
from tests.fixtures.kafka import TansuBroker
from tests.fixtures.wait import wait_until


def impression(user_id: int, endpoint: str = "recipes") -> Impression:
    return Impression(
        recommendation_id=new_recommendation_id(),
        endpoint=endpoint,
        variant="default",
        model="als",
        model_version="recipe_als:v1",
        user_id=user_id,
        recipe_ids=[user_id, user_id + 1, user_id + 2],
    )


def attribution(shown: Impression, rank: int = 1) -> Attribution:
    return Attribution(
        recommendation_id=shown.recommendation_id,
        endpoint=shown.endpoint,
        variant=shown.variant,
        model=shown.model,
        user_id=shown.user_id,
        recipe_id=shown.recipe_ids[rank - 1],
        interaction_type="cook",
        rank=rank,
    )


def dropped(reason: str) -> float:
    value: float = IMPRESSIONS_DROPPED.labels(reason)._value.get()
    return value


class GatedSink(MemorySink):
    """A sink that holds its first write until ``release`` (a stalled disk or broker)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, batch: Sequence[LogRecord]) -> None:
        self.entered.set()
        self.release.wait()
        super().write(batch)


class GatedStore(MemoryInteractionStore):
    """A store that holds its first ``remember_shown`` until ``release`` (a slow Redis)."""

    def __init__(self) -> None:
        super().__init__(24.0)
        self.entered = threading.Event()
        self.release = threading.Event()

    def remember_shown(self, shown: Sequence[ShownList], ttl_seconds: int) -> None:
        self.entered.set()
        self.release.wait()
        super().remember_shown(shown, ttl_seconds)


class BrokenSink(MemorySink):
    def write(self, batch: Sequence[LogRecord]) -> None:
        raise OSError("disk full")


@pytest.fixture
def closing() -> Iterator[list[ImpressionLog]]:
    logs: list[ImpressionLog] = []
    yield logs
    for log in logs:
        log.close()


def test_the_in_process_buffer_holds_every_record_in_order(closing: list[ImpressionLog]) -> None:
    sink = MemorySink()
    log = ImpressionLog(sink, queue_size=100)
    closing.append(log)
    published = [impression(user_id) for user_id in range(50)]
    counted = IMPRESSIONS.labels("recipes", "default", "als")._value.get()

    for record in published:
        log.publish(record)

    wait_until(lambda: len(sink.records()) == 50, 10, "the 50 records in the buffer")
    assert sink.records() == published
    assert IMPRESSIONS.labels("recipes", "default", "als")._value.get() == counted + 50


def test_a_full_queue_drops_and_counts_instead_of_waiting(closing: list[ImpressionLog]) -> None:
    sink = GatedSink()
    log = ImpressionLog(sink, queue_size=10)
    closing.append(log)
    log.publish(impression(0))
    assert sink.entered.wait(10), "the publisher thread took the first record"
    before = dropped("queue_full")

    for user_id in range(1, 16):  # 10 fit in the queue, 5 do not
        log.publish(impression(user_id))

    assert dropped("queue_full") == before + 5
    sink.release.set()
    wait_until(lambda: len(sink.records()) == 11, 10, "the first and the 10 queued records written")
    assert [r.user_id for r in sink.records()] == list(range(11))


def test_a_failing_sink_drops_the_batch_counted_and_the_log_goes_on(closing: list[ImpressionLog]) -> None:
    log = ImpressionLog(BrokenSink(), queue_size=100)
    closing.append(log)
    before = dropped("sink_error")

    for user_id in range(20):
        log.publish(impression(user_id))

    wait_until(lambda: dropped("sink_error") == before + 20, 10, "the 20 records counted as dropped")


def test_the_jsonl_file_rotates_and_keeps_every_line(tmp_path: Path, closing: list[ImpressionLog]) -> None:
    path = tmp_path / "log" / "impressions.jsonl"
    log = ImpressionLog(JsonlSink(path, max_bytes=4096, backups=50), queue_size=1000)
    closing.append(log)
    published = [impression(user_id, "users" if user_id % 2 else "recipes") for user_id in range(200)]

    for record in published:
        log.publish(record)
    log.close()

    files = sorted(path.parent.iterdir(), key=lambda f: -int(f.suffix[1:]) if f.suffix[1:].isdigit() else 0)
    assert len(files) > 2, "the log rotated"
    lines = [json.loads(line) for file in files for line in file.read_text().splitlines()]
    assert [line["recommendationId"] for line in lines] == [r.recommendation_id for r in published]
    assert lines[0] == {
        "kind": "impression",
        "recommendationId": published[0].recommendation_id,
        "endpoint": "recipes",
        "variant": "default",
        "model": "als",
        "modelVersion": "recipe_als:v1",
        "userId": 0,
        "recipeIds": [0, 1, 2],
        "timestamp": datetime.fromtimestamp(published[0].shown_at, UTC).isoformat(),
    }
    assert lines[1]["userIds"] == [1, 2, 3] and "recipeIds" not in lines[1]


def test_attributions_are_written_beside_the_impressions_saying_their_kind(
    tmp_path: Path, closing: list[ImpressionLog]
) -> None:
    path = tmp_path / "impressions.jsonl"
    log = ImpressionLog(JsonlSink(path, max_bytes=1 << 20), queue_size=100)
    closing.append(log)
    shown = impression(3)

    log.publish(shown)
    log.publish_attribution(attribution(shown, rank=2))
    log.close()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["kind"], line["recommendationId"]) for line in lines] == [
        ("impression", shown.recommendation_id),
        ("attribution", shown.recommendation_id),
    ]
    assert (lines[1]["rank"], lines[1]["recipeId"], lines[1]["interactionType"]) == (2, 4, "cook")


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_with_a_store_the_ranked_recipes_of_each_answer_are_kept_for_attribution(
    backend: str, closing: list[ImpressionLog], request: pytest.FixtureRequest
) -> None:
    store = (
        MemoryInteractionStore(24.0)
        if backend == "memory"
        else RedisInteractionStore(request.getfixturevalue("redis_url"), 24.0)
    )
    log = ImpressionLog(MemorySink(), queue_size=100, store=store, shown_ttl_seconds=600)
    closing.append(log)
    recipes, users = impression(5), impression(6, endpoint="users")

    log.publish(recipes)
    log.publish(users)

    wait_until(lambda: store.shown(recipes.recommendation_id) is not None, 10, "the recipes list kept")
    kept = store.shown(recipes.recommendation_id)
    assert kept is not None and (kept.recipe_ids, kept.variant, kept.model) == ((5, 6, 7), "default", "als")
    log.close()
    assert store.shown(users.recommendation_id) is None, "similar users rank users: nothing to attribute"


def test_an_interaction_posted_before_the_store_holds_its_list_is_attributed_from_the_log(
    closing: list[ImpressionLog],
) -> None:
    """A client that posts the cook the moment it has the answer: the list is still on its way to the store."""
    store = GatedStore()
    log = ImpressionLog(MemorySink(), queue_size=100, store=store, shown_ttl_seconds=600)
    closing.append(log)
    registry = CollectorRegistry()
    attributions: list[Attribution] = []
    attributor = Attributor(store, attributions.append, AttributionMetrics(registry), 3600.0, log.pending)
    shown = impression(5)

    log.publish(shown)
    assert store.entered.wait(10), "the thread is keeping the list"
    assert store.shown(shown.recommendation_id) is None
    cook = InteractionEvent(
        user_id=5, recipe_id=6, interaction_type=InteractionType.COOK, recommendation_id=shown.recommendation_id
    )
    attributed = attributor.attribute(cook)

    assert attributed is not None and (attributed.rank, attributed.model) == (2, "als")
    assert attributions == [attributed]
    store.release.set()
    wait_until(lambda: log.pending(shown.recommendation_id) is None, 10, "the list leaves the log once kept")
    kept = store.shown(shown.recommendation_id)
    assert kept is not None and kept.recipe_ids == (5, 6, 7)


def test_a_dropped_answer_leaves_nothing_pending(closing: list[ImpressionLog]) -> None:
    """What the log holds for attribution is bounded by its queue: a record the full queue drops is not kept."""
    store = GatedStore()
    log = ImpressionLog(MemorySink(), queue_size=2, store=store, shown_ttl_seconds=600)
    closing.append(log)
    first = impression(0)
    log.publish(first)
    assert store.entered.wait(10), "the thread took the first record"
    queued, dropped_one = [impression(1), impression(2)], impression(3)

    for record in [*queued, dropped_one]:
        log.publish(record)

    assert log.pending(dropped_one.recommendation_id) is None
    assert all(log.pending(r.recommendation_id) is not None for r in [first, *queued])
    store.release.set()
    wait_until(lambda: all(log.pending(r.recommendation_id) is None for r in [first, *queued]), 10, "all three kept")
    assert store.shown(dropped_one.recommendation_id) is None


def test_a_store_that_refuses_the_shown_lists_costs_them_counted_and_the_records_still_go_out(
    closing: list[ImpressionLog],
) -> None:
    sink = MemorySink()
    store = RedisInteractionStore("redis://127.0.0.1:1/0", 24.0)  # nothing listens on port 1
    log = ImpressionLog(sink, queue_size=100, store=store, shown_ttl_seconds=600)
    closing.append(log)
    before = SHOWN_LISTS_DROPPED._value.get()

    published = [impression(user_id) for user_id in range(10)]
    for record in published:
        log.publish(record)

    wait_until(lambda: len(sink.records()) == 10, 30, "the 10 records written")
    assert SHOWN_LISTS_DROPPED._value.get() == before + 10
    assert all(log.pending(r.recommendation_id) is None for r in published), "a refused list is not held on to"


def test_the_settings_pick_the_sink(tmp_path: Path, closing: list[ImpressionLog]) -> None:
    kinds = []
    for overrides in ({}, {"impression_log_path": tmp_path / "i.jsonl"}, {"kafka_bootstrap_servers": "127.0.0.1:1"}):
        log = open_impression_log(Settings(_env_file=None, **overrides))  # type: ignore[call-arg]
        closing.append(log)
        kinds.append(type(log.sink))
    assert kinds == [MemorySink, JsonlSink, KafkaSink]


def test_turned_off_the_log_writes_nothing_keeps_no_shown_list_and_runs_no_thread(
    tmp_path: Path, closing: list[ImpressionLog]
) -> None:
    path = tmp_path / "impressions.jsonl"
    store = MemoryInteractionStore(24.0)
    settings = Settings(_env_file=None, impression_log_enabled=False, impression_log_path=path)  # type: ignore[call-arg]
    threads = sum(thread.name == "impression-log" for thread in threading.enumerate())
    counted = IMPRESSIONS.labels("recipes", "default", "als")._value.get()

    log = open_impression_log(settings, store)
    shown = [impression(user_id) for user_id in range(20)]
    for record in shown:
        log.publish(record)
    log.publish_attribution(attribution(shown[0]))

    assert not log.enabled
    assert sum(thread.name == "impression-log" for thread in threading.enumerate()) == threads
    log.close()
    assert not path.exists(), "no file opened"
    assert isinstance(log.sink, MemorySink) and log.sink.records() == []
    assert all(store.shown(record.recommendation_id) is None for record in shown), "nothing kept to attribute"
    assert IMPRESSIONS.labels("recipes", "default", "als")._value.get() == counted
    closing.append(open_impression_log(Settings(_env_file=None), store))  # type: ignore[call-arg]
    assert closing[0].enabled, "on by default"


@pytest.mark.integration
def test_kafka_receives_every_record_and_a_stopped_broker_costs_records_only(
    kafka_broker: TansuBroker, closing: list[ImpressionLog]
) -> None:
    kafka_broker.create_topic("recommendations")
    kafka_broker.create_topic("attributions")
    settings = Settings(_env_file=None, kafka_bootstrap_servers=kafka_broker.bootstrap)  # type: ignore[call-arg]
    log = ImpressionLog(KafkaSink(settings, timeout_ms=500), queue_size=50)
    closing.append(log)
    published = [impression(user_id) for user_id in range(30)]

    for record in published:
        log.publish(record)

    records = kafka_broker.read_all("recommendations", 30)
    assert sorted(json.loads(r.value)["recommendationId"] for r in records) == sorted(
        r.recommendation_id for r in published
    )
    assert {r.key for r in records} == {str(user_id).encode() for user_id in range(30)}
    log.publish_attribution(attribution(published[4], rank=3))
    [attributed] = kafka_broker.read_all("attributions", 1)
    assert json.loads(attributed.value)["kind"] == "attribution" and attributed.key == b"4"

    kafka_broker.stop()
    before = sum(dropped(reason) for reason in ("queue_full", "sink_error", "broker"))
    for user_id in range(2000):  # every call returns: publishing never waits for the broker
        log.publish(impression(user_id))
    wait_until(
        lambda: sum(dropped(reason) for reason in ("queue_full", "sink_error", "broker")) > before,
        60,
        "records dropped (and counted) while the broker is down",
    )
