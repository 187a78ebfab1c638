"""The code path shared by ``POST /api/interactions`` and the consumer."""

from __future__ import annotations

import time

import pytest

from recipe_ml.events.applier import EventApplier
from recipe_ml.events.schema import InteractionEvent, InteractionType
from recipe_ml.storage.base import ResponseCache
from recipe_ml.storage.memory import MemoryCache, MemoryInteractionStore
from recipe_ml.storage.redis import RedisCache, RedisInteractionStore


@pytest.fixture(params=["memory", "redis"])
def applier(request: pytest.FixtureRequest) -> EventApplier:
    """Caches without the post-invalidation guard, so the test can refill them at once."""
    if request.param == "memory":
        return EventApplier(MemoryInteractionStore(24.0), MemoryCache(invalidation_guard_seconds=0))
    url = request.getfixturevalue("redis_url")
    cache: ResponseCache = RedisCache(url, invalidation_guard_seconds=0.001)
    return EventApplier(RedisInteractionStore(url, 24.0), cache)


def test_apply_records_the_event_and_invalidates_the_user(applier: EventApplier) -> None:
    event = InteractionEvent(user_id=7, recipe_id=42, interaction_type=InteractionType.SAVE, event_id="e")
    applier.cache.set("recs:7", b"old", 60, user_id=7)
    applier.cache.set("recs:8", b"other user", 60, user_id=8)

    assert applier.apply(event) is True
    assert applier.store.recent_items(7) == [42]
    assert applier.cache.get("recs:7") is None
    assert applier.cache.get("recs:8") == b"other user"


def test_a_duplicate_changes_nothing_but_still_invalidates(applier: EventApplier) -> None:
    """If an earlier attempt applied but failed to invalidate, its retry finishes the job."""
    event = InteractionEvent(user_id=7, recipe_id=42, interaction_type=InteractionType.SAVE, event_id="e")
    assert applier.apply(event) is True
    time.sleep(0.01)  # past the 1 ms guard
    applier.cache.set("recs:7", b"cached after the first attempt", 60, user_id=7)

    assert applier.apply(event) is False
    assert applier.store.recent_items(7) == [42]
    assert applier.store.trending(5) == [(42, pytest.approx(1.0, rel=1e-3))]
    assert applier.cache.get("recs:7") is None
