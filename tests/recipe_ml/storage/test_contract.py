"""One contract, both backends: memory (embedded) and the real Redis."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from recipe_ml.events.schema import InteractionEvent, InteractionType
from recipe_ml.storage.base import (
    MAX_RECIPE_USERS,
    CatalogueFullError,
    CatalogueStore,
    InteractionStore,
    RecipeRecord,
    RecordedInteraction,
    ResponseCache,
    ShownList,
)
from recipe_ml.storage.decay import RESCALE_AFTER_HALF_LIVES
from recipe_ml.storage.memory import MemoryCache, MemoryCatalogue, MemoryInteractionStore
from recipe_ml.storage.redis import LOG_READ_CHUNK, RedisCache, RedisCatalogue, RedisInteractionStore
from tests.fixtures.wait import wait_until

HALF_LIFE_HOURS = 1.0
HOUR = 3600.0
START = datetime(2026, 11, 29, 10, 0, tzinfo=UTC).timestamp()


class FakeClock:
    """Epoch seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_cache(backend: str, request: pytest.FixtureRequest) -> Callable[..., ResponseCache]:
    def make(guard_seconds: float = 5.0) -> ResponseCache:
        if backend == "memory":
            return MemoryCache(invalidation_guard_seconds=guard_seconds)
        return RedisCache(request.getfixturevalue("redis_url"), invalidation_guard_seconds=guard_seconds)

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend: str, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[InteractionStore]:
    if backend == "memory":
        yield MemoryInteractionStore(HALF_LIFE_HOURS, max_recent=5, clock=clock)
    else:
        url = request.getfixturevalue("redis_url")
        yield RedisInteractionStore(url, HALF_LIFE_HOURS, max_recent=5, clock=clock)


def event(user: int, recipe: int, *, event_id: str | None = None, at: float | None = None) -> InteractionEvent:
    timestamp = datetime.fromtimestamp(at, UTC) if at is not None else None
    return InteractionEvent(
        user_id=user, recipe_id=recipe, interaction_type=InteractionType.COOK, timestamp=timestamp, event_id=event_id
    )


# Cache
def test_cache_get_returns_what_set_stored(make_cache: Callable[..., ResponseCache]) -> None:
    cache = make_cache()
    assert cache.get("k") is None
    cache.set("k", b"value", ttl_seconds=60)
    cache.set("u", b"mine", ttl_seconds=60, user_id=7)
    assert cache.get("k") == b"value"
    assert cache.get("u") == b"mine"
    assert cache.ping()


def test_cache_get_many_answers_each_key_in_order(make_cache: Callable[..., ResponseCache]) -> None:
    cache = make_cache()
    cache.set("a", b"1", ttl_seconds=60)
    cache.set("c", b"3", ttl_seconds=60, user_id=7)
    assert cache.get_many(["c", "b", "a"]) == [b"3", None, b"1"]
    assert cache.get_many([]) == []


def test_cache_entry_expires_after_its_ttl(make_cache: Callable[..., ResponseCache]) -> None:
    cache = make_cache()
    cache.set("short", b"v", ttl_seconds=1, user_id=1)
    cache.set("long", b"v", ttl_seconds=60, user_id=1)
    assert cache.get("short") == b"v"
    wait_until(lambda: cache.get("short") is None, timeout=30, what="the 1 s entry expires")
    assert cache.get("long") == b"v"


def test_cache_zero_ttl_stores_nothing(make_cache: Callable[..., ResponseCache]) -> None:
    cache = make_cache()
    cache.set("k", b"v", ttl_seconds=0)
    assert cache.get("k") is None


def test_invalidate_user_drops_only_that_users_entries(make_cache: Callable[..., ResponseCache]) -> None:
    cache = make_cache()
    cache.set("a1", b"1", 60, user_id=1)
    cache.set("a2", b"2", 60, user_id=1)
    cache.set("b", b"3", 60, user_id=2)
    cache.set("shared", b"4", 60)
    cache.invalidate_user(1)
    assert cache.get("a1") is None
    assert cache.get("a2") is None
    assert cache.get("b") == b"3"
    assert cache.get("shared") == b"4"


