"""The catalogue's hard filters through the engine, with the trained models and real storage (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge.model_store import load_from_store
from recipe_ml.catalogue.records import RecipeFields, RecipeUpsert
from recipe_ml.config import Settings
from recipe_ml.events.schema import InteractionEvent, InteractionType
from recipe_ml.models.base import Recommender
from recipe_ml.serving.backends import LocalBackend
from recipe_ml.serving.engine import RecommendationEngine
from recipe_ml.serving.errors import UnknownRecipeError
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.schemas import (
    BatchRecipes,
    BatchRequest,
    BulkRecipesRequest,
    ColdStartRequest,
    RecipeRequest,
    SimilarRecipesRequest,
)
from recipe_ml.serving.slot import ModelSlot
from recipe_ml.storage import open_cache, open_catalogue, open_interaction_store
from recipe_ml.storage.base import CatalogueStore
from tests.fixtures.models import closest_fan, fans, known_user

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PEANUT = "contains:peanut"


class FailingBackend:
    """A Two-Tower runner that is down: every call errors, so the chain falls through."""

    name = "two_tower"
    version = "two_tower:down"
    refused = None
    supports_similarity = True
    personalization = "unknown"

    async def rank(self, queries: object) -> object:
        raise ConnectionError("runner is down")

    similar_users = similar_recipes = ping = rank


def engine(*chain: object, redis_url: str | None = None) -> RecommendationEngine:
    settings = Settings(_env_file=None, redis_url=redis_url)  # type: ignore[call-arg]
    return RecommendationEngine(
        chain,  # type: ignore[arg-type]
        cache=open_cache(redis_url),
        store=open_interaction_store(redis_url),
        settings=settings,
        catalogue=open_catalogue(redis_url),
    )


def hide(recipe_id: int, available: bool = False) -> RecipeFields:
    return RecipeFields(available=available, updated_at=datetime.now(UTC))


async def tag_share(eng: RecommendationEngine, recipe_ids: np.ndarray, tag: str, every: int) -> set[int]:
    """Tag every ``every``-th recipe with ``tag`` through the bulk route's logic; the tagged ids."""
    tagged = [int(r) for r in recipe_ids[::every]]
    for start in range(0, len(tagged), 1000):
        chunk = [RecipeUpsert(recipe_id=r, tags=[tag]) for r in tagged[start : start + 1000]]
        await eng.recipes.bulk(BulkRecipesRequest(recipes=chunk))
    return set(tagged)


async def test_hiding_a_users_top_recipe_removes_it_from_the_next_answer_cached_or_not(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity)
    user = known_user(als.slot.ranker.model)
    before = await eng.recommend(RecipeRequest(user_id=user))
    top = before.recommendations[0].recipe_id
    assert (await eng.recommend(RecipeRequest(user_id=user))).cached, "the answer was cached"

    written = await eng.recipes.put(top, hide(top))
    after = await eng.recommend(RecipeRequest(user_id=user))
    await eng.recipes.put(top, hide(top, available=True))
    again = await eng.recommend(RecipeRequest(user_id=user))

    assert written.applied and not written.available
    assert top not in [r.recipe_id for r in after.recommendations] and not after.cached
    assert len(after.recommendations) == 10
    assert again.recommendations[0].recipe_id == top, "available again, it comes back"


async def test_two_engines_on_one_redis_agree_on_a_hidden_recipe(
    als: LocalBackend, popularity: LocalBackend, redis_url: str
) -> None:
    first, second = engine(als, popularity, redis_url=redis_url), engine(als, popularity, redis_url=redis_url)
    user = known_user(als.slot.ranker.model, 3)
    top = (await second.recommend(RecipeRequest(user_id=user))).recommendations[0].recipe_id

    await first.recipes.put(top, hide(top))
    answer = await second.recommend(RecipeRequest(user_id=user))
    await first.recipes.put(top, hide(top, available=True))

    assert top not in [r.recipe_id for r in answer.recommendations]


