"""Events applied per second by one Kafka consumer into Redis, and freshness.

    python -m harness.bench_consumer --count 5000     # starts a local tansu broker
    python -m harness.bench_consumer --bootstrap host:9092 --redis-url redis://host:6379/0

Realistic events (``scripts.produce_events``) are produced to a fresh topic
first; then one ``InteractionConsumer`` drains it through the real code path
(parse, Lua apply, cache invalidation, batched commit). The clock runs from the
first non-empty poll to the last commit, so the group join is not counted.
Then freshness: single events are produced one at a time, and the time from
``send`` to the event being visible in the Redis store (which is what the API
reads) is measured. Redis keys go under a fresh prefix, deleted afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

import redis
from kafka import KafkaProducer
from kafka.errors import KafkaError

from harness.tansu import Tansu, create_topic
from recipe_ml.config import DATA_DIR, get_settings
from recipe_ml.data import DataError, load_ratings, split_path
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.consumer import InteractionConsumer
from recipe_ml.events.schema import InteractionEvent, InteractionType
from recipe_ml.storage.redis import RedisCache, RedisInteractionStore
from scripts.produce_events import sample_events, to_json

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FRESHNESS_USER = 999_999_990
"""A user id absent from the data, so freshness events start from an empty history."""
FRESHNESS_TIMEOUT_SECONDS = 30.0


def produce(bootstrap: str, topic: str, count: int, seed: int) -> None:
    """``count`` realistic events on a fresh one-partition ``topic``."""
    ratings = load_ratings(split_path(DATA_DIR, "train"))
    create_topic(bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for event in sample_events(ratings, count, seed):
        producer.send(topic, key=str(event.user_id).encode(), value=to_json(event))
    producer.flush()
    producer.close()


def drain(consumer: InteractionConsumer, count: int, timeout_seconds: float) -> float:
    """Seconds one consumer took to apply ``count`` records, from its first non-empty poll."""
    first: float | None = None
    handled = 0
    deadline = time.monotonic() + timeout_seconds
    while handled < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {handled} of {count} events after {timeout_seconds} s")
        started = time.perf_counter()
        polled = consumer.poll_once()
        if polled and first is None:
            first = started
        handled += polled
    assert first is not None
    return time.perf_counter() - first


def freshness(
    consumer: InteractionConsumer, store: RedisInteractionStore, bootstrap: str, topic: str, samples: int
) -> list[float]:
    """Seconds from producing one event to seeing it in the store, ``samples`` times."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    latencies = []
    try:
        for n in range(samples):
            event = InteractionEvent(
                user_id=FRESHNESS_USER, recipe_id=n, interaction_type=InteractionType.VIEW, event_id=f"fresh-{n}"
            )
            started = time.perf_counter()
            producer.send(topic, key=str(event.user_id).encode(), value=to_json(event)).get(timeout=10)
            while store.recent_items(FRESHNESS_USER, limit=1) != [n]:
                if time.perf_counter() - started > FRESHNESS_TIMEOUT_SECONDS:
                    raise TimeoutError(f"event {n} not applied after {FRESHNESS_TIMEOUT_SECONDS} s")
                consumer.poll_once()
            latencies.append(time.perf_counter() - started)
    finally:
        producer.close()
    return latencies


def delete_prefix(url: str, prefix: str) -> None:
    """Remove the benchmark's keys (best effort: Redis may be the reason it failed)."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    except redis.RedisError as exc:
        print(f"warning: keys {prefix}* left in Redis: {exc}", file=sys.stderr)
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Events applied per second by one consumer.")
    parser.add_argument("--count", type=int, default=5000, help="events to apply (default %(default)s)")
    parser.add_argument("--bootstrap", help="Kafka brokers (default: start a local tansu)")
    parser.add_argument("--redis-url", default=settings.redis_url or DEFAULT_REDIS_URL, help="default %(default)s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--freshness-samples", type=int, default=20, help="single events timed (default %(default)s)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")

    broker = Tansu()
    if args.bootstrap is None:
        broker.start()
    bootstrap = args.bootstrap or broker.bootstrap
    run = uuid.uuid4().hex[:8]
    prefix, topic = f"bench-{run}:", f"bench-interactions-{run}"
    try:
        produce(bootstrap, topic, args.count, args.seed)
        bench = settings.model_copy(
            update={"kafka_bootstrap_servers": bootstrap, "kafka_topic": topic, "kafka_group_id": f"bench-{run}"}
        )
        store = RedisInteractionStore(args.redis_url, settings.popularity_half_life_hours, prefix=prefix)
        consumer = InteractionConsumer(bench, EventApplier(store, RedisCache(args.redis_url, prefix=prefix)))
        if not consumer.connect():
            raise RuntimeError("consumer stopped before it connected")
        try:
            seconds = drain(consumer, args.count, args.timeout)
            applied = consumer.metrics.registry.get_sample_value("recipe_consumer_applied_total")
            latencies = freshness(consumer, store, bootstrap, topic, args.freshness_samples)
        finally:
            consumer.close()
    except (DataError, OSError, RuntimeError, redis.RedisError, KafkaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        broker.stop()
        delete_prefix(args.redis_url, prefix)
    print(
        f"consumer: {args.count} events ({applied or 0:.0f} applied) in {seconds:.2f} s = "
        f"{args.count / seconds:,.0f} events/s (one consumer, one partition, Redis {args.redis_url})"
    )
    print(
        f"freshness (produce -> visible in Redis, {len(latencies)} single events): "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
