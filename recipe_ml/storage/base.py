"""Storage interfaces; the backend is picked by URL scheme (as Gorse does).

``redis://…`` shares state between API replicas and consumers; no URL means
in-process memory, the embedded default. Both backends pass the same tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from recipe_ml.events.schema import InteractionEvent


class ResponseCache(ABC):
    """Serialized API responses with a TTL, invalidated per user."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The cached value, or None on a miss (or when the backend is down)."""

    @abstractmethod
    def set(self, key: str, value: bytes, ttl_seconds: int, user_id: int | None = None) -> None:
        """Store ``value``; ``user_id`` ties it to that user for invalidation.

        Never raises for a backend outage: a cache must not fail a request.
        """

    @abstractmethod
    def invalidate_user(self, user_id: int) -> None:
        """Drop every entry stored with this ``user_id``."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""


class InteractionStore(ABC):
    """Interactions that arrived after training, shared by API and consumers."""

    @abstractmethod
    def apply(self, event: InteractionEvent) -> bool:
        """Record ``event`` atomically; False (and no change) if already applied.

        Raises on a backend outage, so the caller can retry without committing.
        """

    @abstractmethod
    def recent_items(self, user_id: int, limit: int = 200) -> list[int]:
        """Recipe ids this user interacted with since training, newest first."""

    @abstractmethod
    def trending(self, limit: int) -> list[tuple[int, float]]:
        """(recipe id, recency-decayed live interaction weight), highest first."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""
