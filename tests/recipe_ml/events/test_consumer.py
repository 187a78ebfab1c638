"""The Kafka consumer against a real broker (tansu) and the real Redis; no mocks."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

from harness.redis_server import RedisServer
from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.consumer import Backoff, InteractionConsumer
from recipe_ml.storage.redis import RedisCache, RedisInteractionStore
from tests.fixtures.kafka import TansuBroker, free_port, wait_for_port, wait_until

pytestmark = pytest.mark.integration

FAST = Backoff(initial_seconds=0.05, max_seconds=0.5)
HALF_LIFE_HOURS = 24.0


@dataclass
class Topics:
    broker: TansuBroker
    topic: str
    dlq: str
    group: str

    def settings(self, redis_url: str, bootstrap: str | None = None) -> Settings:
        return Settings(
            redis_url=redis_url,
            kafka_bootstrap_servers=bootstrap or self.broker.bootstrap,
            kafka_topic=self.topic,
            kafka_dlq_topic=self.dlq,
            kafka_group_id=self.group,
        )


def make_topics(broker: TansuBroker, unique_name: Callable[[str], str], partitions: int = 1) -> Topics:
    topics = Topics(broker, unique_name("interactions"), unique_name("dlq"), unique_name("group"))
    broker.create_topic(topics.topic, partitions)
    broker.create_topic(topics.dlq)
    return topics


@pytest.fixture
def topics(kafka_broker: TansuBroker, unique_name: Callable[[str], str]) -> Topics:
    return make_topics(kafka_broker, unique_name)


def frozen_store(redis_url: str) -> RedisInteractionStore:
    """A store whose clock stands still: every live event weighs exactly 1 in ``trending``.

    Its keys get a prefix of their own, so a stray writer on the test database cannot blur the counts.
    """
    frozen = time.time()
    return RedisInteractionStore(redis_url, HALF_LIFE_HOURS, prefix=f"t-{uuid.uuid4().hex[:8]}:", clock=lambda: frozen)


def make_consumer(settings: Settings, store: RedisInteractionStore, **options: object) -> InteractionConsumer:
    assert settings.redis_url is not None
    return InteractionConsumer(
        settings,
        EventApplier(store, RedisCache(settings.redis_url)),
        backoff=FAST,
        **options,  # type: ignore[arg-type]
    )


@contextmanager
def running(consumer: InteractionConsumer) -> Iterator[InteractionConsumer]:
    """``consumer.run()`` in a thread, stopped and joined after the block."""
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(timeout=20)
        assert not thread.is_alive(), "consumer did not stop"


def value(counter: object) -> float:
    """Current value of a prometheus Counter or Gauge (all label sets summed)."""
    return sum(s.value for m in counter.collect() for s in m.samples if not s.name.endswith("_created"))  # type: ignore[attr-defined]


def send(producer: KafkaProducer, topic: str, payload: dict[str, object] | bytes, partition: int | None = None) -> None:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    user = payload.get("userId") if isinstance(payload, dict) else None
    producer.send(topic, value=raw, key=str(user).encode() if user is not None else None, partition=partition)


def cook(user: int, recipe: int, **extra: object) -> dict[str, object]:
    return {"userId": user, "recipeId": recipe, "interactionType": "cook", **extra}


def poll_at_least(consumer: InteractionConsumer, count: int) -> list[ConsumerRecord]:
    """Poll (without processing) until ``count`` records arrived."""
    records: list[ConsumerRecord] = []

    def enough() -> bool:
        records.extend(consumer.poll_records())
        return len(records) >= count

    wait_until(enough, 30, f"{count} records polled")
    return records


def joined(consumer: InteractionConsumer, partitions: int = 1) -> Callable[[], bool]:
    return lambda: value(consumer.metrics.assigned_partitions) == partitions


def test_produced_event_is_applied_to_the_store(topics: Topics, redis_url: str) -> None:
    store = frozen_store(redis_url)
    with running(make_consumer(topics.settings(redis_url), store)) as consumer:
        wait_until(joined(consumer), 30, "consumer joined its group")
        producer = topics.broker.producer()
        send(producer, topics.topic, cook(5, 234, eventId="first"))
        producer.flush()
        wait_until(lambda: store.recent_items(5) == [234], 10, "event applied to the user's recent items")
    assert value(consumer.metrics.applied) == 1
    assert store.trending(5) == [(234, pytest.approx(1.0))]


def test_redelivery_after_a_crash_before_commit_double_counts_nothing(topics: Topics, redis_url: str) -> None:
    store = frozen_store(redis_url)
    producer = topics.broker.producer()
    events = [cook(1, 10, eventId="a"), cook(1, 11), cook(2, 10), cook(2, 10, eventId="b"), cook(1, 10)]
    for event in events:
        send(producer, topics.topic, event)
    producer.flush()

    crashed = make_consumer(topics.settings(redis_url), store)
    assert crashed.connect()
    crashed.process(poll_at_least(crashed, 5))  # applied ...
    crashed.close()  # ... but never committed: the process died here
    assert value(crashed.metrics.applied) == 5
    state = (store.recent_items(1), store.recent_items(2), store.trending(10))
    assert state == ([10, 11], [10], [(10, pytest.approx(4.0)), (11, pytest.approx(1.0))])

    with running(make_consumer(topics.settings(redis_url), store)) as restarted:
        wait_until(lambda: value(restarted.metrics.duplicates) == 5, 30, "restarted consumer saw the 5 again")
    assert value(restarted.metrics.applied) == 0
    assert (store.recent_items(1), store.recent_items(2), store.trending(10)) == state
    assert topics.broker.committed(topics.group, topics.topic) == 5


def test_poison_messages_go_to_the_dlq_and_the_events_behind_them_are_applied(topics: Topics, redis_url: str) -> None:
    store = frozen_store(redis_url)
    producer = topics.broker.producer()
    send(producer, topics.topic, cook(1, 10))
    send(producer, topics.topic, b"{not json")
    send(producer, topics.topic, {"userId": 1, "recipeId": 11, "interactionType": "rate"})
    send(producer, topics.topic, cook(1, 12))
    producer.flush()

    with running(make_consumer(topics.settings(redis_url), store)) as consumer:
        wait_until(lambda: store.recent_items(1) == [12, 10], 30, "the events around the poison applied")
    assert value(consumer.metrics.dead_lettered) == 2
    assert value(consumer.metrics.applied) == 2

    dead = topics.broker.read_all(topics.dlq, expected=2)
    assert [record.value for record in dead] == [
        b"{not json",
        b'{"userId": 1, "recipeId": 11, "interactionType": "rate"}',
    ]
    headers = [{key: val.decode() for key, val in record.headers} for record in dead]
    assert headers[0]["dlq.reason"].startswith("Invalid JSON")
    assert headers[1]["dlq.reason"] == (
        "validation failed: rating: Value error, rating (1-5) is required when interactionType is 'rate'"
    )
    assert [(h["dlq.source.topic"], h["dlq.source.partition"], h["dlq.source.offset"]) for h in headers] == [
        (topics.topic, "0", "1"),
        (topics.topic, "0", "2"),
    ]
    assert topics.broker.committed(topics.group, topics.topic) == 4


def test_two_consumers_in_one_group_share_partitions_and_apply_each_event_once(
    kafka_broker: TansuBroker, unique_name: Callable[[str], str], redis_url: str
) -> None:
    topics = make_topics(kafka_broker, unique_name, partitions=2)
    store = frozen_store(redis_url)
    first = make_consumer(topics.settings(redis_url), store)
    second = make_consumer(topics.settings(redis_url), store)
    with running(first), running(second):
        wait_until(lambda: joined(first)() and joined(second)(), 45, "each consumer owns one partition")
        producer = kafka_broker.producer()
        for n in range(20):
            send(producer, topics.topic, cook(user=n % 4, recipe=100 + n % 5, eventId=f"e{n}"), partition=n % 2)
        producer.flush()
        wait_until(lambda: value(first.metrics.consumed) + value(second.metrics.consumed) >= 20, 30, "20 consumed")

    assert value(first.metrics.applied) > 0
    assert value(second.metrics.applied) > 0
    assert value(first.metrics.applied) + value(second.metrics.applied) == 20
    assert sorted(store.trending(10)) == [(100 + r, pytest.approx(4.0)) for r in range(5)]
    for user in range(4):
        expected = [100 + n % 5 for n in reversed(range(20)) if n % 4 == user]
        assert store.recent_items(user) == list(dict.fromkeys(expected))


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server (never the shared one) that the test may stop and restart.

    Append-only with fsync on every write, so a restart keeps what was applied.
    """
    server = RedisServer(extra_args=("--appendonly", "yes", "--appendfsync", "always")).start()
    yield server
    server.stop()