async def test_exclude_tags_hold_for_training_users_even_with_the_first_model_down(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    model = als.slot.ranker.model
    eng = engine(FailingBackend(), als, popularity)
    peanut = await tag_share(eng, model.items.ids, PEANUT, 10)
    users = [int(u) for u in model.users.ids[::7]]  # every user: tests/test_distributed.py, over HTTP
    answered_by: set[str] = set()

    for start in range(0, len(users), 100):
        batch = await eng.recommend_batch(
            BatchRequest(user_ids=users[start : start + 100], exclude_tags=[PEANUT], diversity=0.0)
        )
        for entry in batch.results:
            assert isinstance(entry, BatchRecipes)
            assert not {r.recipe_id for r in entry.recommendations} & peanut
            answered_by.add(entry.model_used)

    assert answered_by == {"als"}
    cold = await eng.cold_start(ColdStartRequest(exclude_tags=[PEANUT], top_k=50))
    assert cold.model_used == "popularity" and not {r.recipe_id for r in cold.recommendations} & peanut


async def test_require_tags_rank_only_tagged_recipes_and_say_when_the_list_is_short(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    model = als.slot.ranker.model
    eng = engine(als, popularity)
    user = known_user(model, 5)
    vegan = [int(r) for r in model.items.ids[:3]]
    await eng.recipes.bulk(BulkRecipesRequest(recipes=[RecipeUpsert(recipe_id=r, tags=["vegan"]) for r in vegan]))

    answer = await eng.recommend(RecipeRequest(user_id=user, require_tags=["vegan"]))
    nothing = await eng.recommend(RecipeRequest(user_id=user, require_tags=["no-such-tag"]))
    unfiltered = await eng.recommend(RecipeRequest(user_id=user, exclude_tags=["no-such-tag"]))

    assert {r.recipe_id for r in answer.recommendations} <= set(vegan) and answer.exhausted
    assert nothing.recommendations == [] and nothing.exhausted
    assert len(unfiltered.recommendations) == 10 and not unfiltered.exhausted


async def test_similar_recipes_obey_the_filters(als: LocalBackend, popularity: LocalBackend) -> None:
    model = als.slot.ranker.model
    eng = engine(als, popularity)
    recipe = int(model.items.ids[0])
    plain = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=20))
    hidden = plain.similar_recipes[0].recipe_id
    peanut = {r.recipe_id for r in plain.similar_recipes[1:5]}
    await eng.recipes.put(hidden, hide(hidden))
    await eng.recipes.bulk(BulkRecipesRequest(recipes=[RecipeUpsert(recipe_id=r, tags=[PEANUT]) for r in peanut]))

    filtered = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=20, exclude_tags=[PEANUT]))

    shown = {r.recipe_id for r in filtered.similar_recipes}
    assert hidden not in shown and not shown & peanut and len(shown) == 20


async def test_describe_says_what_the_models_and_the_live_interactions_know(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity)
    known = int(popularity.slot.ranker.model.items.ids[0])

    untracked = await eng.recipes.describe(known)
    with pytest.raises(UnknownRecipeError):
        await eng.recipes.describe(2**53 - 1)
    health = await eng.health()

    assert not untracked.in_catalogue and untracked.known_to_models and untracked.live_interactions == 0
    assert health.catalogue.recipes == 0 and health.catalogue.hidden == 0


NEW_RECIPE = 999_999_001
"""An id no model was trained on."""


async def cook(eng: RecommendationEngine, users: list[int], recipe_id: int) -> None:
    for user in users:
        event = InteractionEvent(
            user_id=user, recipe_id=recipe_id, interaction_type=InteractionType.COOK, event_id=f"{user}-{recipe_id}"
        )
        await eng.record_interaction(event)


def popular_index(model: Recommender, rank: int) -> int:
    return int(np.argsort(-np.diff(model.seen.tocsc().indptr), kind="stable")[rank])


