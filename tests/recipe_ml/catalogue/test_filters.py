"""The catalogue's filters as recipe ids: what a request's tags and the hidden recipes come to."""

from __future__ import annotations

import pytest

from recipe_ml.catalogue.filters import RESOLVED_FILTERS, CatalogueView, LiveCatalogue
from recipe_ml.serving.options import RankOptions
from recipe_ml.storage.base import CatalogueSnapshot, RecipeRecord
from recipe_ml.storage.memory import MemoryCatalogue
from recipe_ml.storage.offload import StorageCalls
from recipe_ml.storage.redis import RedisCatalogue


def record(recipe_id: int, *tags: str, available: bool = True, at: float = 1.0) -> RecipeRecord:
    return RecipeRecord(recipe_id, tuple(sorted(tags)), available, None, None, at)


VIEW = CatalogueView(
    CatalogueSnapshot(
        7,
        (
            record(1, "vegetarian", "nut-free"),
            record(2, "vegetarian", "contains:peanut"),
            record(3, "nut-free"),
            record(4, "vegetarian", "nut-free", available=False),
            record(5, "contains:peanut", available=False),
        ),
    )
)


def options(**fields: object) -> RankOptions:
    values: dict[str, object] = {
        "top_k": 10,
        "exclude_recipe_ids": [],
        "include_recipe_ids": None,
        "diversity": 0.0,
        "max_fsa_score": None,
    }
    return RankOptions(**{**values, **fields})  # type: ignore[arg-type]


def test_hidden_recipes_are_banned_without_any_filter() -> None:
    resolved = VIEW.resolve([], [])

    assert resolved.banned == [4, 5] and resolved.allowed is None
    assert resolved.kept_out == {"unavailable": 2, "exclude_tags": 0}


def test_an_excluded_tag_bans_every_recipe_carrying_it() -> None:
    resolved = VIEW.resolve([], ["contains:peanut"])

    assert resolved.banned == [2, 4, 5]
    assert resolved.kept_out["exclude_tags"] == 1, "recipe 5 is counted as hidden, not twice"


def test_required_tags_allow_only_recipes_with_all_of_them_and_never_a_hidden_one() -> None:
    resolved = VIEW.resolve(["vegetarian", "nut-free"], [])

    assert resolved.allowed == [1]
    assert resolved.kept_out["require_tags"] == 3, "recipes 2, 3 and 5 lack a tag (4 has both but is hidden)"


def test_a_tag_nobody_uses_matches_nothing() -> None:
    assert VIEW.resolve(["no-such-tag"], []).allowed == []
    assert VIEW.resolve([], ["no-such-tag"]).banned == [4, 5]


def test_apply_adds_the_banned_recipes_and_intersects_the_candidates() -> None:
    applied, _ = VIEW.apply(options(exclude_recipe_ids=[9], include_recipe_ids=[1, 2, 3], require_tags=["nut-free"]))

    assert applied.exclude_recipe_ids == [9, 4, 5]
    assert applied.include_recipe_ids == [1, 3]
    assert applied.require_tags == ["nut-free"], "the request's tags stay (they are part of the cache key)"


def test_resolutions_kept_are_bounded_whatever_tags_callers_send() -> None:
    view = CatalogueView(CatalogueSnapshot(1, (record(1, "a"),)))
    for n in range(RESOLVED_FILTERS * 3):
        view.resolve([f"tag-{n}"], [])

    assert len(view._resolved) == RESOLVED_FILTERS


@pytest.mark.anyio
async def test_the_live_view_follows_the_store_version() -> None:
    store = MemoryCatalogue()
    live = LiveCatalogue(store, StorageCalls(offload=False))
    first = await live.view()
    store.put([record(1, "a", available=False)])
    second = await live.view()

    assert (first.version, first.hidden) == (0, 0)
    assert (second.version, second.hidden) == (1, 1)
    assert await live.view() is second, "an unchanged version reuses the view"


@pytest.mark.anyio
async def test_an_unreachable_store_filters_with_the_view_loaded_before_instead_of_failing() -> None:
    store = RedisCatalogue("redis://127.0.0.1:1/0", 10, timeout_seconds=0.2)
    live = LiveCatalogue(store, StorageCalls(offload=True))

    view = await live.view()

    assert view.version == -1 and view.size == 0
