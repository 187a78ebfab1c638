"""The Kafka sidecar consumer: interaction events and catalogue records into the shared Redis state.

One consumer (one group member) reads two topics: the interaction events of
``KAFKA_TOPIC`` go to the interaction store (``EventApplier``), the catalogue
records of ``KAFKA_RECIPES_TOPIC`` (``recipe_ml.catalogue.records``) to the
catalogue store (``CatalogueWriter``, the API's write path too).

Delivery is at least once: a batch's offsets are committed only after each of
its records was applied (or dead-lettered), and applying is idempotent, so a
redelivery after a crash or a rebalance changes nothing (an event is
recognised by its id; a catalogue record loses to the stored one unless its
``updatedAt`` is later: the last write by ``updatedAt`` wins). Nothing is
skipped: while Redis is down, the consumer retries the same record with
backoff and commits nothing past it. A message that is not an event or a
catalogue record, or a new recipe beyond ``CATALOGUE_MAX_RECIPES``, goes to
the DLQ topic with the reason, and consumption goes on.

Run it as ``recipe-ml consume`` (``python -m scripts.cli consume`` in the Bento image); it
reads ``Settings`` (``KAFKA_*``, ``REDIS_URL``, ``CATALOGUE_MAX_RECIPES``, ``CONSUMER_METRICS_PORT``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge

from recipe_ml.catalogue.records import parse_recipe_event
from recipe_ml.catalogue.writer import CatalogueMetrics, CatalogueWriter
from recipe_ml.config import Settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.attribution import AttributionMetrics
from recipe_ml.events.lag import LagTracker
from recipe_ml.events.schema import InteractionEvent, InvalidEvent, parse_event
from recipe_ml.storage.base import CatalogueFullError, CatalogueStore, RecipeRecord

log = logging.getLogger(__name__)

RETRYABLE = (redis.RedisError, KafkaError, OSError)
"""Outages worth retrying; anything else is a bug and stops the process."""


def kafka_security_config(settings: Settings) -> dict[str, Any]:
    """kafka-python options for ``KAFKA_SECURITY_PROTOCOL`` and the SASL / SSL settings.

    The same for the consumer and the DLQ producer (and every other client of
    the topic); ``Settings`` has already refused incomplete combinations,
    naming the missing variable.
    """
    config: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        config.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=None if password is None else password.get_secret_value(),
        )
    if settings.kafka_security_protocol.endswith("SSL"):
        config["ssl_check_hostname"] = True
        if settings.kafka_ssl_cafile is not None:
            config["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return config


class ConsumerMetrics:
    """Prometheus metrics of one consumer, in their own registry (one per consumer).

    ``consumed``, ``applied``, ``duplicates`` and ``dead_lettered`` count the
    records of both topics, interaction events and catalogue records alike;
    ``catalogue`` (``recipe_catalogue_updates_total{source="kafka"}``) counts
    the catalogue records apart. ``lag`` holds the lag, record ages and
    applied rate, computed at scrape time.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.consumed = Counter(
            "recipe_consumer_consumed",
            "Messages read from the topics (interaction events and catalogue records)",
            registry=reg,
        )
        self.applied = Counter(
            "recipe_consumer_applied",
            "Interaction events applied for the first time, and catalogue records that replaced the stored one",
            registry=reg,
        )
        self.duplicates = Counter(
            "recipe_consumer_duplicates",
            "Records that changed nothing: redelivered interaction events, and catalogue records "
            "that lost to the stored one (redelivered, or an older updatedAt)",
            registry=reg,
        )
        self.dead_lettered = Counter(
            "recipe_consumer_dead_lettered",
            "Messages of either topic sent to the DLQ, by reason (catalogue_full: a new recipe beyond "
            "CATALOGUE_MAX_RECIPES)",
            ["reason"],
            registry=reg,
        )
        self.errors = Counter("recipe_consumer_errors", "Failed attempts, retried", ["stage"], registry=reg)
        self.connection_retries = Counter(
            "recipe_consumer_connection_retries", "Failed attempts to reach the broker", registry=reg
        )
        self.assigned_partitions = Gauge(
            "recipe_consumer_assigned_partitions", "Partitions this consumer owns", registry=reg
        )
        self.lag = LagTracker()
        reg.register(self.lag)
        self.attribution = AttributionMetrics(reg)
        self.catalogue = CatalogueMetrics(reg)


@dataclass(frozen=True)
class Backoff:
    """Exponential delays between retries, capped."""

    initial_seconds: float = 0.1
    max_seconds: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.initial_seconds
        while True:
            yield delay
            delay = min(delay * 2, self.max_seconds)