async def test_a_recipe_unknown_to_the_models_trends_at_once_and_is_folded_in_from_its_users(
    model_store: Path, popularity: LocalBackend
) -> None:
    two_tower_model, tag = load_from_store("recipe_two_tower", home=model_store)
    two_tower = LocalBackend(ModelSlot(ModelRanker(two_tower_model, tag, fold_in_min_users=3)))
    eng = engine(two_tower, popularity)
    liked = popular_index(two_tower_model, 300)
    users = fans(two_tower_model, liked)[:6]
    similar_user = closest_fan(two_tower_model, liked, users)

    await cook(eng, users[:2], NEW_RECIPE)
    trending = await eng.cold_start(ColdStartRequest(top_k=20))
    unknown_yet = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=int(two_tower_model.items.ids[liked])))
    before = (await eng.health()).catalogue.folded_in
    eng._new = (-1.0, [], frozenset())  # read the store again now, not a second later
    await cook(eng, users[2:], NEW_RECIPE)
    # Another top_k: the first answer is cached for CACHE_TTL_SECONDS (a new recipe does not flush the cache).
    similar = await eng.similar_recipes(
        SimilarRecipesRequest(recipe_id=int(two_tower_model.items.ids[liked]), top_k=11)
    )
    after = (await eng.health()).catalogue.folded_in  # what the query just read
    personal = await eng.recommend(RecipeRequest(user_id=similar_user))
    of_new = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=NEW_RECIPE, top_k=5))
    hidden_tags = await eng.similar_recipes(
        SimilarRecipesRequest(recipe_id=int(two_tower_model.items.ids[liked]), exclude_tags=[PEANUT], top_k=5)
    )

    assert (before, after) == (0, 1), "health counts the recipe once FOLD_IN_MIN_USERS tried it"
    assert NEW_RECIPE in [r.recipe_id for r in trending.recommendations], "two users' cooks: trending at once"
    assert NEW_RECIPE not in [r.recipe_id for r in unknown_yet.similar_recipes], "below FOLD_IN_MIN_USERS"
    assert NEW_RECIPE in [r.recipe_id for r in similar.similar_recipes] and similar.model_used == "two_tower"
    assert NEW_RECIPE in [r.recipe_id for r in personal.recommendations] and personal.model_used == "two_tower"
    assert len(of_new.similar_recipes) == 5 and NEW_RECIPE not in [r.recipe_id for r in of_new.similar_recipes]
    assert hidden_tags.similar_recipes, "filters still apply beside the new recipes"


async def test_als_folds_a_trained_recipe_back_to_its_own_vector(model_store: Path) -> None:
    """The ALS item step from a recipe's training users is the step that fitted it: the same vector."""
    model, _ = load_from_store("recipe_als", home=model_store)
    index = popular_index(model, 500)
    users = model.seen.tocsc()[:, index].indices

    (vector,), bias = model.fold_in_items([users])

    cosine = float(vector @ model.item_vectors[index]) / float(
        np.linalg.norm(vector) * np.linalg.norm(model.item_vectors[index])
    )
    assert bias is None and cosine > 0.99


async def test_the_fresh_slot_shows_a_recently_published_recipe_nobody_has_tried(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity)
    user = known_user(als.slot.ranker.model, 7)
    now = datetime.now(UTC)
    await eng.recipes.put(NEW_RECIPE, RecipeFields(tags=["course:dessert"], published_at=now, updated_at=now))

    answer = await eng.recommend(RecipeRequest(user_id=user, diversity=0.0))
    short = await eng.recommend(RecipeRequest(user_id=user, diversity=0.0, top_k=5))
    excluded = await eng.recommend(RecipeRequest(user_id=user, diversity=0.0, exclude_tags=["course:dessert"]))
    off = await engine_with(als, popularity, fresh_recipe_slots=0).recommend(RecipeRequest(user_id=user, diversity=0.0))

    shown = [r.recipe_id for r in answer.recommendations]
    assert shown[9] == NEW_RECIPE and len(shown) == 10
    assert shown[:9] == [r.recipe_id for r in off.recommendations][:9], "the other positions are the model's"
    assert NEW_RECIPE not in [r.recipe_id for r in short.recommendations], "only the 10th position is fresh"
    assert NEW_RECIPE not in [r.recipe_id for r in excluded.recommendations], "filters hold for the fresh slot"
    assert NEW_RECIPE not in [r.recipe_id for r in off.recommendations]


def engine_with(*chain: object, **overrides: object) -> RecommendationEngine:
    settings = Settings(_env_file=None, **overrides)  # type: ignore[call-arg, arg-type]
    return RecommendationEngine(
        chain,  # type: ignore[arg-type]
        cache=open_cache(None),
        store=open_interaction_store(None),
        settings=settings,
        catalogue=catalogue_with_new_recipe(),
    )


def catalogue_with_new_recipe() -> CatalogueStore:
    store = open_catalogue(None)
    now = datetime.now(UTC)
    store.put([RecipeFields(tags=["course:dessert"], published_at=now, updated_at=now).record(NEW_RECIPE, now)])
    return store