def test_no_caching_for_a_user_just_after_invalidation(make_cache: Callable[..., ResponseCache]) -> None:
    """A response computed before the event must not be cached after it; once the guard is over, caching resumes.

    Two caches: one whose guard outlasts any slow machine (so "just after" holds
    however long the calls take), one whose short guard the test waits out.
    """
    guarded = make_cache(guard_seconds=3600)
    guarded.invalidate_user(1)
    guarded.set("stale", b"old", 60, user_id=1)
    guarded.set("other", b"ok", 60, user_id=2)
    assert guarded.get("stale") is None
    assert guarded.get("other") == b"ok"

    short = make_cache(guard_seconds=0.2)
    short.invalidate_user(3)

    def cached_again() -> bool:
        short.set("fresh", b"new", 60, user_id=3)
        return short.get("fresh") == b"new"

    wait_until(cached_again, timeout=30, what="caching for user 3 resumes after its 0.2 s guard")


def test_redis_invalidation_reaches_other_replicas(redis_url: str) -> None:
    replica_a, replica_b = RedisCache(redis_url), RedisCache(redis_url)
    replica_a.set("k", b"v", 60, user_id=3)
    assert replica_b.get("k") == b"v"
    replica_b.invalidate_user(3)
    assert replica_a.get("k") is None


# Interaction store
def test_apply_is_idempotent(store: InteractionStore) -> None:
    assert store.apply(event(1, 10, event_id="e1")) is True
    assert store.apply(event(1, 10, event_id="e1")) is False
    assert store.recent_items(1) == [10]
    [(recipe, weight)] = store.trending(10)
    assert recipe == 10
    assert weight == pytest.approx(1.0)


def test_events_without_id_are_deduplicated_by_content(store: InteractionStore, clock: FakeClock) -> None:
    assert store.apply(event(1, 10, at=clock.now - 60)) is True
    assert store.apply(event(1, 10, at=clock.now - 60)) is False
    assert store.apply(event(1, 10, at=clock.now - 30)) is True
    assert store.trending(1)[0][1] == pytest.approx(2 ** (-60 / HOUR) + 2 ** (-30 / HOUR))


def test_recent_items_newest_first_each_once_bounded(store: InteractionStore) -> None:
    for n, recipe in enumerate([1, 2, 3, 2, 4, 5, 6]):
        store.apply(event(9, recipe, event_id=f"e{n}"))
    assert store.recent_items(9) == [6, 5, 4, 2, 3]  # max_recent=5; 2 moved to its latest place
    assert store.recent_items(9, limit=2) == [6, 5]
    assert store.recent_items(9, limit=0) == []
    assert store.recent_items(404) == []


def test_recent_items_many_answers_each_user_in_order(store: InteractionStore) -> None:
    for n, (user, recipe) in enumerate([(1, 10), (2, 20), (1, 11)]):
        store.apply(event(user, recipe, event_id=f"m{n}"))
    assert store.recent_items_many([2, 404, 1]) == [[20], [], [11, 10]]
    assert store.recent_items_many([1], limit=1) == [[11]]
    assert store.recent_items_many([1], limit=0) == [[]]
    assert store.recent_items_many([]) == []


def test_interactions_reads_back_every_applied_event_once_in_order(store: InteractionStore, clock: FakeClock) -> None:
    assert store.interactions() == []
    rated = InteractionEvent(
        user_id=7, recipe_id=70, interaction_type=InteractionType.RATE, rating=4, event_id="r", timestamp=None
    )
    store.apply(event(1, 10, event_id="a", at=clock.now - 60))
    store.apply(rated)
    store.apply(event(1, 10, event_id="a", at=clock.now - 60))  # a redelivery: not recorded twice
    store.apply(event(2, 20, event_id="b", at=clock.now + HOUR))  # the future is clamped to now
    assert store.interactions() == [
        RecordedInteraction(1, 10, "cook", None, clock.now - 60),
        RecordedInteraction(7, 70, "rate", 4, clock.now),
        RecordedInteraction(2, 20, "cook", None, clock.now),
    ]


