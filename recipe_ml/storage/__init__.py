"""Where the cache and the interaction state live, chosen by ``REDIS_URL``.

Open the backends through ``open_cache``, ``open_interaction_store`` and ``open_catalogue`` so that
the choice stays in one place.
"""

from __future__ import annotations

from recipe_ml.config import Settings, check_redis_url
from recipe_ml.storage.base import CatalogueStore, InteractionStore, ResponseCache
from recipe_ml.storage.memory import (
    DEFAULT_CATALOGUE_MAX,
    DEFAULT_MAX_RECIPES,
    DEFAULT_MAX_USERS,
    MemoryCache,
    MemoryCatalogue,
    MemoryInteractionStore,
)

DEFAULT_HALF_LIFE_HOURS: float = Settings.model_fields["popularity_half_life_hours"].default


def open_cache(url: str | None) -> ResponseCache:
    """The response cache for ``REDIS_URL`` (None: in-process)."""
    redis_url = check_redis_url(url)
    if redis_url is None:
        return MemoryCache()
    from recipe_ml.storage.redis import RedisCache  # the Redis client only in processes that use it

    return RedisCache(redis_url)


def open_interaction_store(
    url: str | None,
    half_life_hours: float = DEFAULT_HALF_LIFE_HOURS,
    *,
    max_users: int = DEFAULT_MAX_USERS,
    max_recipes: int = DEFAULT_MAX_RECIPES,
) -> InteractionStore:
    """The interaction store for ``REDIS_URL`` (None: in-process, holding at most ``max_users`` users'
    recent interactions and ``max_recipes`` trending counters: MEMORY_MAX_USERS, MEMORY_MAX_RECIPES)."""
    redis_url = check_redis_url(url)
    if redis_url is None:
        return MemoryInteractionStore(half_life_hours, max_users=max_users, max_recipes=max_recipes)
    from recipe_ml.storage.redis import RedisInteractionStore

    return RedisInteractionStore(redis_url, half_life_hours)


def open_catalogue(url: str | None, max_recipes: int = DEFAULT_CATALOGUE_MAX) -> CatalogueStore:
    """The recipe catalogue for ``REDIS_URL`` (None: in-process), at most ``max_recipes`` records
    (CATALOGUE_MAX_RECIPES)."""
    redis_url = check_redis_url(url)
    if redis_url is None:
        return MemoryCatalogue(max_recipes)
    from recipe_ml.storage.redis import RedisCatalogue

    return RedisCatalogue(redis_url, max_recipes)


__all__ = [
    "CatalogueStore",
    "InteractionStore",
    "ResponseCache",
    "open_cache",
    "open_catalogue",
    "open_interaction_store",
]
