"""Catalogue records on the ``recipes`` topic, applied by the interaction consumer: a real broker (tansu), real Redis.

One broker serves the whole module (each test has topics and a group of its
own); the consumer, its group join and its stores are each test's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from harness.redis_server import RedisServer
from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.consumer import InteractionConsumer
from recipe_ml.storage import open_cache, open_catalogue, open_interaction_store
from recipe_ml.storage.base import CatalogueStore, RecipeRecord
from recipe_ml.storage.redis import RedisCache, RedisCatalogue, RedisInteractionStore
from tests.fixtures.kafka import TansuBroker, free_port, wait_for_port, wait_until
from tests.recipe_ml.events.test_consumer import FAST, cook, frozen_store, running, send, value

pytestmark = pytest.mark.integration

T1 = "2026-12-01T09:00:00Z"
T2 = "2026-12-01T10:00:00Z"


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    """One tansu broker for the module: a broker start is a second, a group of one's own is enough isolation."""
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@dataclass
class Topics:
    broker: TansuBroker
    interactions: str
    recipes: str
    dlq: str
    group: str

    def settings(self, redis_url: str) -> Settings:
        return Settings(
            redis_url=redis_url,
            kafka_bootstrap_servers=self.broker.bootstrap,
            kafka_topic=self.interactions,
            kafka_recipes_topic=self.recipes,
            kafka_dlq_topic=self.dlq,
            kafka_group_id=self.group,
        )

    def env(self, redis_url: str, **extra: str) -> dict[str, str]:
        env = {key: val for key, val in os.environ.items() if key not in {"REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.broker.bootstrap,
            KAFKA_TOPIC=self.interactions,
            KAFKA_RECIPES_TOPIC=self.recipes,
            KAFKA_DLQ_TOPIC=self.dlq,
            KAFKA_GROUP_ID=self.group,
            REDIS_URL=redis_url,
            **extra,
        )
        return env


@pytest.fixture
def topics(broker: TansuBroker) -> Topics:
    tag = uuid.uuid4().hex[:10]
    topics = Topics(broker, f"interactions-{tag}", f"recipes-{tag}", f"dlq-{tag}", f"group-{tag}")
    for name in (topics.interactions, topics.recipes, topics.dlq):
        broker.create_topic(name)
    return topics


def own_catalogue(redis_url: str, max_recipes: int = 1000) -> RedisCatalogue:
    """The Redis catalogue under a prefix of its own, so a stray writer on the test database cannot change it.

    ``open_catalogue`` opens the same class under the default prefix (the consumer process's, used below).
    """
    return RedisCatalogue(redis_url, max_recipes, prefix=f"t-{uuid.uuid4().hex[:8]}:")


def make_consumer(
    settings: Settings, catalogue: CatalogueStore, store: RedisInteractionStore | None = None
) -> InteractionConsumer:
    assert settings.redis_url is not None
    store = store if store is not None else frozen_store(settings.redis_url)
    return InteractionConsumer(
        settings, EventApplier(store, RedisCache(settings.redis_url)), backoff=FAST, catalogue=catalogue
    )


def publish(
    producer: KafkaProducer, topic: str, payload: dict[str, object] | bytes, timestamp_ms: int | None = None
) -> None:
    """One catalogue record, keyed by its recipe id as the platform keys them (one recipe's records stay in order)."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    recipe = payload.get("recipeId", payload.get("recipe_id")) if isinstance(payload, dict) else None
    key = None if recipe is None else str(recipe).encode()
    producer.send(topic, value=raw, key=key, timestamp_ms=timestamp_ms)


def catalogue_updates(consumer: InteractionConsumer, outcome: str) -> float | None:
    labels = {"source": "kafka", "outcome": outcome}
    return consumer.metrics.registry.get_sample_value("recipe_catalogue_updates_total", labels)


def handled(consumer: InteractionConsumer, count: int) -> bool:
    """``count`` records applied or found to change nothing (counted once done, unlike ``consumed``)."""
    return value(consumer.metrics.applied) + value(consumer.metrics.duplicates) >= count


def test_catalogue_records_and_interactions_are_applied_in_one_run(topics: Topics, redis_url: str) -> None:
    catalogue = own_catalogue(redis_url)
    store = frozen_store(redis_url)
    producer = topics.broker.producer()
    title = "Peanut butter brownies"
    brownies = {
        "recipeId": 10,
        "tags": ["vegetarian", "course:dessert", "vegetarian"],
        "available": True,
        "publishedAt": "2026-11-30T08:00:00Z",
        "title": title,
        "updatedAt": T1,
    }
    publish(producer, topics.recipes, brownies)
    send(producer, topics.interactions, cook(5, 10, eventId="cooked"))
    publish(producer, topics.recipes, {"recipe_id": 11, "available": False, "updated_at": T2, "chef": "ignored"})
    send(producer, topics.interactions, cook(5, 11))
    producer.flush()

    with running(make_consumer(topics.settings(redis_url), catalogue, store)) as consumer:
        wait_until(
            lambda: None not in catalogue.get([10, 11]) and store.recent_items(5) == [11, 10],
            30,
            "both catalogue records and both interactions applied",
        )
        wait_until(lambda: handled(consumer, 4), 10, "the 4 records counted")

    assert catalogue.get([10, 11]) == [
        RecipeRecord(10, ("course:dessert", "vegetarian"), True, epoch("2026-11-30T08:00:00Z"), title, epoch(T1)),
        RecipeRecord(11, (), False, None, None, epoch(T2)),
    ]
    assert catalogue_updates(consumer, "applied") == 2
    assert catalogue_updates(consumer, "stale") == 0
    assert (value(consumer.metrics.consumed), value(consumer.metrics.applied)) == (4, 4)
    assert sorted(store.trending(5)) == [(10, pytest.approx(1.0)), (11, pytest.approx(1.0))]
    assert topics.broker.committed(topics.group, topics.recipes) == 2
    assert topics.broker.committed(topics.group, topics.interactions) == 2


def test_the_last_write_by_updated_at_wins_whatever_the_order(topics: Topics, redis_url: str) -> None:
    catalogue = own_catalogue(redis_url)
    producer = topics.broker.producer()
    newer = {"recipeId": 20, "tags": ["vegan"], "title": "newer", "updatedAt": T2}
    publish(producer, topics.recipes, newer)
    publish(producer, topics.recipes, newer)  # redelivered (a producer retry)
    publish(producer, topics.recipes, {"recipeId": 20, "title": "older", "updatedAt": T1})
    # No updatedAt: ordered by the broker timestamp, here older than T2.
    publish(producer, topics.recipes, {"recipeId": 20, "title": "undated"}, timestamp_ms=int(epoch(T1) * 1000))
    broker_ms = int(epoch(T1) * 1000) + 123
    publish(producer, topics.recipes, {"recipeId": 21, "title": "undated"}, timestamp_ms=broker_ms)
    # The same updatedAt twice: the record whose encoding sorts last wins, in either order.
    publish(producer, topics.recipes, {"recipeId": 22, "title": "b", "updatedAt": T1})
    publish(producer, topics.recipes, {"recipeId": 22, "title": "a", "updatedAt": T1})
    producer.flush()

    with running(make_consumer(topics.settings(redis_url), catalogue)) as consumer:
        wait_until(lambda: handled(consumer, 7), 30, "the 7 catalogue records handled")

    stored = catalogue.get([20, 21, 22])
    assert stored == [
        RecipeRecord(20, ("vegan",), True, None, "newer", epoch(T2)),
        RecipeRecord(21, (), True, None, "undated", broker_ms / 1000),
        RecipeRecord(22, (), True, None, "b", epoch(T1)),
    ]
    assert (catalogue_updates(consumer, "applied"), catalogue_updates(consumer, "stale")) == (3, 4)
    assert (value(consumer.metrics.applied), value(consumer.metrics.duplicates)) == (3, 4)
    assert topics.broker.committed(topics.group, topics.recipes) == 7


def test_invalid_records_and_new_recipes_beyond_the_bound_go_to_the_dlq(topics: Topics, redis_url: str) -> None:
    catalogue = own_catalogue(redis_url, max_recipes=2)
    producer = topics.broker.producer()
    publish(producer, topics.recipes, b"{not json")
    publish(producer, topics.recipes, {"recipeId": 30, "tags": ["Vegan"], "updatedAt": T1})
    publish(producer, topics.recipes, {"recipeId": "30", "updatedAt": T1})
    publish(producer, topics.recipes, {"recipeId": 30, "title": "first", "updatedAt": T1})
    publish(producer, topics.recipes, {"recipeId": 31, "title": "second", "updatedAt": T1})
    publish(producer, topics.recipes, {"recipeId": 32, "title": "one too many", "updatedAt": T1})
    publish(producer, topics.recipes, {"recipeId": 30, "title": "first, updated", "updatedAt": T2})
    producer.flush()

    with running(make_consumer(topics.settings(redis_url), catalogue)) as consumer:
        wait_until(
            lambda: (
                [None if r is None else r.title for r in catalogue.get([30, 31, 32])]
                == ["first, updated", "second", None]
            ),
            30,
            "the records after the refused ones applied",
        )
        wait_until(lambda: value(consumer.metrics.dead_lettered) == 4, 10, "4 records dead-lettered")

    dead_lettered = {
        reason: consumer.metrics.registry.get_sample_value("recipe_consumer_dead_lettered_total", {"reason": reason})
        for reason in ("invalid_json", "validation", "catalogue_full")
    }
    assert dead_lettered == {"invalid_json": 1, "validation": 2, "catalogue_full": 1}
    dead = topics.broker.read_partition(topics.dlq, expected=4)
    assert [record.value for record in dead] == [
        b"{not json",
        b'{"recipeId": 30, "tags": ["Vegan"], "updatedAt": "2026-12-01T09:00:00Z"}',
        b'{"recipeId": "30", "updatedAt": "2026-12-01T09:00:00Z"}',
        b'{"recipeId": 32, "title": "one too many", "updatedAt": "2026-12-01T09:00:00Z"}',
    ]
    headers = [{key: val.decode() for key, val in record.headers} for record in dead]
    reasons = [h["dlq.reason"] for h in headers]
    assert reasons[0].startswith("Invalid JSON")
    assert reasons[1] == "validation failed: tags.0: String should match pattern '^[a-z0-9][a-z0-9:._-]*$'"
    assert reasons[2] == "validation failed: recipeId: Input should be a valid integer"
    assert reasons[3].startswith("catalogue full: ") and "CATALOGUE_MAX_RECIPES" in reasons[3]
    assert [(h["dlq.source.topic"], h["dlq.source.partition"], h["dlq.source.offset"]) for h in headers] == [
        (topics.recipes, "0", "0"),
        (topics.recipes, "0", "1"),
        (topics.recipes, "0", "2"),
        (topics.recipes, "0", "5"),
    ]
    assert [record.key for record in dead] == [None, b"30", b"30", b"32"]
    assert topics.broker.committed(topics.group, topics.recipes) == 7


def test_redis_down_the_catalogue_record_is_retried_and_nothing_past_it_committed(
    topics: Topics, private_redis: RedisServer
) -> None:
    url = private_redis.url()
    catalogue = open_catalogue(url)  # a private Redis: the default prefix is the test's alone
    producer = topics.broker.producer()
    with running(make_consumer(topics.settings(url), catalogue)) as consumer:
        wait_until(lambda: value(consumer.metrics.assigned_partitions) == 2, 30, "consumer joined its group")
        private_redis.stop()
        publish(producer, topics.recipes, {"recipeId": 40, "title": "waits for Redis", "updatedAt": T1})
        producer.flush()
        errors = consumer.metrics.registry.get_sample_value
        wait_until(lambda: (errors("recipe_consumer_errors_total", {"stage": "apply"}) or 0) >= 2, 30, "retried")
        assert topics.broker.committed(topics.group, topics.recipes) is None, "nothing committed past the outage"
        private_redis.start()
        wait_until(lambda: catalogue.ping() and catalogue.get([40])[0] is not None, 30, "applied once Redis is back")
    assert catalogue_updates(consumer, "applied") == 1
    assert value(consumer.metrics.dead_lettered) == 0
    assert topics.broker.committed(topics.group, topics.recipes) == 1


def test_the_consumer_process_applies_catalogue_records_and_exports_their_metric(
    topics: Topics, redis_url: str
) -> None:
    metrics_port = free_port()
    env = topics.env(redis_url, CONSUMER_METRICS_PORT=str(metrics_port))
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.cli", "consume"], cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE
    )
    try:
        producer = topics.broker.producer()
        publish(producer, topics.recipes, {"recipeId": 50, "tags": ["vegan"], "updatedAt": T1})
        send(producer, topics.interactions, cook(9, 50))
        producer.flush()
        catalogue = open_catalogue(redis_url)
        store = open_interaction_store(redis_url)
        wait_until(
            lambda: catalogue.get([50])[0] is not None and store.recent_items(9) == [50],
            45,
            "the subprocess applied the catalogue record and the interaction",
        )
        wait_for_port(metrics_port)
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert samples[("recipe_catalogue_updates_total", (("outcome", "applied"), ("source", "kafka")))] == 1
        assert samples[("recipe_catalogue_updates_total", (("outcome", "stale"), ("source", "kafka")))] == 0
        assert samples[("recipe_consumer_applied_total", ())] == 2
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode()
    assert topics.broker.committed(topics.group, topics.recipes) == 1


def test_the_recipes_topic_must_differ_from_the_interactions_topic() -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", kafka_topic="both", kafka_recipes_topic="both")
    applier = EventApplier(open_interaction_store(None), open_cache(None))
    with pytest.raises(ValueError, match="KAFKA_RECIPES_TOPIC must differ from KAFKA_TOPIC"):
        InteractionConsumer(settings, applier, catalogue=open_catalogue(None))
    assert InteractionConsumer(settings, applier).topics() == ["both"], "without a catalogue: interactions only"
