"""Attributing an interaction to the answer that showed the recipe: its rank, variant and model.

An interaction that carries a ``recommendationId`` is looked up among the
shown lists the impression log keeps (``InteractionStore.shown``, for
``ATTRIBUTION_WINDOW_HOURS``). Found, with the recipe in it: the interaction
is counted for that list's endpoint, variant, model and the rank of the
recipe, and published as an attribution record, which the experiment report
joins with the impressions. Anything else is counted as unattributed, by a
reason from a closed set, and the interaction is applied as any other.
Only an event applied for the first time is attributed, so a redelivered one
is counted once. The API's attributor also reads the lists its own impression
log has not kept yet (``ImpressionLog.pending``), so a client that posts the
interaction the moment it has the answer is attributed too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from recipe_ml.events.schema import InteractionEvent
from recipe_ml.storage.base import InteractionStore, ShownList

logger = logging.getLogger(__name__)

UNATTRIBUTED_REASONS = ("unknown", "expired", "not_shown", "store_error")
"""Why an interaction with a ``recommendationId`` was not attributed: no list kept under the id (never
shown, or past the window's TTL), shown longer ago than the window, the recipe not in that list, the store
unreachable. Each is counted from 0, so the dashboard's panels have data before the first one."""
RANK_BUCKETS = (1, 2, 3, 4, 5, 10, 20, 50, 100)


class AttributionMetrics:
    """The attribution counters in ``registry``: the API's default registry, or a consumer's own."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.attributed = Counter(
            "recipe_attributed_interactions",
            "Interactions attributed to the answer that showed the recipe, by its endpoint, variant and model",
            ["endpoint", "variant", "model", "interaction_type"],
            registry=registry,
        )
        self.rank = Histogram(
            "recipe_attributed_rank",
            "Rank (1 = first) of the recipe an attributed interaction was with, in the answer that showed it",
            ["endpoint", "variant"],
            buckets=RANK_BUCKETS,
            registry=registry,
        )
        self.unattributed = Counter(
            "recipe_unattributed_interactions",
            "Interactions carrying a recommendationId that no kept answer explains, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in UNATTRIBUTED_REASONS:
            self.unattributed.labels(reason)


def _none_pending(_: str) -> ShownList | None:
    return None


def answer_keys(kind: str, recommendation_id: str, endpoint: str, variant: str, model: str) -> dict[str, Any]:
    """The keys every record of the impression log starts with: what it is, and the answer it is about."""
    return {
        "kind": kind,
        "recommendationId": recommendation_id,
        "endpoint": endpoint,
        "variant": variant,
        "model": model,
    }


def encoded(record: dict[str, Any]) -> bytes:
    """A record as the log publishes it: compact JSON, one line."""
    return json.dumps(record, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Attribution:
    """An interaction joined to the answer that showed its recipe: the record the report reads."""

    kind: ClassVar[str] = "attribution"
    recommendation_id: str
    endpoint: str
    variant: str
    model: str
    user_id: int | None
    recipe_id: int
    interaction_type: str
    rank: int
    """1 = the answer's first recipe."""
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def record(self) -> dict[str, Any]:
        """The published record (camelCase keys, as the impression's)."""
        return {
            **answer_keys(self.kind, self.recommendation_id, self.endpoint, self.variant, self.model),
            "userId": self.user_id,
            "recipeId": self.recipe_id,
            "interactionType": self.interaction_type,
            "rank": self.rank,
            "timestamp": self.timestamp.isoformat(),
        }

    def encoded(self) -> bytes:
        return encoded(self.record())


@dataclass(frozen=True)
class Attributor:
    """Attributes newly applied events to their shown list: counts them and publishes the record."""

    store: InteractionStore
    publish: Callable[[Attribution], None]
    metrics: AttributionMetrics
    window_seconds: float
    pending: Callable[[str], ShownList | None] = _none_pending
    """The shown lists published in this process and not in the store yet (the API's impression log); read
    first, since a list leaves it only once the store holds it."""

    def attribute(self, event: InteractionEvent) -> Attribution | None:
        """The attribution of ``event`` (counted and published), or None (counted as unattributed).

        Never raises: the event is already applied, and its attribution is a measurement.
        """
        if event.recommendation_id is None:
            return None
        try:
            shown = self.pending(event.recommendation_id) or self.store.shown(event.recommendation_id)
        except self.store.unavailable as exc:
            logger.warning("cannot attribute an interaction, the store is unreachable: %r", exc)
            return self._unattributed("store_error")
        if shown is None:
            return self._unattributed("unknown")
        when = (event.timestamp or datetime.now(UTC)).timestamp()
        if when - shown.shown_at > self.window_seconds:
            return self._unattributed("expired")
        if event.recipe_id not in shown.recipe_ids:
            return self._unattributed("not_shown")
        attribution = Attribution(
            recommendation_id=shown.recommendation_id,
            endpoint=shown.endpoint,
            variant=shown.variant,
            model=shown.model,
            user_id=event.user_id,
            recipe_id=event.recipe_id,
            interaction_type=str(event.interaction_type),
            rank=shown.recipe_ids.index(event.recipe_id) + 1,
        )
        self.metrics.attributed.labels(shown.endpoint, shown.variant, shown.model, attribution.interaction_type).inc()
        self.metrics.rank.labels(shown.endpoint, shown.variant).observe(attribution.rank)
        self.publish(attribution)
        return attribution

    def _unattributed(self, reason: str) -> Attribution | None:
        """Count the reason; None, the caller's answer."""
        self.metrics.unattributed.labels(reason).inc()
        return None