def test_redis_interactions_reads_a_log_longer_than_one_chunk(redis_url: str) -> None:
    store = RedisInteractionStore(redis_url, HALF_LIFE_HOURS)
    count = LOG_READ_CHUNK + 3
    for n in range(count):
        store.apply(event(n % 50, n, event_id=f"c{n}"))
    recorded = store.interactions()
    assert [r.recipe_id for r in recorded] == list(range(count))


def test_trending_weights_halve_every_half_life(store: InteractionStore, clock: FakeClock) -> None:
    assert store.trending(5) == []
    store.apply(event(1, 100, event_id="old", at=clock.now - HOUR))  # one half-life ago
    store.apply(event(2, 200, event_id="new"))  # no timestamp: now
    store.apply(event(3, 200, event_id="future", at=clock.now + 10 * HOUR))  # clamped to now
    assert store.trending(5) == [(200, pytest.approx(2.0)), (100, pytest.approx(0.5))]
    clock.now += 2 * HOUR
    assert store.trending(5) == [(200, pytest.approx(0.5)), (100, pytest.approx(0.125))]
    assert store.trending(1) == [(200, pytest.approx(0.5))]


def test_trending_survives_the_landmark_rescale(store: InteractionStore, clock: FakeClock) -> None:
    """Far past the landmark the counters are rescaled: same weights, no overflow."""
    store.apply(event(1, 100, event_id="a"))
    store.apply(event(1, 100, event_id="b"))
    clock.now += (RESCALE_AFTER_HALF_LIVES - 1) * HOUR
    store.apply(event(2, 200, event_id="c"))
    clock.now += 2 * HOUR  # now past the rescale threshold
    store.apply(event(3, 300, event_id="d"))
    top = dict(store.trending(5))
    assert top[300] == pytest.approx(1.0)
    assert top[200] == pytest.approx(0.25)
    assert top[100] == pytest.approx(2.0 * 2.0 ** -(RESCALE_AFTER_HALF_LIVES + 1), rel=1e-9, abs=0.0)
    clock.now += 1000 * HOUR  # well past the overflow horizon of an unrescaled counter
    store.apply(event(4, 400, event_id="e"))
    top = dict(store.trending(5))
    assert top[400] == pytest.approx(1.0)
    assert top[300] == pytest.approx(2.0**-1000, rel=1e-9, abs=0.0)


def shown_list(recommendation_id: str, recipes: tuple[int, ...] = (5, 3, 9)) -> ShownList:
    return ShownList(recommendation_id, "recipes", "control", "two_tower", recipes, START)


def test_shown_reads_back_the_list_remembered_under_its_id(store: InteractionStore) -> None:
    store.remember_shown([shown_list("a" * 32), shown_list("b" * 32, (1,))], ttl_seconds=60)

    assert store.shown("a" * 32) == shown_list("a" * 32)
    assert store.shown("b" * 32) == shown_list("b" * 32, (1,))
    assert store.shown("c" * 32) is None
    store.remember_shown([], ttl_seconds=60)  # an empty batch is nothing to do


def test_a_newer_list_under_the_same_id_replaces_the_older(store: InteractionStore) -> None:
    store.remember_shown([shown_list("a" * 32)], ttl_seconds=60)
    store.remember_shown([shown_list("a" * 32, (7, 8))], ttl_seconds=60)
    assert store.shown("a" * 32) == shown_list("a" * 32, (7, 8))


def test_a_shown_list_is_forgotten_after_its_ttl(backend: str, store: InteractionStore, clock: FakeClock) -> None:
    store.remember_shown([shown_list("a" * 32)], ttl_seconds=1)
    store.remember_shown([shown_list("b" * 32)], ttl_seconds=3600)
    assert store.shown("a" * 32) is not None
    if backend == "memory":
        clock.now += 2
    wait_until(lambda: store.shown("a" * 32) is None, timeout=30, what="the 1 s shown list expires")
    assert store.shown("b" * 32) == shown_list("b" * 32)