def bounce(server: RedisServer) -> None:
    """Stop the server, leave it down for a second, start it again on the same port and data."""
    server.stop()
    time.sleep(1.0)
    server.start()


def test_redis_dropping_for_a_moment_loses_no_event(topics: Topics, own_redis: RedisServer) -> None:
    url = own_redis.url()
    store = frozen_store(url)
    producer = topics.broker.producer()
    with running(make_consumer(topics.settings(url), store)) as consumer:
        for n in range(3):
            send(producer, topics.topic, cook(1, 10 + n))
        producer.flush()
        wait_until(lambda: store.recent_items(1) == [12, 11, 10], 30, "first events applied")

        stopped = threading.Thread(target=bounce, args=(own_redis,))  # Redis is down for a second
        stopped.start()
        time.sleep(0.2)
        for n in range(3, 6):
            send(producer, topics.topic, cook(1, 10 + n))
        producer.flush()
        stopped.join()
        wait_until(lambda: store.ping() and store.recent_items(1) == [15, 14, 13, 12, 11, 10], 30, "all 6 applied")
    assert value(consumer.metrics.errors) >= 1, "the outage was retried, not skipped"
    assert value(consumer.metrics.applied) == 6
    assert topics.broker.committed(topics.group, topics.topic) == 6


def test_unreachable_broker_at_start_is_retried_until_it_appears(
    unique_name: Callable[[str], str], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = TansuBroker()  # not started yet
    topics = Topics(broker, unique_name("interactions"), unique_name("dlq"), unique_name("group"))
    store = frozen_store(redis_url)
    caplog.set_level(logging.WARNING, logger="recipe_ml.events.consumer")
    consumer = make_consumer(topics.settings(redis_url), store, bootstrap_timeout_ms=300)
    try:
        with running(consumer):
            wait_until(lambda: value(consumer.metrics.connection_retries) >= 2, 30, "connection retries counted")
            assert f"broker {broker.bootstrap} unreachable" in caplog.text
            broker.start()
            broker.create_topic(topics.topic)
            producer = broker.producer()
            send(producer, topics.topic, cook(3, 30))
            producer.flush()
            wait_until(lambda: store.recent_items(3) == [30], 45, "event applied once the broker appeared")
    finally:
        broker.stop()


def consumer_env(topics: Topics, redis_url: str, **extra: str) -> dict[str, str]:
    env = {key: val for key, val in os.environ.items() if key not in {"REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=topics.broker.bootstrap,
        KAFKA_TOPIC=topics.topic,
        KAFKA_DLQ_TOPIC=topics.dlq,
        KAFKA_GROUP_ID=topics.group,
        REDIS_URL=redis_url,
        **extra,
    )
    return env


def test_sigterm_commits_and_exits_zero(topics: Topics, redis_url: str) -> None:
    metrics_port = free_port()
    env = consumer_env(topics, redis_url, CONSUMER_METRICS_PORT=str(metrics_port), LOG_LEVEL="INFO")
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "consume"], cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE
    )
    try:
        producer = topics.broker.producer()
        for n in range(3):
            send(producer, topics.topic, cook(8, 80 + n))
        producer.flush()
        store = RedisInteractionStore(redis_url, HALF_LIFE_HOURS)
        wait_until(lambda: store.recent_items(8) == [82, 81, 80], 45, "subprocess applied the events")
        wait_for_port(metrics_port)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert "recipe_consumer_applied_total 3.0" in metrics
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    assert "SIGTERM received" in stderr.decode()
    assert topics.broker.committed(topics.group, topics.topic) == 3


