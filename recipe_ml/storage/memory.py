"""In-process backends: the embedded default when no ``REDIS_URL`` is set.

State lives in one process, so this mode suits a single API worker; several
replicas or a Kafka consumer need Redis to agree.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from recipe_ml.config import Settings
from recipe_ml.storage.base import (
    DEDUPE_TTL_SECONDS,
    INVALIDATION_GUARD_SECONDS,
    MAX_RECENT_ITEMS,
    MAX_RECIPE_USERS,
    MAX_SHOWN_LISTS,
    CatalogueFullError,
    CatalogueSnapshot,
    CatalogueStore,
    Interaction,
    InteractionStore,
    RecipeRecord,
    RecordedInteraction,
    ResponseCache,
    ShownList,
)
from recipe_ml.storage.decay import RESCALE_AFTER_HALF_LIVES, decayed, event_seconds

DEFAULT_MAX_USERS: int = Settings.model_fields["memory_max_users"].default
DEFAULT_MAX_RECIPES: int = Settings.model_fields["memory_max_recipes"].default
DEFAULT_CATALOGUE_MAX: int = Settings.model_fields["catalogue_max_recipes"].default


class MemoryCache(ResponseCache):
    """Thread-safe TTL cache, least recently used entries evicted past ``max_entries``."""

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        invalidation_guard_seconds: float = INVALIDATION_GUARD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self._max_entries = max_entries
        self._guard = invalidation_guard_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, bytes, int | None]] = OrderedDict()
        """key → (expiry, value, user id)."""
        self._by_user: dict[int, set[str]] = {}
        self._invalidated_at: dict[int, float] = {}

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expiry, value, _ = entry
            if expiry <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_seconds: int, user_id: int | None = None) -> None:
        if ttl_seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            if user_id is not None and self._guarded(user_id, now):
                return
            self._drop(key)
            self._entries[key] = (now + ttl_seconds, value, user_id)
            if user_id is not None:
                self._by_user.setdefault(user_id, set()).add(key)
            while len(self._entries) > self._max_entries:
                self._drop(next(iter(self._entries)))

    def invalidate_user(self, user_id: int) -> None:
        with self._lock:
            now = self._clock()
            for key in self._by_user.pop(user_id, set()):
                self._entries.pop(key, None)
            self._invalidated_at[user_id] = now
            if len(self._invalidated_at) > self._max_entries:
                self._invalidated_at = {
                    user: at for user, at in self._invalidated_at.items() if self._guarded(user, now)
                }

    def ping(self) -> bool:
        return True

    def _guarded(self, user_id: int, now: float) -> bool:
        """True while ``user_id`` was invalidated less than the guard ago."""
        at = self._invalidated_at.get(user_id)
        return at is not None and now - at < self._guard

    def _drop(self, key: str) -> None:
        """Remove ``key`` and its user index entry (lock held)."""
        entry = self._entries.pop(key, None)
        if entry is not None and entry[2] is not None:
            keys = self._by_user.get(entry[2])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_user[entry[2]]


class MemoryInteractionStore(InteractionStore):
    """Thread-safe interaction store with the same semantics as the Redis one, within a size bound.

    The process's memory is the limit here (Redis has its own ``maxmemory``):
    at most ``max_users`` users' recent interactions and ``max_recipes``
    trending counters are kept, and past either bound the one updated least
    recently is forgotten, so a stream of new ids (real or forged) cannot grow
    the process without end. A forgotten user is answered from the models
    alone; a forgotten recipe's counter had decayed the longest.
    """

    def __init__(
        self,
        half_life_hours: float,
        *,
        max_recent: int = MAX_RECENT_ITEMS,
        max_users: int = DEFAULT_MAX_USERS,
        max_recipes: int = DEFAULT_MAX_RECIPES,
        max_shown: int = MAX_SHOWN_LISTS,
        dedupe_ttl_seconds: float = DEDUPE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if half_life_hours <= 0:
            raise ValueError(f"half_life_hours must be > 0, got {half_life_hours}")
        if max_users < 1 or max_recipes < 1:
            raise ValueError(f"max_users and max_recipes must be >= 1, got {max_users} and {max_recipes}")
        self._half_life = half_life_hours * 3600.0
        self._max_recent = max_recent
        self._max_users = max_users
        self._max_recipes = max_recipes
        self._max_shown = max_shown
        self._dedupe_ttl = dedupe_ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()
        """event id → expiry, oldest first (expiries grow with insertion)."""
        self._recent: OrderedDict[int, list[int]] = OrderedDict()
        """user → recent recipes, the least recently updated user first."""
        self._counters: OrderedDict[int, float] = OrderedDict()
        """recipe → trending counter, the least recently updated recipe first."""
        self._counts: dict[int, int] = {}
        """recipe → live interactions, for the recipes that have a trending counter (forgotten with it)."""
        self._recipe_users: dict[int, list[int]] = {}
        """recipe → its users, newest first, for the recipes that have a trending counter (forgotten with it)."""
        self._shown: OrderedDict[str, tuple[float, ShownList]] = OrderedDict()
        """recommendation id → (expiry, list), the oldest first (the TTL is one setting: expiries grow)."""
        self._landmark: float | None = None
        self._log: list[RecordedInteraction] = []

    def apply(self, event: Interaction) -> bool:
        with self._lock:
            now = self._clock()
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            event_id = event.dedupe_id()
            if event_id in self._seen:
                return False
            self._seen[event_id] = now + self._dedupe_ttl

            recent = [recipe for recipe in self._recent.pop(event.user_id, []) if recipe != event.recipe_id]
            self._recent[event.user_id] = [event.recipe_id, *recent][: self._max_recent]
            if len(self._recent) > self._max_users:
                self._recent.popitem(last=False)

            t = event_seconds(event.timestamp, now)
            kind = str(event.interaction_type)
            self._log.append(RecordedInteraction(event.user_id, event.recipe_id, kind, event.rating, t))
            if self._landmark is None:
                self._landmark = t
            exponent = (t - self._landmark) / self._half_life
            if exponent > RESCALE_AFTER_HALF_LIVES:
                scale = 2.0**-exponent
                self._counters = OrderedDict((recipe, score * scale) for recipe, score in self._counters.items())
                self._landmark, exponent = t, 0.0
            self._counters[event.recipe_id] = self._counters.pop(event.recipe_id, 0.0) + 2.0**exponent
            self._counts[event.recipe_id] = self._counts.get(event.recipe_id, 0) + 1
            others = [user for user in self._recipe_users.get(event.recipe_id, []) if user != event.user_id]
            self._recipe_users[event.recipe_id] = [event.user_id, *others][:MAX_RECIPE_USERS]
            if len(self._counters) > self._max_recipes:
                forgotten, _ = self._counters.popitem(last=False)
                self._counts.pop(forgotten, None)
                self._recipe_users.pop(forgotten, None)
            return True

    def recent_items(self, user_id: int, limit: int = 200) -> list[int]:
        with self._lock:
            return self._recent.get(user_id, [])[:limit]

    def interactions(self) -> list[RecordedInteraction]:
        with self._lock:
            return list(self._log)

    def remember_shown(self, shown: Sequence[ShownList], ttl_seconds: int) -> None:
        with self._lock:
            now = self._clock()
            while self._shown and next(iter(self._shown.values()))[0] <= now:
                self._shown.popitem(last=False)
            for entry in shown:
                self._shown.pop(entry.recommendation_id, None)
                self._shown[entry.recommendation_id] = (now + ttl_seconds, entry)
            while len(self._shown) > self._max_shown:
                self._shown.popitem(last=False)

    def shown(self, recommendation_id: str) -> ShownList | None:
        with self._lock:
            expiry, entry = self._shown.get(recommendation_id, (0.0, None))
            return entry if expiry > self._clock() else None

    def interaction_counts(self, recipe_ids: Sequence[int]) -> list[int]:
        with self._lock:
            return [self._counts.get(recipe_id, 0) for recipe_id in recipe_ids]

    def recipe_users(self, recipe_ids: Sequence[int]) -> list[list[int]]:
        with self._lock:
            return [list(self._recipe_users.get(recipe_id, [])) for recipe_id in recipe_ids]

    def trending(self, limit: int) -> list[tuple[int, float]]:
        with self._lock:
            if self._landmark is None or limit <= 0:
                return []
            landmark, now = self._landmark, self._clock()
            top = sorted(self._counters.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [(recipe, decayed(score, landmark, now, self._half_life)) for recipe, score in top]

    def ping(self) -> bool:
        return True


class MemoryCatalogue(CatalogueStore):
    """The catalogue in one process (the embedded default), at most ``max_recipes`` records."""

    def __init__(self, max_recipes: int = DEFAULT_CATALOGUE_MAX) -> None:
        if max_recipes < 1:
            raise ValueError(f"max_recipes must be >= 1, got {max_recipes}")
        self._max_recipes = max_recipes
        self._lock = threading.Lock()
        self._records: dict[int, RecipeRecord] = {}
        self._version = 0

    def put(self, records: Sequence[RecipeRecord]) -> list[bool]:
        with self._lock:
            new = {r.recipe_id for r in records} - self._records.keys()
            if new and len(self._records) + len(new) > self._max_recipes:
                raise CatalogueFullError(self._max_recipes)
            applied, changed = [], False
            for record in records:  # in order: a recipe written twice in one call ends as if written twice
                stored = self._records.get(record.recipe_id)
                wins = record.wins_over(stored)
                if wins:
                    changed |= stored is None or stored.filtered_as != record.filtered_as
                    self._records[record.recipe_id] = record
                applied.append(wins)
            if changed:
                self._version += 1
            return applied

    def get(self, recipe_ids: Sequence[int]) -> list[RecipeRecord | None]:
        with self._lock:
            return [self._records.get(recipe_id) for recipe_id in recipe_ids]

    def version(self) -> int:
        with self._lock:
            return self._version

    def snapshot(self) -> CatalogueSnapshot:
        with self._lock:
            return CatalogueSnapshot(self._version, tuple(self._records.values()))

    def ping(self) -> bool:
        return True
