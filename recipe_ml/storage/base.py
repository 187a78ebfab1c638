"""Storage interfaces; the backend is picked by URL scheme (as Gorse does).

``redis://…`` shares state between API replicas and consumers; no URL means
in-process memory, the embedded default. Both backends pass the same tests.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import ClassVar, Protocol

DEDUPE_TTL_SECONDS = 7 * 24 * 3600
"""How long an applied event id is remembered: far beyond any redelivery."""
MAX_SHOWN_LISTS = 100_000
"""Shown lists the in-process store keeps (the newest); Redis keeps each for its TTL instead."""
MAX_RECENT_ITEMS = 500
"""Recipes kept per user in the recent list (newest first, each once)."""
MAX_RECIPE_USERS = 50
"""Users kept per recipe (newest first, each once): whom a recipe unknown to the models is folded in from."""
INVALIDATION_GUARD_SECONDS = 5.0
"""After ``invalidate_user``, responses for that user are not cached this long.

A request that read the old state before the event but writes its response
after the invalidation would otherwise cache a stale answer for the whole TTL.
It must exceed a request's duration (``RUNNER_TIMEOUT_SECONDS``, 2 s).
"""


class Interaction(Protocol):
    """What a store records of an interaction event.

    ``recipe_ml.events.schema.InteractionEvent`` is one; a structural type keeps
    storage free of the events package, which builds on storage.
    """

    @property
    def user_id(self) -> int: ...

    @property
    def recipe_id(self) -> int: ...

    @property
    def interaction_type(self) -> str: ...

    @property
    def rating(self) -> int | None: ...

    @property
    def timestamp(self) -> datetime | None: ...

    def dedupe_id(self) -> str:
        """The id that tells a redelivered event from a new one."""
        ...


@dataclass(frozen=True)
class RecordedInteraction:
    """An applied interaction as the store keeps it, for retraining (``InteractionStore.interactions``)."""

    user_id: int
    recipe_id: int
    interaction_type: str
    rating: int | None
    timestamp: float
    """Epoch seconds: the event's time, else when it was applied."""