class _PartitionGauge(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps ``assigned_partitions`` equal to what the group gave this consumer, and the lag to its partitions."""

    def __init__(self, gauge: Gauge, lag: LagTracker) -> None:
        self._gauge = gauge
        self._lag = lag
        self._owned: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._owned -= set(revoked)
        self._gauge.set(len(self._owned))
        self._lag.forget(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owned |= set(assigned)
        self._gauge.set(len(self._owned))


def with_broker_defaults(event: InteractionEvent, record: ConsumerRecord) -> InteractionEvent:
    """Fill what the producer left out: the id from the record's coordinates, the time from the broker.

    The id from topic/partition/offset makes a redelivered record a duplicate.
    """
    update: dict[str, object] = {}
    if event.event_id is None:
        update["event_id"] = f"kafka:{record.topic}:{record.partition}:{record.offset}"
    if event.timestamp is None and record.timestamp is not None and record.timestamp >= 0:
        update["timestamp"] = datetime.fromtimestamp(record.timestamp / 1000, tz=UTC)
    return event.model_copy(update=update) if update else event


def broker_time(record: ConsumerRecord) -> datetime:
    """The record's broker timestamp; now when it has none (the broker's -1).

    What a catalogue record without ``updatedAt`` is ordered by.
    """
    if record.timestamp is not None and record.timestamp >= 0:
        return datetime.fromtimestamp(record.timestamp / 1000, tz=UTC)
    return datetime.now(UTC)


class InteractionConsumer:
    """One group member: ``run()`` until ``stop()``; ``poll_once()`` is one batch.

    With a ``catalogue`` it reads ``KAFKA_RECIPES_TOPIC`` beside ``KAFKA_TOPIC``
    and applies the catalogue records to it (``recipe-ml consume`` does);
    without one it reads the interaction events only.
    """

    def __init__(
        self,
        settings: Settings,
        applier: EventApplier,
        metrics: ConsumerMetrics | None = None,
        *,
        catalogue: CatalogueStore | None = None,
        backoff: Backoff = Backoff(),
        poll_timeout_ms: int = 500,
        session_timeout_ms: int = 6000,
        heartbeat_interval_ms: int = 1000,
        bootstrap_timeout_ms: int = 2000,
        commit_timeout_ms: int = 10_000,
        dlq_timeout_ms: int = 10_000,
        lag_refresh_ms: int = 5000,
        lag_timeout_ms: int = 2000,
    ) -> None:
        if not settings.kafka_bootstrap_servers:
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS must be set to run the consumer")
        if catalogue is not None and settings.kafka_recipes_topic == settings.kafka_topic:
            raise ValueError("KAFKA_RECIPES_TOPIC must differ from KAFKA_TOPIC: each topic has one kind of record")
        self._settings = settings
        self._bootstrap = settings.kafka_bootstrap_servers
        self._applier = applier
        self.metrics = metrics if metrics is not None else ConsumerMetrics()
        self._catalogue = None if catalogue is None else CatalogueWriter(catalogue, self.metrics.catalogue, "kafka")
        self._catalogue_retryable = RETRYABLE if catalogue is None else RETRYABLE + catalogue.unavailable
        self._backoff = backoff
        self._poll_timeout_ms = poll_timeout_ms
        self._group_timeouts = {
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
        }
        self._bootstrap_timeout_ms = bootstrap_timeout_ms
        self._commit_timeout_ms = commit_timeout_ms
        self._dlq_timeout_ms = dlq_timeout_ms
        self._lag_refresh_seconds = lag_refresh_ms / 1000
        self._lag_timeout_ms = lag_timeout_ms
        self._next_lag_query = 0.0
        self._stopping = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    # Lifecycle
    def connect(self) -> bool:
        """Join the group, retrying with backoff while the broker is unreachable.

        False when ``stop()`` came first. Each failed attempt is logged and
        counted in ``connection_retries``.
        """
        for delay in self._backoff.delays():
            if self._stopping.is_set():
                return False
            try:
                self._open_clients()
                log.info("connected to %s; joining group %r", self._bootstrap, self._settings.kafka_group_id)
                return True
            except KafkaError as exc:
                self.metrics.connection_retries.inc()
                log.warning("broker %s unreachable (%s); retrying in %.1f s", self._bootstrap, exc, delay)
                self._stopping.wait(delay)
        raise AssertionError("unreachable: Backoff.delays() is infinite")

    def run(self) -> None:
        """Connect, then consume batches until ``stop()``; commits what was applied."""
        if not self.connect():
            return
        try:
            while not self._stopping.is_set():
                self.poll_once()
        finally:
            self.close()

    def stop(self) -> None:
        """Ask ``run()`` to finish its current record, commit and return (signal-safe)."""
        self._stopping.set()

    def close(self) -> None:
        """Leave the group without committing anything more (commits happen per batch)."""
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
        if self._producer is not None:
            try:
                self._producer.close(timeout=self._dlq_timeout_ms / 1000)
            except KafkaError as exc:  # unacked DLQ sends: their records were not committed
                log.warning("DLQ producer closed with sends pending: %r", exc)
            self._producer = None

    # One batch, in three steps that tests can drive separately
    def poll_once(self) -> int:
        """Poll, apply and commit one batch; the number of records polled."""
        records = self.poll_records()
        self.commit(self.process(records))
        return len(records)

    def poll_records(self) -> list[ConsumerRecord]:
        """The next batch, in partition order; measures the lag the fetch reported."""
        batches = self._kafka_consumer().poll(timeout_ms=self._poll_timeout_ms)
        for partition, records in batches.items():
            self.metrics.lag.in_hand(partition, records[0].timestamp)
        self._measure_lag()
        return [record for records in batches.values() for record in records]

    def process(self, records: list[ConsumerRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Apply or dead-letter ``records`` in order; the offsets to commit for those handled.

        Stops early (and leaves the rest uncommitted) when ``stop()`` is called
        while an outage is being retried.
        """
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            self.metrics.lag.in_hand(partition, record.timestamp)
            if not self._handle(record):
                return offsets
            offsets[partition] = OffsetAndMetadata(record.offset + 1, "", record.leader_epoch)
        for partition in offsets:
            self.metrics.lag.in_hand(partition, None)
        return offsets

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit ``offsets``; a failure is logged and counted, not fatal.

        Uncommitted records are delivered again (to this consumer or, after a
        rebalance, to the partition's new owner) and recognised as duplicates.
        The next successful commit covers them anyway: offsets are cumulative.
        """
        if not offsets:
            return
        try:
            self._kafka_consumer().commit(offsets, timeout_ms=self._commit_timeout_ms)
        except KafkaError as exc:
            self.metrics.errors.labels("commit").inc()
            log.warning("commit failed, these records will be redelivered (and deduplicated): %r", exc)
            return
        for partition, committed in offsets.items():
            self.metrics.lag.committed(partition, committed.offset)

    # Internals
    def _measure_lag(self) -> None:
        """Update the lag of every partition this consumer owns; never raises.

        The log end is the highwater of the last fetch: it costs nothing, and
        tansu (the test broker) answers the ListOffsets request behind
        ``end_offsets()`` wrongly. The group's committed offsets are read from
        the broker every ``lag_refresh_ms`` (at once for a partition whose
        offset is not known: newly assigned, or after a failure), and the
        consumer's own commits update them in between. That query is also how
        an unreachable broker shows: the lags become unknown (absent) and
        ``errors{stage="lag"}`` counts the failure.
        """
        consumer = self._kafka_consumer()
        lag = self.metrics.lag
        owned = consumer.assignment()
        for partition in owned:
            lag.log_end(partition, consumer.highwater(partition))
        now = time.monotonic()
        if now < self._next_lag_query and all(lag.knows_committed(partition) for partition in owned):
            return
        self._next_lag_query = now + self._lag_refresh_seconds
        try:
            for partition in owned:
                committed = consumer.committed(partition, timeout_ms=self._lag_timeout_ms)
                if committed is None:  # the group never committed here: it reads from the log start
                    start = consumer.beginning_offsets([partition], timeout_ms=self._lag_timeout_ms)
                    committed = start[partition]
                lag.committed(partition, committed)
        except KafkaError as exc:
            lag.unknown()
            self.metrics.errors.labels("lag").inc()
            log.warning("cannot read the committed offsets, lag unknown: %r", exc)

    def _open_clients(self) -> None:
        common = {
            "bootstrap_servers": self._bootstrap,
            "bootstrap_timeout_ms": self._bootstrap_timeout_ms,
            **kafka_security_config(self._settings),
        }
        consumer = KafkaConsumer(
            group_id=self._settings.kafka_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            reconnect_backoff_max_ms=1000,
            **self._group_timeouts,
            **common,
        )
        try:
            # A DLQ send gives up after dlq_timeout_ms (the record is then retried, not
            # left pending in the producer), so neither a send nor close() hangs.
            producer = KafkaProducer(
                acks="all",
                max_block_ms=self._dlq_timeout_ms,
                request_timeout_ms=self._dlq_timeout_ms,
                delivery_timeout_ms=self._dlq_timeout_ms,
                **common,
            )
        except KafkaError:
            consumer.close(autocommit=False)
            raise
        consumer.subscribe(
            self.topics(),
            listener=_PartitionGauge(self.metrics.assigned_partitions, self.metrics.lag),
        )
        self._consumer, self._producer = consumer, producer

    def topics(self) -> list[str]:
        """What this consumer subscribes to: the interactions, and the catalogue records when it has a catalogue."""
        topics = [self._settings.kafka_topic]
        if self._catalogue is not None:
            topics.append(self._settings.kafka_recipes_topic)
        return topics

    def _kafka_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("consumer is not connected: call connect() first")
        return self._consumer

    def _handle(self, record: ConsumerRecord) -> bool:
        """Apply or dead-letter one record of either topic; False when stopped before it was done."""
        self.metrics.consumed.inc()
        raw: bytes = record.value or b""
        if self._catalogue is not None and record.topic == self._settings.kafka_recipes_topic:
            return self._handle_recipe(self._catalogue, record, raw)
        try:
            event = with_broker_defaults(parse_event(raw), record)
        except InvalidEvent as exc:
            reason = exc.reason
            return self._retry("dead_letter", lambda: self._dead_letter(record, raw, reason))
        return self._retry("apply", lambda: self._apply(event))

    def _apply(self, event: InteractionEvent) -> None:
        self._count(self._applier.apply(event))

    def _handle_recipe(self, writer: CatalogueWriter, record: ConsumerRecord, raw: bytes) -> bool:
        """Put one catalogue record, or dead-letter it (invalid, or a new recipe in a full catalogue)."""
        try:
            recipe = parse_recipe_event(raw, broker_time(record))
        except InvalidEvent as exc:
            reason = exc.reason
            return self._retry("dead_letter", lambda: self._dead_letter(record, raw, reason))
        refused: list[CatalogueFullError] = []
        if not self._retry("apply", lambda: self._put_recipe(writer, recipe, refused), self._catalogue_retryable):
            return False
        if not refused:
            return True
        reason = f"catalogue full: {refused[0]}"
        return self._retry("dead_letter", lambda: self._dead_letter(record, raw, reason, "catalogue_full"))

    def _put_recipe(self, writer: CatalogueWriter, recipe: RecipeRecord, refused: list[CatalogueFullError]) -> None:
        """``writer.put`` of one record; a full catalogue (permanent, not retried) lands in ``refused``."""
        try:
            [applied] = writer.put([recipe])
        except CatalogueFullError as exc:
            refused.append(exc)
            return
        self._count(applied)

    def _count(self, applied: bool) -> None:
        if applied:
            self.metrics.applied.inc()
            self.metrics.lag.applied()
        else:
            self.metrics.duplicates.inc()

    def _dead_letter(self, record: ConsumerRecord, raw: bytes, reason: str, kind: str | None = None) -> None:
        """Send ``raw`` to the DLQ and wait for the broker's ack (at least once there too).

        ``kind`` is the counter's ``reason`` label; by default ``invalid_json`` or ``validation``, from ``reason``.
        """
        if self._producer is None:
            raise RuntimeError("consumer is not connected: call connect() first")
        headers = [
            ("dlq.reason", reason.encode()),
            ("dlq.source.topic", record.topic.encode()),
            ("dlq.source.partition", str(record.partition).encode()),
            ("dlq.source.offset", str(record.offset).encode()),
        ]
        future = self._producer.send(self._settings.kafka_dlq_topic, value=raw, key=record.key, headers=headers)
        future.get(timeout=self._dlq_timeout_ms / 1000)
        if kind is None:
            kind = "invalid_json" if reason.startswith("Invalid JSON") else "validation"
        self.metrics.dead_lettered.labels(kind).inc()
        log.warning("dead-lettered %s:%d@%d: %s", record.topic, record.partition, record.offset, reason)

    def _retry(
        self, stage: str, action: Callable[[], None], retryable: tuple[type[Exception], ...] = RETRYABLE
    ) -> bool:
        """Run ``action`` until it succeeds (True) or ``stop()`` is called (False), retrying ``retryable``."""
        for delay in self._backoff.delays():
            try:
                action()
                return True
            except retryable as exc:
                self.metrics.errors.labels(stage).inc()
                log.warning("%s failed (%s: %s); retrying in %.1f s", stage, type(exc).__name__, exc, delay)
            if self._stopping.wait(delay):
                return False
        raise AssertionError("unreachable: Backoff.delays() is infinite")
