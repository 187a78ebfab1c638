"""``recipe-ml consume``: the Kafka sidecar consumer, until SIGTERM/SIGINT.

It applies the interaction events of KAFKA_TOPIC and the catalogue records of
KAFKA_RECIPES_TOPIC; the consumer itself is ``recipe_ml.events.consumer``.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Iterable, Sequence
from types import FrameType

from prometheus_client import start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from recipe_ml.config import get_settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.attribution import Attributor
from recipe_ml.events.consumer import ConsumerMetrics, InteractionConsumer
from recipe_ml.logs import escape_log_messages
from recipe_ml.serving.impressions import open_impression_log
from recipe_ml.serving.telemetry import IMPRESSIONS_DROPPED
from recipe_ml.storage import open_cache, open_catalogue, open_interaction_store

log = logging.getLogger("recipe_ml.events.consumer")


class Forwarded(Collector):
    """A metric of the default registry served from the consumer's own (its attribution records' drops)."""

    def __init__(self, metric: Collector) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Metric]:
        return self._metric.collect()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: consume until SIGTERM/SIGINT, then commit and exit 0."""
    argparse.ArgumentParser(
        prog="recipe-ml consume",
        description="Consume interaction events from KAFKA_TOPIC and catalogue records from KAFKA_RECIPES_TOPIC "
        "into the Redis state at REDIS_URL; "
        "every setting comes from the environment or .env (see docs/configuration.md).",
    ).parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    escape_log_messages()  # an event's content cannot forge a log line
    if not settings.redis_url:
        log.error("REDIS_URL must be set: the consumer shares state with the API through Redis")
        return 2
    store = open_interaction_store(settings.redis_url, settings.popularity_half_life_hours)
    metrics = ConsumerMetrics()
    metrics.registry.register(Forwarded(IMPRESSIONS_DROPPED))
    attributions = open_impression_log(settings)  # the consumer publishes attributions only: no store
    attributor = Attributor(
        store, attributions.publish_attribution, metrics.attribution, settings.attribution_window_hours * 3600
    )
    applier = EventApplier(store, open_cache(settings.redis_url), attributor)
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
    catalogue = open_catalogue(settings.redis_url, settings.catalogue_max_recipes)
    consumer = InteractionConsumer(settings, applier, metrics, catalogue=catalogue)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the current event, committing, exiting", signal.Signals(signum).name)
        consumer.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    consumer.run()
    attributions.close()
    log.info("consumer stopped")
    return 0