@dataclass(frozen=True)
class ShownList:
    """A ranked list of recipes an answer showed, kept to attribute the interactions that follow it."""

    recommendation_id: str
    endpoint: str
    variant: str
    model: str
    recipe_ids: tuple[int, ...]
    """In rank order: a recipe's rank is its index plus one."""
    shown_at: float
    """Epoch seconds."""

    def encoded(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decoded(cls, raw: bytes) -> ShownList:
        fields = json.loads(raw)
        return cls(**{**fields, "recipe_ids": tuple(fields["recipe_ids"])})


@dataclass(frozen=True)
class RecipeRecord:
    """A recipe as the platform's catalogue describes it (``recipe_ml.catalogue.records`` validates the input).

    ``updated_at`` orders the writes of one recipe: the latest wins, whatever
    order they arrive in, and a write of the same time as the stored one wins
    only when its encoding sorts after the stored one's (so any order of the
    same writes, redeliveries included, leaves the same catalogue).
    """

    recipe_id: int
    tags: tuple[str, ...]
    """Sorted, each once."""
    available: bool
    published_at: float | None
    """Epoch seconds."""
    title: str | None
    updated_at: float
    """Epoch seconds, with microseconds."""

    def encoded(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decoded(cls, raw: bytes) -> RecipeRecord:
        fields = json.loads(raw)
        return cls(**{**fields, "tags": tuple(fields["tags"])})

    @property
    def stamp(self) -> int:
        """``updated_at`` in whole microseconds: compared exactly by every backend (Redis's Lua too)."""
        return round(self.updated_at * 1_000_000)

    @property
    def filtered_as(self) -> str:
        """What filters read of the record (availability and tags): a change of it changes answers."""
        return ("1" if self.available else "0") + "|" + ",".join(self.tags)

    def wins_over(self, stored: RecipeRecord | None) -> bool:
        """True when this write replaces ``stored`` (the last write by ``updated_at``, ties by encoding)."""
        if stored is None:
            return True
        return (self.stamp, self.encoded()) > (stored.stamp, stored.encoded())


class CatalogueFullError(ValueError):
    """A write that would add recipes beyond the catalogue's bound (``CATALOGUE_MAX_RECIPES``); nothing applied."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the catalogue holds its most recipes ({limit}, CATALOGUE_MAX_RECIPES); no new recipe added")
        self.limit = limit


@dataclass(frozen=True)
class CatalogueSnapshot:
    """Every record of the catalogue at one ``version``."""

    version: int
    records: tuple[RecipeRecord, ...]


class CatalogueStore(ABC):
    """The recipe records the platform owns, shared by every replica and the consumer.

    ``version`` grows with every write that changed what filters read (a new
    record, availability, tags) and never repeats, even after the store lost
    its data (Redis takes it from its clock): answers cached under one
    version are never served under another, and a process holding a
    ``snapshot`` knows when it is stale by reading the version alone.
    """

    remote: ClassVar[bool] = False
    """True when calls go over the network: async code must not make them on its event loop."""
    unavailable: ClassVar[tuple[type[Exception], ...]] = (OSError,)
    """What a call raises when the store cannot be reached."""

    @abstractmethod
    def put(self, records: Sequence[RecipeRecord]) -> list[bool]:
        """Apply ``records`` all at once (atomically): for each, True when it replaced the stored one.

        A record loses to a stored one that ``wins_over`` it (False: an older
        or redelivered write). Raises ``CatalogueFullError`` (and applies
        nothing) when the new recipes would exceed the store's bound, and on
        a backend outage.
        """

    @abstractmethod
    def get(self, recipe_ids: Sequence[int]) -> list[RecipeRecord | None]:
        """The record of each id (None: no record), in one round trip."""

    @abstractmethod
    def version(self) -> int:
        """The catalogue's version (0 when empty and never written)."""

    @abstractmethod
    def snapshot(self) -> CatalogueSnapshot:
        """Every record, consistent with the version it is read at."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""


class ResponseCache(ABC):
    """Serialized API responses with a TTL, invalidated per user."""

    remote: ClassVar[bool] = False
    """True when calls go over the network: async code must not make them on its event loop."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The cached value, or None on a miss (or when the backend is down)."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """``get`` of each key; backends override it to answer in one round trip."""
        return [self.get(key) for key in keys]

    @abstractmethod
    def set(self, key: str, value: bytes, ttl_seconds: int, user_id: int | None = None) -> None:
        """Store ``value``; ``user_id`` ties it to that user for invalidation.

        A ``ttl_seconds`` of 0 or less stores nothing (caching off), and nothing
        is stored for a user within ``INVALIDATION_GUARD_SECONDS`` of their last
        invalidation. Never raises for a backend outage: a cache must not fail a
        request.
        """

    @abstractmethod
    def invalidate_user(self, user_id: int) -> None:
        """Drop every entry stored with this ``user_id``, in every replica.

        Raises on a backend outage, so the event that caused it is retried
        (and a stale answer is not served for the whole TTL).
        """

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""


class InteractionStore(ABC):
    """Interactions that arrived after training, shared by API and consumers."""

    remote: ClassVar[bool] = False
    """True when calls go over the network: async code must not make them on its event loop."""
    unavailable: ClassVar[tuple[type[Exception], ...]] = (OSError,)
    """What a call raises when the store cannot be reached (``POST /api/interactions`` answers 503).

    Named by the backend so the API catches its client's errors without
    importing that client where the backend is not used."""

    @abstractmethod
    def apply(self, event: Interaction) -> bool:
        """Record ``event`` atomically; False (and no change) if already applied.

        Events are told apart by ``event.dedupe_id()``. Raises on a backend
        outage, so the caller can retry without committing.
        """

    @abstractmethod
    def recent_items(self, user_id: int, limit: int = 200) -> list[int]:
        """Recipe ids this user interacted with since training, newest first, each once."""

    def recent_items_many(self, user_ids: Sequence[int], limit: int = 200) -> list[list[int]]:
        """``recent_items`` of each user; backends override it to answer in one round trip."""
        return [self.recent_items(user_id, limit) for user_id in user_ids]

    @abstractmethod
    def interactions(self) -> list[RecordedInteraction]:
        """Every interaction applied so far, each once, in the order applied: what a retrain learns from.

        Raises on a backend outage (a retrain then says it trained without them).
        """

    @abstractmethod
    def remember_shown(self, shown: Sequence[ShownList], ttl_seconds: int) -> None:
        """Keep each list for ``ttl_seconds`` under its recommendation id (a newer list of an id replaces it).

        Raises on a backend outage (the caller counts the lists it lost).
        """

    @abstractmethod
    def shown(self, recommendation_id: str) -> ShownList | None:
        """The list kept under ``recommendation_id``; None when it was never kept, or has expired.

        Raises on a backend outage.
        """

    @abstractmethod
    def interaction_counts(self, recipe_ids: Sequence[int]) -> list[int]:
        """Live interactions applied with each recipe so far (0 for one with none), in one round trip.

        The in-process store counts the recipes it keeps a trending counter for (MEMORY_MAX_RECIPES).
        """

    @abstractmethod
    def recipe_users(self, recipe_ids: Sequence[int]) -> list[list[int]]:
        """The users who interacted with each recipe since training, newest first, each once, at most
        ``MAX_RECIPE_USERS``, in one round trip. The in-process store keeps them for the recipes it keeps a
        trending counter for."""

    @abstractmethod
    def trending(self, limit: int) -> list[tuple[int, float]]:
        """(recipe id, recency-decayed live interaction weight), highest first.

        The weight is the number of interactions, each worth 1 when it happens
        and half that every ``POPULARITY_HALF_LIFE_HOURS`` after.
        """

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers."""