def test_consumer_process_refuses_bad_settings(topics: Topics, redis_url: str) -> None:
    def start(env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "scripts.cli", "consume"]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, timeout=60)

    no_redis = start(consumer_env(topics, ""))
    assert no_redis.returncode == 2
    assert b"REDIS_URL must be set" in no_redis.stderr

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = start(consumer_env(topics, redis_url, CONSUMER_METRICS_PORT=str(port)))
    assert busy.returncode == 2
    assert f"cannot serve metrics on CONSUMER_METRICS_PORT={port}".encode() in busy.stderr


def test_consumer_needs_a_bootstrap_server_and_a_connection(redis_url: str) -> None:
    applier = EventApplier(RedisInteractionStore(redis_url, HALF_LIFE_HOURS), RedisCache(redis_url))
    with pytest.raises(ValueError, match="KAFKA_BOOTSTRAP_SERVERS must be set"):
        InteractionConsumer(Settings(kafka_bootstrap_servers=None), applier)
    consumer = InteractionConsumer(Settings(kafka_bootstrap_servers="127.0.0.1:1"), applier)
    with pytest.raises(RuntimeError, match="call connect"):
        consumer.poll_once()
    consumer.stop()
    assert consumer.connect() is False  # stopped before it could connect


def test_broker_lost_mid_batch_retries_the_dlq_then_stops_without_skipping(topics: Topics, redis_url: str) -> None:
    """Dead-lettering is retried like applying; a commit failure is counted, not fatal."""
    store = frozen_store(redis_url)
    producer = topics.broker.producer()
    send(producer, topics.topic, cook(4, 40))
    send(producer, topics.topic, b"poison")
    send(producer, topics.topic, cook(4, 41))
    producer.flush()
    consumer = make_consumer(topics.settings(redis_url), store, commit_timeout_ms=1000, dlq_timeout_ms=1000)
    assert consumer.connect()
    records = poll_at_least(consumer, 3)
    topics.broker.stop()  # the DLQ and the group coordinator are gone

    result: list[dict[TopicPartition, OffsetAndMetadata]] = []
    worker = threading.Thread(target=lambda: result.append(consumer.process(records)))
    worker.start()
    wait_until(lambda: value(consumer.metrics.errors) >= 2, 30, "dead-lettering retried")
    consumer.stop()
    worker.join(timeout=20)
    [offsets] = result
    assert [(tp.partition, meta.offset) for tp, meta in offsets.items()] == [(0, 1)]  # the poison and after: not done
    assert store.recent_items(4) == [40]
    assert value(consumer.metrics.dead_lettered) == 0

    consumer.commit(offsets)
    assert consumer.metrics.registry.get_sample_value("recipe_consumer_errors_total", {"stage": "commit"}) == 1
    consumer.close()


