"""Applying an event: the one code path of ``POST /api/interactions`` and the consumer."""

from __future__ import annotations

from dataclasses import dataclass

from recipe_ml.events.attribution import Attributor
from recipe_ml.events.schema import InteractionEvent
from recipe_ml.storage.base import InteractionStore, ResponseCache


@dataclass(frozen=True)
class EventApplier:
    """Records an event, drops the user's cached responses, and attributes a new one to the answer it names."""

    store: InteractionStore
    cache: ResponseCache
    attributor: Attributor | None = None

    def apply(self, event: InteractionEvent) -> bool:
        """True when the event is new, False for a duplicate.

        The cache is invalidated for duplicates too: if an earlier attempt
        applied the event but failed to invalidate, its retry finishes the job.
        Raises on a backend outage; the caller retries (the consumer) or
        answers 503 (the API).
        """
        new = self.store.apply(event)
        if new and self.attributor is not None:
            self.attributor.attribute(event)  # before anything that can raise: a retry is a duplicate
        self.cache.invalidate_user(event.user_id)
        return new
