"""Applying catalogue records to the store, counted: the one write path of the API and the consumer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter

from recipe_ml.storage.base import CatalogueStore, RecipeRecord

Source = Literal["api", "kafka"]
SOURCES: tuple[Source, ...] = ("api", "kafka")
OUTCOMES = ("applied", "stale")
"""``stale``: a record that lost to the stored one (older ``updated_at``, or a redelivery)."""


class CatalogueMetrics:
    """``recipe_catalogue_updates_total{source, outcome}`` in one registry (the API's, or a consumer's own)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.updates = Counter(
            "recipe_catalogue_updates",
            "Catalogue records received, by where they came from and whether they changed the catalogue",
            ["source", "outcome"],
            registry=registry,
        )
        for source in SOURCES:
            for outcome in OUTCOMES:
                self.updates.labels(source, outcome)


class CatalogueWriter:
    """Puts records into the catalogue store and counts what they did."""

    def __init__(self, store: CatalogueStore, metrics: CatalogueMetrics, source: Source) -> None:
        self.store = store
        self._applied = metrics.updates.labels(source, "applied")
        self._stale = metrics.updates.labels(source, "stale")

    def put(self, records: Sequence[RecipeRecord]) -> list[bool]:
        """``CatalogueStore.put``: all or none; raises ``CatalogueFullError`` or the store's outage error."""
        applied = self.store.put(records)
        done = sum(applied)
        self._applied.inc(done)
        self._stale.inc(len(applied) - done)
        return applied