def test_memory_store_keeps_at_most_max_shown_lists(clock: FakeClock) -> None:
    store = MemoryInteractionStore(HALF_LIFE_HOURS, max_shown=2, clock=clock)
    store.remember_shown([shown_list(f"{n:032x}") for n in range(3)], ttl_seconds=60)
    assert store.shown(f"{0:032x}") is None, "the oldest list goes"
    assert store.shown(f"{2:032x}") is not None


def test_stores_reject_a_non_positive_half_life(backend: str, request: pytest.FixtureRequest) -> None:
    with pytest.raises(ValueError, match="half_life_hours must be > 0"):
        if backend == "memory":
            MemoryInteractionStore(0)
        else:
            RedisInteractionStore(request.getfixturevalue("redis_url"), 0)


def test_memory_cache_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", b"1", 60, user_id=1)
    cache.set("b", b"2", 60)
    assert cache.get("a") == b"1"  # a is now the most recent
    cache.set("c", b"3", 60)
    assert cache.get("b") is None
    assert cache.get("a") == b"1"
    assert cache.get("c") == b"3"
    with pytest.raises(ValueError, match="max_entries must be >= 1"):
        MemoryCache(max_entries=0)


def test_dedupe_ids_are_forgotten_after_their_ttl(clock: FakeClock) -> None:
    store = MemoryInteractionStore(HALF_LIFE_HOURS, dedupe_ttl_seconds=60, clock=clock)
    assert store.apply(event(1, 10, event_id="e"))
    clock.now += 61
    assert store.apply(event(1, 10, event_id="e"))


def test_memory_store_keeps_at_most_max_users_forgetting_the_least_recently_active(clock: FakeClock) -> None:
    """The memory backend's own bound (Redis has maxmemory): new user ids cannot grow the process forever."""
    store = MemoryInteractionStore(HALF_LIFE_HOURS, max_users=2, clock=clock)
    store.apply(event(1, 10, event_id="a"))
    store.apply(event(2, 20, event_id="b"))
    store.apply(event(1, 11, event_id="c"))  # user 1 is now the most recently active
    store.apply(event(3, 30, event_id="d"))

    assert store.recent_items(2) == [], "the least recently active user is forgotten"
    assert store.recent_items(1) == [11, 10]
    assert store.recent_items(3) == [30]


def test_memory_store_keeps_at_most_max_recipes_counters(clock: FakeClock) -> None:
    store = MemoryInteractionStore(HALF_LIFE_HOURS, max_recipes=2, clock=clock)
    for number, recipe in enumerate((100, 200, 100, 300)):
        store.apply(event(number, recipe, event_id=f"e{number}"))

    assert dict(store.trending(10)).keys() == {100, 300}, "the recipe interacted with least recently goes"
    with pytest.raises(ValueError, match="max_users and max_recipes must be >= 1"):
        MemoryInteractionStore(HALF_LIFE_HOURS, max_recipes=0)


def test_interaction_counts_count_each_recipes_applied_interactions_in_order(store: InteractionStore) -> None:
    assert store.interaction_counts([10, 20]) == [0, 0]
    store.apply(event(1, 10, event_id="a"))
    store.apply(event(2, 10, event_id="b"))
    store.apply(event(1, 20, event_id="c"))
    store.apply(event(1, 10, event_id="a"))  # a redelivery: not counted twice

    assert store.interaction_counts([20, 404, 10]) == [1, 0, 2]
    assert store.interaction_counts([10, 10]) == [2, 2]
    assert store.interaction_counts([]) == []


