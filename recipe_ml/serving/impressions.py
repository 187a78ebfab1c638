"""The impression log: one record per answer a client received, for joining against what users did next.

The request path only puts the record in a bounded queue and never waits: a
full queue drops the record and counts it (``recipe_impressions_dropped_total``),
so a stalled or down broker, or a slow disk, costs measurements, never
answers. One background thread drains the queue into the sink: the Kafka
topic ``KAFKA_RECOMMENDATIONS_TOPIC`` when Kafka is configured, else the
rotating JSONL file ``IMPRESSION_LOG_PATH``, else an in-process buffer of the
latest records. The record's keys are camelCase, as the interaction events'.

The same log carries the attributed interactions (``recipe_ml.events.attribution``),
each record saying its ``kind``: on Kafka in their own topic,
``KAFKA_ATTRIBUTIONS_TOPIC``, elsewhere beside the impressions. With a store,
the thread also keeps each answer's ranked recipes there for
``ATTRIBUTION_WINDOW_HOURS`` (``InteractionStore.remember_shown``), so that an
interaction naming the answer can be attributed by whichever process applies
it; a batch the store refuses is counted in ``recipe_shown_lists_dropped_total``.
Until the thread has kept an answer's list, ``ImpressionLog.pending`` returns
it: an interaction the same process receives right after the answer (a client
that posts at once) is attributed like one that comes minutes later.

``IMPRESSION_LOG_ENABLED=false`` opens a disabled log instead: no thread, no
record queued or written, no shown list kept, so an answer costs nothing for it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from recipe_ml.config import Settings
from recipe_ml.events.attribution import Attribution, answer_keys, encoded
from recipe_ml.serving.telemetry import IMPRESSIONS, IMPRESSIONS_DROPPED, SHOWN_LISTS_DROPPED
from recipe_ml.storage.base import InteractionStore, ShownList

logger = logging.getLogger(__name__)

BATCH_LIMIT = 500
"""Most records the publisher thread writes at once."""
DRAIN_LINGER_SECONDS = 0.05
"""How long the thread waits, once a record is queued, for more to write with it (records wait this long, at most,
plus the writing of those before them)."""
JSONL_BACKUPS = 5
"""Rotated JSONL files kept beside the current one (``impressions.jsonl.1`` is the newest)."""
MEMORY_RECORDS = 10_000
"""Records the in-process buffer keeps (the newest)."""


@dataclass(frozen=True, slots=True)
class Impression:
    """What one answer showed: who, where, which arm and model, and the ids in rank order.

    Built on the request path, once an answer, so its time is epoch seconds (as its shown list's): the ISO
    time and the JSON line are made by the log's thread.
    """

    kind: ClassVar[str] = "impression"
    recommendation_id: str
    endpoint: str
    variant: str
    model: str
    model_version: str
    user_id: int | None
    recipe_ids: Sequence[int]
    """The recipes in rank order (for similar users: the users, in rank order, published as ``userIds``)."""
    shown_at: float = field(default_factory=time.time)
    """Epoch seconds: when the answer left the service."""

    def record(self) -> dict[str, Any]:
        """The published record (camelCase keys)."""
        return {
            **answer_keys(self.kind, self.recommendation_id, self.endpoint, self.variant, self.model),
            "modelVersion": self.model_version,
            "userId": self.user_id,
            # Similar users rank users, every other endpoint recipes.
            ("userIds" if self.endpoint == "users" else "recipeIds"): list(self.recipe_ids),
            "timestamp": datetime.fromtimestamp(self.shown_at, UTC).isoformat(),
        }

    def encoded(self) -> bytes:
        return encoded(self.record())

    def shown_list(self) -> ShownList | None:
        """The ranked recipes to keep for attribution; None for similar users (they rank users)."""
        if self.endpoint == "users":
            return None
        return ShownList(
            recommendation_id=self.recommendation_id,
            endpoint=self.endpoint,
            variant=self.variant,
            model=self.model,
            recipe_ids=tuple(self.recipe_ids),
            shown_at=self.shown_at,
        )


LogRecord = Impression | Attribution
"""What the log publishes: what an answer showed, and what a user then did with it."""


class Sink(Protocol):
    """Where the publisher thread writes a batch; raising drops (and counts) the batch."""

    def write(self, batch: Sequence[LogRecord]) -> None: ...

    def close(self) -> None: ...


class MemorySink:
    """The newest ``capacity`` records, in process (the embedded default, and what tests read)."""

    def __init__(self, capacity: int = MEMORY_RECORDS) -> None:
        self._records: deque[LogRecord] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def write(self, batch: Sequence[LogRecord]) -> None:
        with self._lock:
            self._records.extend(batch)

    def records(self) -> list[LogRecord]:
        with self._lock:
            return list(self._records)

    def close(self) -> None:
        return None


class JsonlSink:
    """One JSON object a line, appended; past ``max_bytes`` the file rotates (``path.1`` … ``path.5``)."""

    def __init__(self, path: Path, max_bytes: int, backups: int = JSONL_BACKUPS) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._file: IO[bytes] | None = None

    def write(self, batch: Sequence[LogRecord]) -> None:
        for record in batch:
            file = self._open()
            file.write(record.encoded() + b"\n")
            if file.tell() >= self._max_bytes:
                self._rotate()
        if self._file is not None:
            self._file.flush()

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        return self._file

    def _rotate(self) -> None:
        self.close()
        for number in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class KafkaSink:
    """Each record to its kind's topic, keyed by user (a user's records stay in order); the producer made on first use.

    A send the broker never acknowledges is dropped and counted by its
    callback; a broker that cannot be reached fails the batch, and the next
    batch tries again.
    """

    def __init__(self, settings: Settings, timeout_ms: int = 2000) -> None:
        self._settings = settings
        self._topics = {
            Impression.kind: settings.kafka_recommendations_topic,
            Attribution.kind: settings.kafka_attributions_topic,
        }
        self._timeout_ms = timeout_ms
        self._producer: KafkaProducer | None = None

    def write(self, batch: Sequence[LogRecord]) -> None:
        producer = self._connect()
        for record in batch:
            key = None if record.user_id is None else str(record.user_id).encode()
            future = producer.send(self._topics[record.kind], value=record.encoded(), key=key)
            future.add_errback(_dropped_by_broker)

    def _connect(self) -> KafkaProducer:
        if self._producer is None:
            # The consumer's module brings the Redis client: imported only where Kafka is configured, so
            # the embedded default's API process never loads it (tests/recipe_ml/storage/test_open.py).
            from recipe_ml.events.consumer import kafka_security_config

            self._producer = KafkaProducer(
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                acks=1,
                linger_ms=20,
                max_block_ms=self._timeout_ms,
                request_timeout_ms=self._timeout_ms,
                delivery_timeout_ms=5 * self._timeout_ms,
                bootstrap_timeout_ms=self._timeout_ms,
                reconnect_backoff_max_ms=1000,
                **kafka_security_config(self._settings),
            )
        return self._producer

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=self._timeout_ms / 1000)
            except KafkaError as exc:
                logger.warning("impression producer closed with sends pending: %r", exc)
            self._producer = None


def _dropped_by_broker(_: BaseException) -> None:
    IMPRESSIONS_DROPPED.labels("broker").inc()


class ImpressionLog:
    """The bounded queue in front of a sink (and the store of shown lists), drained by one daemon thread.

    Disabled (``ImpressionLog.disabled()``, what ``IMPRESSION_LOG_ENABLED=false`` opens), it starts no thread
    and publishing returns at once, having counted, queued and written nothing: the same type either way, so
    the engine and the consumer hold one kind of log and only ask ``enabled``.
    """

    def __init__(
        self,
        sink: Sink,
        queue_size: int,
        store: InteractionStore | None = None,
        shown_ttl_seconds: int = 0,
        *,
        enabled: bool = True,
    ) -> None:
        self.sink = sink
        self._enabled = enabled
        self._store = store
        self._shown_ttl = shown_ttl_seconds
        self._capacity = queue_size
        self._queue: deque[LogRecord] = deque()
        """Appended by publishers, emptied by the thread: a deque, so that queueing takes no lock and wakes nobody."""
        self._woken = False
        """True from the first record queued after a drain until the thread drains again: one wake-up per batch."""
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._counted: dict[tuple[str, str, str], Any] = {}
        """Each (endpoint, variant, model)'s impression counter: looked up once, not per answer."""
        self._pending: dict[str, Impression] = {}
        """The queued impressions whose shown list the store does not hold yet (at most the queue's size)."""
        self._failing = False
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._drain, name="impression-log", daemon=True)
            self._thread.start()

    @classmethod
    def disabled(cls) -> ImpressionLog:
        """A log that publishes nothing and runs no thread; its in-process buffer stays empty."""
        return cls(MemorySink(), queue_size=1, enabled=False)

    @property
    def enabled(self) -> bool:
        """False: ``publish`` does nothing, so a caller can skip building the record at all."""
        return self._enabled

    def publish(self, impression: Impression) -> None:
        """Count the impression and queue it; a full queue drops it (counted), never waits."""
        if not self._enabled:
            return
        labels = (impression.endpoint, impression.variant, impression.model)
        counter = self._counted.get(labels)
        if counter is None:  # the labels are the service's own (endpoints, configured variants, models): bounded
            counter = self._counted[labels] = IMPRESSIONS.labels(*labels)
        counter.inc()
        keeps = self._store is not None and impression.endpoint != "users"
        if keeps:  # before it is queued: from now until the store holds it, ``pending`` has it
            self._pending[impression.recommendation_id] = impression
        if not self._put(impression) and keeps:
            del self._pending[impression.recommendation_id]

    def pending(self, recommendation_id: str) -> ShownList | None:
        """The shown list of an answer this process published whose list is not in the store yet, else None.

        Read it before the store: a list leaves it only once the store holds it, so one of the two has it.
        """
        impression = self._pending.get(recommendation_id)
        return None if impression is None else impression.shown_list()

    def publish_attribution(self, attribution: Attribution) -> None:
        """Queue an attributed interaction's record (counted by the attributor); never waits."""
        if self._enabled:
            self._put(attribution)

    def _put(self, record: LogRecord) -> bool:
        """Queue ``record``; False when the queue is full (the record is dropped, counted)."""
        if len(self._queue) >= self._capacity:
            IMPRESSIONS_DROPPED.labels("queue_full").inc()
            return False
        self._queue.append(record)
        if not self._woken:  # the first record since the thread drained: wake it (it lingers, then drains)
            self._woken = True
            self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread and close the sink."""
        if self._thread is not None:
            self._closing.set()
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("impression log still writing at close; %d queued records are dropped", len(self._queue))
        self.sink.close()

    def _drain(self) -> None:
        """Wait for a first record, linger ``DRAIN_LINGER_SECONDS`` for those that follow, write them all; again.

        Woken once a batch, not once a record: on a busy server each wake-up writes tens of answers.
        """
        while True:
            self._wake.wait()
            self._closing.wait(DRAIN_LINGER_SECONDS)  # returns at once when closing
            self._wake.clear()
            self._woken = False  # before taking the records: one queued after this wakes the thread again
            while self._queue:
                batch: list[LogRecord] = []
                while self._queue and len(batch) < BATCH_LIMIT:
                    batch.append(self._queue.popleft())
                self._remember(batch)
                self._write(batch)
            if self._closing.is_set():
                return

    def _remember(self, batch: list[LogRecord]) -> None:
        """Keep the batch's shown lists in the store, for attribution; a failure loses them (counted)."""
        if self._store is None:
            return
        shown = [entry for r in batch if isinstance(r, Impression) and (entry := r.shown_list()) is not None]
        if not shown:
            return
        try:
            self._store.remember_shown(shown, self._shown_ttl)
        except Exception as exc:  # any store failure: attribution loses these lists, answers lose nothing
            SHOWN_LISTS_DROPPED.inc(len(shown))
            logger.warning("cannot keep %d shown lists for attribution: %r", len(shown), exc)
        for entry in shown:
            self._pending.pop(entry.recommendation_id, None)

    def _write(self, batch: list[LogRecord]) -> None:
        """Write one batch; a failure drops it, logged once per outage (not once per batch)."""
        try:
            self.sink.write(batch)
        except Exception as exc:  # any sink failure drops the batch: publishing never stops answers
            IMPRESSIONS_DROPPED.labels("sink_error").inc(len(batch))
            if not self._failing:
                logger.warning(
                    "impression log failing (%s: %s); dropping records until it recovers", type(exc).__name__, exc
                )
            self._failing = True
            return
        if self._failing:
            logger.info("impression log writing again")
        self._failing = False


def open_impression_log(settings: Settings, store: InteractionStore | None = None) -> ImpressionLog:
    """The impression log the settings name: Kafka, else the JSONL file, else the in-process buffer.

    ``store``: where the shown lists are kept for attribution (the API's); None keeps none (a consumer,
    which publishes attributions only). With ``IMPRESSION_LOG_ENABLED=false``: a disabled log, whatever
    else is set (no producer made, no file opened).
    """
    if not settings.impression_log_enabled:
        return ImpressionLog.disabled()
    sink: Sink
    if settings.kafka_bootstrap_servers:
        sink = KafkaSink(settings)
    elif settings.impression_log_path is not None:
        sink = JsonlSink(settings.impression_log_path, settings.impression_log_max_bytes)
    else:
        sink = MemorySink()
    shown_ttl = math.ceil(settings.attribution_window_hours * 3600)
    return ImpressionLog(sink, settings.impression_queue_size, store, shown_ttl)
