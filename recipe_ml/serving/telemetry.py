"""Prometheus metrics of the API and the runners.

Under ``bentoml serve`` every worker gets ``PROMETHEUS_MULTIPROC_DIR`` in its
environment before it imports prometheus-client, so these metrics are written
to that shared directory and ``render`` aggregates every process (API worker,
runners, BentoML's own metrics). Without it (tests, scripts) the in-process
registry is rendered.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from recipe_ml.catalogue.writer import CatalogueMetrics
from recipe_ml.events.attribution import AttributionMetrics

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
"""Seconds; fine below 1 ms so cached answers are visible."""

REQUESTS = Counter(
    "recipe_api_requests_total",
    "API requests by endpoint, answering model, its store version and status",
    ["endpoint", "model_used", "model_version", "status"],
)
LATENCY = Histogram(
    "recipe_api_request_latency_seconds",
    "API request latency by endpoint and answering model",
    ["endpoint", "model_used"],
    buckets=LATENCY_BUCKETS,
)
CACHE = Counter("recipe_api_cache_total", "Response cache lookups", ["endpoint", "result"])
FALLBACKS = Counter(
    "recipe_api_fallbacks_total", "Times a model failed and the next in the chain answered", ["model", "reason"]
)
RUNNER_RETRIES = Counter(
    "recipe_api_runner_retries_total", "Runner calls retried after a dropped connection", ["model"]
)
HOP_QUERIES = Histogram(
    "recipe_api_runner_hop_queries",
    "Queries one call of the API to a runner carried (requests that waited for the same hop share it)",
    ["model", "api"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
BATCH_SIZE = Histogram(
    "recipe_runner_batch_size",
    "Queries scored together in one adaptive batch",
    ["model", "api"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
IMPRESSIONS = Counter(
    "recipe_impressions_total",
    "Answers that reached a client (the impression log's records), by endpoint, experiment variant and model",
    ["endpoint", "variant", "model"],
)
IMPRESSIONS_DROPPED = Counter(
    "recipe_impressions_dropped_total",
    "Impression records not published (queue_full, sink_error, broker); the answers were sent",
    ["reason"],
)
DROP_REASONS = ("queue_full", "sink_error", "broker")
"""The reasons of ``IMPRESSIONS_DROPPED``, each counted from 0, so the dashboard's panel has data before a drop."""
for _reason in DROP_REASONS:
    IMPRESSIONS_DROPPED.labels(_reason)

SHOWN_LISTS_DROPPED = Counter(
    "recipe_shown_lists_dropped_total",
    "Answers whose ranked recipes could not be kept for attribution (the store refused them)",
)
FILTERED = Counter(
    "recipe_filtered_candidates_total",
    "Recipes the catalogue kept out of the queries' candidates, by filter (unavailable, exclude_tags, require_tags)",
    ["filter"],
)
for _filter in ("unavailable", "exclude_tags", "require_tags"):
    FILTERED.labels(_filter)
CATALOGUE = CatalogueMetrics(REGISTRY)
"""The API process's catalogue update counters (a consumer has its own, in its registry)."""
ATTRIBUTION = AttributionMetrics(REGISTRY)
"""The API process's attribution counters (a consumer has its own, in its registry)."""

MODEL_REFUSED = Gauge(
    "recipe_model_version_refused",
    "1 while the process refuses the version the model store says to serve (it failed to load), else 0",
    ["model"],
    multiprocess_mode="livemax",  # per model, the worst of the live processes serving it
)


def observe_request(endpoint: str, model_used: str, model_version: str, status: int, seconds: float) -> None:
    """Count one answered request (with the version that answered) and its latency."""
    REQUESTS.labels(endpoint, model_used, model_version, str(status)).inc()
    LATENCY.labels(endpoint, model_used).observe(seconds)


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of every process, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