def test_memory_interaction_count_is_forgotten_with_the_trending_counter(clock: FakeClock) -> None:
    """Past ``max_recipes`` the recipe interacted with least recently loses its counter and its count together."""
    store = MemoryInteractionStore(HALF_LIFE_HOURS, max_recipes=2, clock=clock)
    for number, recipe in enumerate((100, 200, 100, 300)):
        store.apply(event(number, recipe, event_id=f"e{number}"))
    assert store.interaction_counts([100, 200, 300]) == [2, 0, 1], "200 went with its counter"

    store.apply(event(9, 200, event_id="again"))  # 100 is now the least recently interacted with
    assert dict(store.trending(10)).keys() == {300, 200}
    assert store.interaction_counts([100, 200, 300]) == [0, 1, 1], "a forgotten recipe counts again from 0"


# Catalogue
CATALOGUE_MAX = 5


def recipe(
    recipe_id: int,
    *,
    tags: tuple[str, ...] = ("vegetarian",),
    available: bool = True,
    published_at: float | None = None,
    title: str | None = None,
    at: float = START,
) -> RecipeRecord:
    return RecipeRecord(recipe_id, tags, available, published_at, title, at)


@pytest.fixture
def make_catalogue(backend: str, request: pytest.FixtureRequest) -> Callable[..., CatalogueStore]:
    """A fresh catalogue of ``backend`` for each ``prefix`` (Redis: its own keys in the emptied test database)."""

    def make(max_recipes: int = CATALOGUE_MAX, prefix: str = "test-catalogue:") -> CatalogueStore:
        if backend == "memory":
            return MemoryCatalogue(max_recipes=max_recipes)
        return RedisCatalogue(request.getfixturevalue("redis_url"), max_recipes, prefix=prefix)

    return make


@pytest.fixture
def catalogue(make_catalogue: Callable[..., CatalogueStore]) -> CatalogueStore:
    return make_catalogue()


def by_id(records: Sequence[RecipeRecord]) -> list[RecipeRecord]:
    return sorted(records, key=lambda record: record.recipe_id)


def test_catalogue_get_returns_what_put_stored_in_the_order_of_the_ids(catalogue: CatalogueStore) -> None:
    first = recipe(1, tags=("contains:peanut", "course:dessert"), published_at=START - HOUR, title="Brownies")
    second = recipe(2, tags=(), available=False, at=START + 0.123456)
    assert catalogue.get([1]) == [None]

    assert catalogue.put([first, second]) == [True, True]
    assert catalogue.get([2, 404, 1]) == [second, None, first]
    assert catalogue.get([1, 1]) == [first, first]
    assert catalogue.get([]) == []
    assert catalogue.ping() is True


def test_catalogue_a_later_write_replaces_and_an_older_one_is_refused(catalogue: CatalogueStore) -> None:
    original = recipe(1, tags=("vegan",), title="v1")
    later = recipe(1, tags=("vegetarian",), title="v2", at=START + 60)
    older = recipe(1, tags=("meat",), available=False, title="v0", at=START - 60)
    catalogue.put([original])

    assert catalogue.put([later]) == [True]
    assert catalogue.get([1]) == [later]
    version = catalogue.version()
    assert catalogue.put([older]) == [False]
    assert catalogue.get([1]) == [later], "the refused write leaves the record"
    assert catalogue.version() == version
    assert catalogue.put([original]) == [False], "the replaced write, redelivered late, is refused too"
    assert catalogue.get([1]) == [later]


def test_catalogue_a_redelivered_record_is_refused_and_does_not_move_the_version(catalogue: CatalogueStore) -> None:
    stored = recipe(1, tags=("vegan",), title="Dal", published_at=START - HOUR, at=START + 0.5)
    assert catalogue.put([stored]) == [True]
    version = catalogue.version()

    assert catalogue.put([stored]) == [False]
    assert catalogue.put([replace(stored)]) == [False], "an equal record, however built, is the same write"
    assert catalogue.version() == version
    assert catalogue.get([1]) == [stored]


# Same-time writes of one recipe (the tie is broken by the encoding, bytewise: ``"a-b"`` sorts after ``"a","b"``,
# lower-case ``apple`` after upper-case ``Banana``), and an older write of each, in every order.
ORDERED_WRITES = (
    recipe(1, tags=("a", "b"), at=START + 1),
    recipe(1, tags=("a-b",), at=START + 1),
    recipe(1, tags=("z",), title="older", at=START),
    recipe(2, title="Banana", at=START + 2),
    recipe(2, title="apple", at=START + 2),
)
ORDER_INDEPENDENT_RESULT = [ORDERED_WRITES[1], ORDERED_WRITES[4]]