def lag_samples(consumer: InteractionConsumer, name: str = "recipe_consumer_lag") -> dict[int, float]:
    """The exported samples of ``name`` by partition, as Prometheus would scrape them."""
    return {
        int(sample.labels["partition"]): sample.value
        for family in consumer.metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def test_lag_goes_from_the_backlog_to_zero(
    kafka_broker: TansuBroker, unique_name: Callable[[str], str], redis_url: str
) -> None:
    """Events produced while no consumer runs are the lag; applying and committing them takes it to 0."""
    topics = make_topics(kafka_broker, unique_name, partitions=2)
    producer = kafka_broker.producer()
    for n in range(7):
        send(producer, topics.topic, cook(n, 100 + n), partition=n % 2)
    producer.flush()

    consumer = make_consumer(topics.settings(redis_url), frozen_store(redis_url))
    assert consumer.connect()
    try:
        records: list[ConsumerRecord] = []

        def backlog_seen() -> bool:
            records.extend(consumer.poll_records())
            return lag_samples(consumer) == {0: 4, 1: 3}

        wait_until(backlog_seen, 30, "the lag shows the 4 + 3 events produced before the consumer started")
        ages = lag_samples(consumer, "recipe_consumer_oldest_unapplied_age_seconds")
        assert set(ages) == {0, 1} and min(ages.values()) >= 0, ages

        def all_applied() -> bool:
            consumer.commit(consumer.process(records))
            records[:] = consumer.poll_records()
            return lag_samples(consumer) == {0: 0, 1: 0}

        wait_until(all_applied, 30, "the lag back to 0 once the 7 events are applied and committed")
        assert lag_samples(consumer, "recipe_consumer_oldest_unapplied_age_seconds") == {0: 0, 1: 0}
        assert value(consumer.metrics.applied) == 7
    finally:
        consumer.close()
    assert lag_samples(consumer) == {}, "a consumer that left the group exports no lag (the new owner does)"


def test_a_running_consumer_catches_up_and_reports_it(topics: Topics, redis_url: str) -> None:
    producer = topics.broker.producer()
    for n in range(5):
        send(producer, topics.topic, cook(6, 60 + n))
    producer.flush()
    with running(make_consumer(topics.settings(redis_url), frozen_store(redis_url))) as consumer:
        wait_until(lambda: lag_samples(consumer) == {0: 0}, 30, "lag 0 once the 5 events are applied")
        assert value(consumer.metrics.applied) == 5
        assert topics.broker.committed(topics.group, topics.topic) == 5


def test_lag_is_unknown_while_the_broker_is_unreachable(topics: Topics, redis_url: str) -> None:
    """No stale lag and no exception: the series goes, errors{stage="lag"} counts, the consumer keeps running."""
    consumer = make_consumer(
        topics.settings(redis_url), frozen_store(redis_url), lag_refresh_ms=200, lag_timeout_ms=500
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: lag_samples(consumer) == {0: 0}, 30, "lag known while the broker answers")
        topics.broker.stop()
        wait_until(lambda: lag_samples(consumer) == {}, 30, "lag absent once the broker is gone")
        errors = consumer.metrics.registry.get_sample_value("recipe_consumer_errors_total", {"stage": "lag"})
        assert errors is not None and errors >= 1
        assert thread.is_alive(), "the consumer kept running"
    finally:
        consumer.stop()
        thread.join(timeout=30)
    assert not thread.is_alive(), "consumer did not stop"
