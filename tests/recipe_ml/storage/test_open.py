"""Backend choice by URL scheme, and behaviour when Redis is down."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import redis

from recipe_ml.events.schema import InteractionEvent, InteractionType
from recipe_ml.storage import open_cache, open_interaction_store
from recipe_ml.storage.memory import MemoryCache, MemoryInteractionStore
from recipe_ml.storage.redis import RedisCache, RedisInteractionStore
from tests.fixtures.kafka import free_port


@pytest.mark.parametrize("url", [None, "", "  "])
def test_no_url_means_in_process_backends(url: str | None) -> None:
    assert isinstance(open_cache(url), MemoryCache)
    assert isinstance(open_interaction_store(url), MemoryInteractionStore)


@pytest.mark.integration
def test_in_process_backends_and_the_routes_do_not_import_the_redis_client() -> None:
    code = (
        "import sys\n"
        "import edge.app\n"
        "from recipe_ml.storage import open_cache, open_interaction_store\n"
        "open_cache(None), open_interaction_store(None)\n"
        "assert 'redis' not in sys.modules, 'redis was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_redis_schemes_pick_the_redis_backends(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:6379/15"
    assert isinstance(open_cache(url), RedisCache)
    assert isinstance(open_interaction_store(url, half_life_hours=2.0), RedisInteractionStore)


@pytest.mark.parametrize("url", ["http://user:secret@host:6379", "127.0.0.1:6379", "memcached://host"])
def test_unknown_scheme_is_a_clear_error_without_the_password(url: str) -> None:
    for opener in (open_cache, open_interaction_store):
        with pytest.raises(ValueError, match=r"REDIS_URL must start with redis:// or rediss://") as info:
            opener(url)
        assert "secret" not in str(info.value)


@pytest.fixture
def down_url() -> str:
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


def test_cache_survives_redis_down(down_url: str, caplog: pytest.LogCaptureFixture) -> None:
    cache = open_cache(down_url)
    with caplog.at_level(logging.WARNING, logger="recipe_ml.storage.redis"):
        assert cache.get("k") is None
        assert cache.get_many(["k", "j"]) == [None, None]
        cache.set("k", b"v", 60, user_id=1)
        cache.set("k", b"v", 60)
    assert [r.message.split(":")[0] for r in caplog.records] == [
        "cache get failed, serving a miss",
        "cache get failed, serving a miss",
        "cache set failed, response not cached",
        "cache set failed, response not cached",
    ]
    assert cache.ping() is False


def test_store_and_invalidation_raise_when_redis_is_down(down_url: str) -> None:
    """The caller must learn of the outage: the consumer retries, the API answers 503."""
    store = open_interaction_store(down_url)
    event = InteractionEvent(user_id=1, recipe_id=2, interaction_type=InteractionType.VIEW)
    with pytest.raises(redis.ConnectionError):
        store.apply(event)
    with pytest.raises(store.unavailable):  # what the interactions route turns into a 503
        store.apply(event)
    with pytest.raises(redis.ConnectionError):
        store.recent_items(1)
    with pytest.raises(redis.ConnectionError):
        store.recent_items_many([1, 2])
    with pytest.raises(redis.ConnectionError):
        open_cache(down_url).invalidate_user(1)
    assert store.ping() is False


def test_backends_answer_ping(redis_url: str) -> None:
    assert open_cache(redis_url).ping()
    assert open_interaction_store(redis_url).ping()
