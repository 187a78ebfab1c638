"""``recipe-ml consume``: the Kafka sidecar consumer, until SIGTERM/SIGINT.

The consumer itself is ``recipe_ml.events.consumer``.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Sequence
from types import FrameType

from prometheus_client import start_http_server

from recipe_ml.config import get_settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.consumer import ConsumerMetrics, InteractionConsumer
from recipe_ml.logs import escape_log_messages
from recipe_ml.storage import open_cache, open_interaction_store

log = logging.getLogger("recipe_ml.events.consumer")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: consume until SIGTERM/SIGINT, then commit and exit 0."""
    argparse.ArgumentParser(
        prog="recipe-ml consume",
        description="Consume interaction events from KAFKA_TOPIC into the Redis state at REDIS_URL; "
        "every setting comes from the environment or .env (see docs/configuration.md).",
    ).parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    escape_log_messages()  # an event's content cannot forge a log line
    if not settings.redis_url:
        log.error("REDIS_URL must be set: the consumer shares state with the API through Redis")
        return 2
    applier = EventApplier(
        open_interaction_store(settings.redis_url, settings.popularity_half_life_hours),
        open_cache(settings.redis_url),
    )
    metrics = ConsumerMetrics()
    try:
        start_http_server(settings.consumer_metrics_port, addr=settings.host, registry=metrics.registry)
    except OSError as exc:
        log.error(
            "cannot serve metrics on CONSUMER_METRICS_PORT=%d (HOST=%s): %s",
            settings.consumer_metrics_port,
            settings.host,
            exc,
        )
        return 2
    consumer = InteractionConsumer(settings, applier, metrics)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the current event, committing, exiting", signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    consumer.run()
    log.info("consumer stopped")
    return 0
