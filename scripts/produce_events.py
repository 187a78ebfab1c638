"""Send realistic interaction events to Kafka or to ``POST /api/interactions``.

    recipe-ml produce --count 1000 --rate 50          # Kafka (KAFKA_BOOTSTRAP_SERVERS)
    recipe-ml produce --http http://localhost:8000 --count 20

Each event is a row of ``train.csv`` (so the user and the recipe exist, and a
recipe comes up as often as it was rated), with an interaction type drawn by
``TYPE_WEIGHTS``; a ``rate`` event carries that row's real rating. Events are
camelCase JSON as the Java producer sends them, keyed by ``userId`` on Kafka,
with a fresh ``eventId`` and the current time.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
from kafka import KafkaProducer
from kafka.errors import KafkaError

from recipe_ml.config import DATA_DIR, get_settings
from recipe_ml.data import DataError, Ratings, load_ratings, split_path
from recipe_ml.events.consumer import kafka_security_config
from recipe_ml.events.schema import InteractionEvent, InteractionType

TYPE_WEIGHTS: dict[InteractionType, float] = {
    InteractionType.VIEW: 0.55,
    InteractionType.LIKE: 0.15,
    InteractionType.SAVE: 0.10,
    InteractionType.COOK: 0.12,
    InteractionType.RATE: 0.08,
}
"""Views dominate, as in any recipe app; rates are rare."""


def sample_events(ratings: Ratings, count: int, seed: int | None = None) -> Iterator[InteractionEvent]:
    """``count`` events drawn from the rows of ``ratings``."""
    rng = np.random.default_rng(seed)
    kinds = list(TYPE_WEIGHTS)
    weights = np.array(list(TYPE_WEIGHTS.values()))
    rows = rng.integers(0, len(ratings), size=count)
    types = rng.choice(len(kinds), size=count, p=weights / weights.sum())
    for row, type_index in zip(rows, types, strict=True):
        kind = kinds[type_index]
        yield InteractionEvent(
            user_id=int(ratings.user_id[row]),
            recipe_id=int(ratings.recipe_id[row]),
            interaction_type=kind,
            rating=int(ratings.rating[row]) if kind is InteractionType.RATE else None,
            timestamp=datetime.now(UTC),
            event_id=str(uuid.uuid4()),
        )


def to_json(event: InteractionEvent) -> bytes:
    """The Java producer's wire form: camelCase, absent fields left out."""
    return event.model_dump_json(by_alias=True, exclude_none=True).encode()


class Sink(Protocol):
    def send(self, event: InteractionEvent) -> None: ...

    def close(self) -> None: ...


class KafkaSink:
    """Produces to ``topic`` keyed by userId (one user's events stay in order)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        security = kafka_security_config(get_settings())  # KAFKA_SECURITY_PROTOCOL, SASL, SSL
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **security)
        self._topic = topic

    def send(self, event: InteractionEvent) -> None:
        self._producer.send(self._topic, key=str(event.user_id).encode(), value=to_json(event))

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()


class HttpError(RuntimeError):
    """The API refused an event."""


@dataclass
class HttpSink:
    """POSTs each event to ``{base_url}/api/interactions``."""

    base_url: str
    timeout_seconds: float = 10.0

    def send(self, event: InteractionEvent) -> None:
        url = f"{self.base_url.rstrip('/')}/api/interactions"
        request = urllib.request.Request(
            url, data=to_json(event), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds):
                pass
        except urllib.error.HTTPError as exc:
            raise HttpError(f"POST {url} answered {exc.code}: {exc.read().decode(errors='replace')}") from exc

    def close(self) -> None:
        """Nothing to release: one connection per request."""


def send_paced(sink: Sink, events: Iterator[InteractionEvent], rate: float) -> int:
    """Send ``events`` at ``rate`` per second (0: as fast as possible); the number sent."""
    started = time.monotonic()
    sent = 0
    for event in events:
        if rate > 0:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        sink.send(event)
        sent += 1
    return sent


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100, help="events to send (default 100)")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second; 0 = as fast as possible")
    parser.add_argument("--http", metavar="URL", help="send to this API base URL instead of Kafka")
    parser.add_argument("--bootstrap", default=settings.kafka_bootstrap_servers, help="Kafka brokers")
    parser.add_argument("--topic", default=settings.kafka_topic, help="Kafka topic (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="directory holding train.csv")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be >= 1, got {args.count}")
    if args.rate < 0:
        parser.error(f"--rate must be >= 0, got {args.rate}")
    if args.http is None and not args.bootstrap:
        parser.error("give --http URL, or --bootstrap (or set KAFKA_BOOTSTRAP_SERVERS) to send to Kafka")
    if args.http is not None and not args.http.startswith(("http://", "https://")):
        parser.error(f"--http must be an http:// or https:// URL, got {args.http!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        ratings = load_ratings(split_path(args.data_dir, "train"))
        sink: Sink = HttpSink(args.http) if args.http else KafkaSink(args.bootstrap, args.topic)
    except (DataError, OSError, KafkaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    target = args.http or f"{args.bootstrap}/{args.topic}"
    started = time.monotonic()
    try:
        sent = send_paced(sink, sample_events(ratings, args.count, args.seed), args.rate)
        sink.close()
    except (HttpError, OSError, KafkaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"sent {sent} events to {target} in {elapsed:.2f} s ({sent / max(elapsed, 1e-9):.0f}/s)")
    return 0