def test_catalogue_any_order_of_the_same_writes_leaves_the_same_records(
    make_catalogue: Callable[..., CatalogueStore],
) -> None:
    """The documented rule: the latest ``updated_at`` wins, a tie goes to the encoding that sorts last.

    Both backends are held to the same expected records, so they agree with each other whatever the order.
    """
    assert ORDERED_WRITES[1].encoded() > ORDERED_WRITES[0].encoded(), "the tie the expected result assumes"
    assert ORDERED_WRITES[4].encoded() > ORDERED_WRITES[3].encoded(), "the tie the expected result assumes"
    for number, order in enumerate(itertools.permutations(ORDERED_WRITES)):
        one_by_one = make_catalogue(prefix=f"order-{number}-single:")
        for write in order:
            one_by_one.put([write])
        in_one_call = make_catalogue(prefix=f"order-{number}-batch:")
        in_one_call.put(order)
        for catalogue in (one_by_one, in_one_call):
            assert by_id(catalogue.snapshot().records) == ORDER_INDEPENDENT_RESULT, order
            assert catalogue.put(order) == [False] * len(order), "redelivered, every write is refused"
            assert by_id(catalogue.snapshot().records) == ORDER_INDEPENDENT_RESULT


def test_catalogue_version_moves_only_when_what_filters_read_changes(catalogue: CatalogueStore) -> None:
    assert catalogue.version() == 0
    assert catalogue.snapshot().version == 0

    def moved(record: RecipeRecord) -> bool:
        before = catalogue.version()
        assert catalogue.put([record]) == [True]
        after = catalogue.version()
        assert after >= before, "the version never goes back"
        return after != before

    assert moved(recipe(1, tags=("vegan",), title="Dal", at=START)), "a new record"
    assert not moved(recipe(1, tags=("vegan",), title="Tarka dal", at=START + 1)), "a title-only change"
    assert not moved(recipe(1, tags=("vegan",), title="Tarka dal", published_at=START, at=START + 2)), "published_at"
    assert moved(recipe(1, tags=("gluten-free", "vegan"), title="Tarka dal", published_at=START, at=START + 3)), "tags"
    assert moved(
        recipe(1, tags=("gluten-free", "vegan"), available=False, title="Tarka dal", published_at=START, at=START + 4)
    ), "availability"
    assert moved(
        recipe(1, tags=("gluten-free", "vegan"), available=True, title="Tarka dal", published_at=START, at=START + 5)
    ), "availability back"
    assert moved(recipe(2, at=START)), "a second new record"
    assert not moved(recipe(2, at=START + 5)), "only updated_at changed"


def test_catalogue_two_writes_of_one_recipe_in_one_call_act_as_two_puts(
    make_catalogue: Callable[..., CatalogueStore],
) -> None:
    old = recipe(1, tags=("vegan",), at=START)
    new = recipe(1, tags=("vegetarian",), at=START + 1)
    cases = {
        "older then newer": ([old, new], [True, True], new),
        "newer then older": ([new, old], [True, False], new),
        "the same twice": ([old, old], [True, False], old),
    }
    for case, (writes, applied, result) in cases.items():
        together = make_catalogue(prefix=f"{case}-together:")
        apart = make_catalogue(prefix=f"{case}-apart:")
        assert together.put(writes) == applied, case
        assert [apart.put([write])[0] for write in writes] == applied, case
        assert together.get([1]) == apart.get([1]) == [result], case
        assert together.version() > 0, case
        assert apart.version() > 0, case


def test_catalogue_put_past_max_recipes_raises_and_applies_nothing(
    make_catalogue: Callable[..., CatalogueStore],
) -> None:
    catalogue = make_catalogue(max_recipes=3)
    first, second = recipe(1, tags=("vegan",)), recipe(2)
    catalogue.put([first, second])
    version = catalogue.version()
    update = recipe(1, tags=("vegetarian",), at=START + 1)

    with pytest.raises(CatalogueFullError) as raised:
        catalogue.put([update, recipe(3), recipe(4)])  # two new recipes: one too many
    assert raised.value.limit == 3
    assert catalogue.get([1, 2, 3, 4]) == [first, second, None, None], "all or nothing: not even the update"
    assert catalogue.version() == version
    assert by_id(catalogue.snapshot().records) == [first, second]

    assert catalogue.put([update, recipe(3), recipe(3, at=START + 1)]) == [True, True, True], "one new recipe fits"
    assert catalogue.put([recipe(2, title="at the bound", at=START + 1)]) == [True], "updates still work at the bound"
    full = by_id(catalogue.snapshot().records)
    with pytest.raises(CatalogueFullError):
        catalogue.put([recipe(2, title="lost", at=START + 2), recipe(5)])
    with pytest.raises(CatalogueFullError):
        catalogue.put([recipe(6)])
    assert by_id(catalogue.snapshot().records) == full
    assert len(full) == 3


def test_catalogue_snapshot_returns_every_record_with_the_version(catalogue: CatalogueStore) -> None:
    records = [recipe(3, tags=("a",)), recipe(1, available=False), recipe(2, title="Soup", published_at=START)]
    catalogue.put(records[:1])
    catalogue.put(records[1:])
    snapshot = catalogue.snapshot()
    assert snapshot.version == catalogue.version() > 0
    assert by_id(snapshot.records) == by_id(records)
    assert len(snapshot.records) == 3


def test_catalogue_an_empty_put_is_nothing_to_do(catalogue: CatalogueStore) -> None:
    assert catalogue.put([]) == []
    assert catalogue.version() == 0
    assert catalogue.snapshot().records == ()
    catalogue.put([recipe(1)])
    version = catalogue.version()
    assert catalogue.put([]) == []
    assert catalogue.version() == version


def test_catalogues_reject_a_bound_below_one(backend: str, request: pytest.FixtureRequest) -> None:
    with pytest.raises(ValueError, match="max_recipes must be >= 1"):
        if backend == "memory":
            MemoryCatalogue(max_recipes=0)
        else:
            RedisCatalogue(request.getfixturevalue("redis_url"), 0)


def test_redis_catalogue_replicas_see_each_others_writes_and_version(redis_url: str) -> None:
    replica_a, replica_b = RedisCatalogue(redis_url, CATALOGUE_MAX), RedisCatalogue(redis_url, CATALOGUE_MAX)
    written = recipe(1, tags=("vegan",), title="Dal")
    assert replica_a.put([written]) == [True]
    assert replica_b.get([1]) == [written]
    assert replica_b.version() == replica_a.version() > 0

    update = recipe(1, tags=("vegetarian",), at=START + 1)
    assert replica_b.put([update]) == [True]
    assert replica_a.put([written]) == [False], "replica a sees the newer record b wrote"
    assert replica_a.get([1]) == [update]
    assert replica_a.snapshot() == replica_b.snapshot()
    assert replica_a.version() == replica_b.version() > 0


def test_recipe_users_are_newest_first_each_once_and_bounded(store: InteractionStore) -> None:
    store.apply(event(1, 10, event_id="a"))
    store.apply(event(2, 10, event_id="b"))
    store.apply(event(1, 10, event_id="c"))  # user 1 again: moves to the front, kept once
    store.apply(event(2, 10, event_id="b"))  # a redelivery changes nothing
    for user in range(100, 100 + MAX_RECIPE_USERS + 5):
        store.apply(event(user, 20, event_id=f"many-{user}"))

    users = store.recipe_users([10, 404, 20])

    assert users[:2] == [[1, 2], []]
    assert users[2] == list(range(100 + MAX_RECIPE_USERS + 4, 104, -1)), "the newest MAX_RECIPE_USERS"
    assert store.recipe_users([]) == []
