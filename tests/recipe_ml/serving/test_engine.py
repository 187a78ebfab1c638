"""The engine with real models in-process and real storage backends (no server).

The runner services are stood in for by ``LocalBackend`` (the same
``ModelRanker`` the runners wrap) and, for the fallback chain, by backends
that fail or stall the way a broken runner does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from edge.model_store import load_from_store
from recipe_ml.config import Settings, get_settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.events.schema import RECOMMENDATION_ID, InteractionEvent, InteractionType
from recipe_ml.models.base import Recommender
from recipe_ml.serving.backends import LocalBackend
from recipe_ml.serving.engine import RecommendationEngine
from recipe_ml.serving.errors import NoModelError, UnknownRecipeError, UnknownUserError
from recipe_ml.serving.impressions import Impression, MemorySink
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.schemas import (
    BatchError,
    BatchRecipes,
    BatchRequest,
    ColdStartRequest,
    RecipeRequest,
    RecipeResponse,
    SimilarRecipesRequest,
    SimilarUsersRequest,
)
from recipe_ml.serving.slot import ModelSlot
from recipe_ml.serving.telemetry import FALLBACKS
from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult
from recipe_ml.storage import open_cache, open_interaction_store
from tests.fixtures.models import known_user, training_history

UNKNOWN_USER = 999_999_999
DEAD_REDIS = "redis://127.0.0.1:1/0"


class FailingBackend:
    """A runner whose every call errors (as a crashed runner service does)."""

    name = "broken"
    version = "broken:1"
    refused = None
    supports_similarity = True
    personalization = "unknown"

    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        raise ConnectionError("runner is down")

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]:
        raise ConnectionError("runner is down")

    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]:
        raise ConnectionError("runner is down")

    async def ping(self) -> bool:
        raise ConnectionError("runner is down")


class StalledBackend(FailingBackend):
    """A runner that never answers (as a stopped runner process does)."""

    name = "stalled"

    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        await asyncio.sleep(60)
        raise AssertionError("the engine should have timed out")


# Every engine test but one ranks with the session's trained models (model_store).
pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg, arg-type]


def engine(*chain: object, redis_url: str | None = None, **overrides: object) -> RecommendationEngine:
    return RecommendationEngine(
        chain,  # type: ignore[arg-type]
        cache=open_cache(redis_url),
        store=open_interaction_store(redis_url),
        settings=settings(redis_url=redis_url, **overrides),
    )


def event(user_id: int, recipe_id: int, event_id: str) -> InteractionEvent:
    return InteractionEvent(
        user_id=user_id, recipe_id=recipe_id, interaction_type=InteractionType.COOK, event_id=event_id
    )


def ids(response: RecipeResponse) -> list[int]:
    return [r.recipe_id for r in response.recommendations]


async def test_recommends_unseen_recipes_and_caches_the_answer(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity)
    user = known_user(als.slot.ranker.model)

    first = await eng.recommend(RecipeRequest(user_id=user, top_k=7))
    second = await eng.recommend(RecipeRequest(user_id=user, top_k=7))

    assert first.model_used == "als" and not first.cached
    assert len(ids(first)) == 7 and len(set(ids(first))) == 7
    assert not set(ids(first)) & training_history(als.slot.ranker.model, user)
    assert [r.rank for r in first.recommendations] == list(range(1, 8))
    assert second.cached and ids(second) == ids(first)


async def test_every_request_parameter_is_part_of_the_cache_key(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity)
    user = known_user(als.slot.ranker.model, 1)
    base = await eng.recommend(RecipeRequest(user_id=user, top_k=5, diversity=0.0))

    excluded = await eng.recommend(
        RecipeRequest(user_id=user, top_k=5, diversity=0.0, exclude_recipe_ids=[ids(base)[0]])
    )

    assert not excluded.cached
    assert ids(base)[0] not in ids(excluded)
    assert ids(excluded)[:4] == ids(base)[1:]


async def test_health_filter_only_returns_recipes_with_a_known_low_fsa(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity)
    model = als.slot.ranker.model

    response = await eng.recommend(RecipeRequest(user_id=known_user(model), top_k=10, max_fsa_score=6.0))

    fsa = model.item_fsa[model.items.indices(np.array(ids(response)))]
    assert len(fsa) == 10
    assert np.all(fsa <= 6.0)


async def test_unknown_user_is_an_error_until_their_first_interaction(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity)
    applier = EventApplier(store=eng.store, cache=eng.cache)
    recipe = int(als.slot.ranker.model.items.ids[0])

    with pytest.raises(UnknownUserError, match="cold-start"):
        await eng.recommend(RecipeRequest(user_id=UNKNOWN_USER))
    applier.apply(event(UNKNOWN_USER, recipe, "new-user-1"))
    response = await eng.recommend(RecipeRequest(user_id=UNKNOWN_USER, top_k=5))

    assert response.model_used == "als"
    assert len(ids(response)) == 5 and recipe not in ids(response)


async def test_a_live_interaction_is_excluded_and_changes_the_next_answer(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity)
    applier = EventApplier(store=eng.store, cache=eng.cache)
    user = known_user(als.slot.ranker.model, 2)
    request = RecipeRequest(user_id=user, top_k=10, diversity=0.0)
    before = await eng.recommend(request)

    applier.apply(event(user, ids(before)[0], "live-1"))
    after = await eng.recommend(request)

    assert not after.cached
    assert ids(before)[0] not in ids(after)
    before_scores = {r.recipe_id: r.score for r in before.recommendations}
    after_scores = {r.recipe_id: r.score for r in after.recommendations}
    common = before_scores.keys() & after_scores.keys()
    assert common and any(before_scores[r] != pytest.approx(after_scores[r]) for r in common)  # folded in


async def test_a_failing_model_falls_through_and_is_not_cached(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(FailingBackend(), als, popularity)
    user = known_user(als.slot.ranker.model)
    failures = FALLBACKS.labels("broken", "ConnectionError")
    before = failures._value.get()

    first = await eng.recommend(RecipeRequest(user_id=user))
    second = await eng.recommend(RecipeRequest(user_id=user))

    assert first.model_used == second.model_used == "als"
    assert not second.cached  # only the preferred model's answers are cached
    assert failures._value.get() == before + 2


async def test_a_stalled_model_times_out_to_the_next(popularity: LocalBackend, als: LocalBackend) -> None:
    eng = engine(StalledBackend(), popularity, runner_timeout_seconds=0.05)

    response = await eng.recommend(RecipeRequest(user_id=known_user(als.slot.ranker.model)))

    assert response.model_used == "popularity"


async def test_similar_users_need_a_model_with_user_vectors(als: LocalBackend, popularity: LocalBackend) -> None:
    user = known_user(als.slot.ranker.model)

    response = await engine(FailingBackend(), als, popularity).similar_users(SimilarUsersRequest(user_id=user, top_k=4))

    assert response.model_used == "als"
    assert len(response.similar_users) == 4 and user not in {s.user_id for s in response.similar_users}
    with pytest.raises(NoModelError):
        await engine(FailingBackend(), popularity).similar_users(SimilarUsersRequest(user_id=user))
    with pytest.raises(UnknownUserError):
        await engine(als, popularity).similar_users(SimilarUsersRequest(user_id=UNKNOWN_USER))


async def test_similar_recipes_are_the_nearest_by_cosine_and_cached(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(FailingBackend(), als, popularity)
    model = als.slot.ranker.model
    recipe = int(model.items.ids[0])
    vectors = model.item_vectors / np.linalg.norm(model.item_vectors, axis=1, keepdims=True)
    cosine = vectors @ vectors[0]
    cosine[0] = -np.inf
    expected = model.items.ids[np.argsort(-cosine)[:5]].tolist()

    first = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=5, diversity=0.0))
    second = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=5, diversity=0.0))

    assert first.model_used == "als" and first.recipe_id == recipe and not first.cached
    assert [r.recipe_id for r in first.similar_recipes] == expected
    assert [r.score for r in first.similar_recipes] == sorted((r.score for r in first.similar_recipes), reverse=True)
    assert second.cached is False, "only the first model's answers are cached (ALS answered for a failed runner)"
    direct = engine(als, popularity)
    await direct.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=5))
    assert (await direct.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=5))).cached


async def test_similar_recipes_filters_and_errors(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity)
    model = als.slot.ranker.model
    recipe = int(model.items.ids[0])
    candidates = [int(r) for r in model.items.ids[1:40]]
    plain = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=5))

    excluded = await eng.similar_recipes(
        SimilarRecipesRequest(recipe_id=recipe, top_k=5, exclude_recipe_ids=[plain.similar_recipes[0].recipe_id])
    )
    included = await eng.similar_recipes(
        SimilarRecipesRequest(recipe_id=recipe, top_k=5, include_recipe_ids=[*candidates, recipe, UNKNOWN_USER])
    )
    healthy = await eng.similar_recipes(SimilarRecipesRequest(recipe_id=recipe, top_k=5, max_fsa_score=7))

    assert plain.similar_recipes[0].recipe_id not in {r.recipe_id for r in excluded.similar_recipes}
    assert len(included.similar_recipes) == 5 and {r.recipe_id for r in included.similar_recipes} <= set(candidates)
    fsa = model.item_fsa[model.items.indices(np.asarray([r.recipe_id for r in healthy.similar_recipes]))]
    assert len(fsa) == 5 and (fsa <= 7).all()
    with pytest.raises(UnknownRecipeError) as unknown:
        await eng.similar_recipes(SimilarRecipesRequest(recipe_id=UNKNOWN_USER))
    assert unknown.value.problem().status == 404 and unknown.value.problem().recipe_id == UNKNOWN_USER
    with pytest.raises(NoModelError):
        await engine(popularity).similar_recipes(SimilarRecipesRequest(recipe_id=recipe))


async def test_include_recipe_ids_ranks_only_among_the_candidates(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity)
    user = known_user(als.slot.ranker.model)
    unseen = [
        int(r) for r in als.slot.ranker.model.items.ids if int(r) not in training_history(als.slot.ranker.model, user)
    ]
    candidates = unseen[100:112]

    personal = await eng.recommend(RecipeRequest(user_id=user, top_k=5, include_recipe_ids=candidates))
    batch = await eng.recommend_batch(BatchRequest(user_ids=[user], top_k=5, include_recipe_ids=candidates))
    cold = await eng.cold_start(ColdStartRequest(top_k=5, include_recipe_ids=candidates))
    few = await eng.recommend(RecipeRequest(user_id=user, top_k=5, include_recipe_ids=candidates[:2]))
    nothing = await eng.recommend(RecipeRequest(user_id=user, top_k=5, include_recipe_ids=[]))

    assert len(ids(personal)) == 5 and set(ids(personal)) <= set(candidates)
    (entry,) = batch.results
    assert isinstance(entry, BatchRecipes) and ids(entry) == ids(personal)
    assert len(cold.recommendations) == 5 and {r.recipe_id for r in cold.recommendations} <= set(candidates)
    assert sorted(ids(few)) == sorted(candidates[:2]) and ids(nothing) == []


async def test_batch_answers_each_user_and_shares_the_single_user_cache(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity)
    users = [known_user(als.slot.ranker.model, n) for n in range(3)]
    single = await eng.recommend(RecipeRequest(user_id=users[0], top_k=5))

    batch = await eng.recommend_batch(BatchRequest(user_ids=[users[0], UNKNOWN_USER, users[1], users[2]], top_k=5))

    first, unknown, *rest = batch.results
    assert isinstance(first, BatchRecipes) and first.cached and ids(first) == ids(single)
    assert isinstance(unknown, BatchError) and unknown.status == "error" and unknown.user_id == UNKNOWN_USER
    assert unknown.problem.status == 404 and unknown.problem.user_id == UNKNOWN_USER
    assert all(isinstance(r, RecipeResponse) and r.model_used == "als" and len(r.recommendations) == 5 for r in rest)


async def test_cold_start_blends_trending_into_popularity(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity)
    applier = EventApplier(store=eng.store, cache=eng.cache)
    plain = await eng.cold_start(ColdStartRequest(top_k=10))
    model = popularity.slot.ranker.model
    rare = int(model.items.ids[int(np.argmin(model.item_vectors[:, 0]))])

    for n in range(3):
        applier.apply(event(UNKNOWN_USER + n, rare, f"trend-{n}"))
    trending = await eng.cold_start(ColdStartRequest(top_k=10))

    assert plain.model_used == trending.model_used == "popularity"
    assert rare not in [r.recipe_id for r in plain.recommendations]
    assert trending.recommendations[0].recipe_id == rare


async def test_cold_start_folds_in_a_new_users_first_recipes(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity)
    first_recipes = [int(r) for r in als.slot.ranker.model.items.ids[:3]]

    folded = await eng.cold_start(ColdStartRequest(top_k=8, recent_recipe_ids=first_recipes))
    unknown_ids = await eng.cold_start(ColdStartRequest(top_k=8, recent_recipe_ids=[UNKNOWN_USER]))

    assert folded.model_used == "als"
    assert not {r.recipe_id for r in folded.recommendations} & set(first_recipes)
    assert unknown_ids.model_used == "popularity" and len(unknown_ids.recommendations) == 8


async def test_batch_reads_each_users_live_interactions_from_redis(
    redis_url: str, als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity, redis_url=redis_url, cache_ttl_seconds=0)
    users = [known_user(als.slot.ranker.model, n) for n in range(3)]
    before = (await eng.recommend_batch(BatchRequest(user_ids=users, top_k=5))).results
    tops = [ids(r)[0] for r in before if isinstance(r, RecipeResponse)]
    for n, (user, top) in enumerate(zip(users[:2], tops, strict=False)):
        EventApplier(store=eng.store, cache=eng.cache).apply(event(user, top, f"batch-{n}"))

    after = (await eng.recommend_batch(BatchRequest(user_ids=users, top_k=5))).results

    assert [isinstance(r, RecipeResponse) for r in after] == [True, True, True]
    assert tops[0] not in ids(after[0]) and tops[1] not in ids(after[1])  # type: ignore[arg-type]
    assert ids(after[2]) == ids(before[2])  # type: ignore[arg-type]


async def test_redis_cache_is_shared_and_invalidated_per_user(
    redis_url: str, als: LocalBackend, popularity: LocalBackend
) -> None:
    one, two = engine(als, popularity, redis_url=redis_url), engine(als, popularity, redis_url=redis_url)
    user, other = known_user(als.slot.ranker.model), known_user(als.slot.ranker.model, 1)
    await one.recommend(RecipeRequest(user_id=user))
    await one.recommend(RecipeRequest(user_id=other))

    assert (await two.recommend(RecipeRequest(user_id=user))).cached
    EventApplier(store=two.store, cache=two.cache).apply(event(user, 1, "redis-1"))
    assert not (await one.recommend(RecipeRequest(user_id=user))).cached
    assert (await one.recommend(RecipeRequest(user_id=other))).cached


async def test_a_new_model_version_does_not_serve_old_answers(
    redis_url: str, als: LocalBackend, popularity: LocalBackend
) -> None:
    retrained = LocalBackend(ModelSlot(ModelRanker(als.slot.ranker.model, "recipe_als:newer")))
    user = known_user(als.slot.ranker.model)
    await engine(als, popularity, redis_url=redis_url).recommend(RecipeRequest(user_id=user))

    response = await engine(retrained, popularity, redis_url=redis_url).recommend(RecipeRequest(user_id=user))

    assert not response.cached


async def test_answers_follow_a_swap_and_never_serve_the_old_versions_cache(
    redis_url: str, als: LocalBackend, popularity: LocalBackend
) -> None:
    slot = ModelSlot(ModelRanker(als.slot.ranker.model, "recipe_als:old"))
    eng = engine(LocalBackend(slot), popularity, redis_url=redis_url)
    user = known_user(als.slot.ranker.model)
    before = await eng.recommend(RecipeRequest(user_id=user))
    assert before.model_version == "recipe_als:old" and (await eng.recommend(RecipeRequest(user_id=user))).cached

    slot.swap(ModelRanker(als.slot.ranker.model, "recipe_als:new"))

    after = await eng.recommend(RecipeRequest(user_id=user))
    similar = await eng.similar_users(SimilarUsersRequest(user_id=user))
    assert not after.cached and after.model_version == "recipe_als:new" == similar.model_version
    assert (await eng.recommend(RecipeRequest(user_id=user))).cached
    cold = await eng.cold_start(ColdStartRequest())
    assert cold.model_version == popularity.version


class SwappedBehindTheEngine(LocalBackend):
    """A runner that swapped to a new version the engine has not heard of yet (no ping since)."""

    @property
    def version(self) -> str:
        return "recipe_als:as-last-pinged"


async def test_an_answer_of_a_version_the_key_does_not_name_is_not_cached(
    redis_url: str, als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(SwappedBehindTheEngine(als.slot), popularity, redis_url=redis_url)
    user = known_user(als.slot.ranker.model)

    first = await eng.recommend(RecipeRequest(user_id=user))
    second = await eng.recommend(RecipeRequest(user_id=user))

    assert first.model_version == als.version and not second.cached


async def test_health_names_a_refused_version_and_why(als: LocalBackend, popularity: LocalBackend) -> None:
    slot = ModelSlot(als.slot.ranker)
    slot.refuse("recipe_als:broken", "failed to load: ValueError: truncated")

    health = await engine(LocalBackend(slot), popularity).health()

    assert health.status == "ok" and health.models == {"als": als.version, "popularity": popularity.version}
    assert health.model_dump()["refused"] == {
        "als": {"version": "recipe_als:broken", "reason": "failed to load: ValueError: truncated"}
    }


async def test_redis_outage_degrades_but_never_fails(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity, redis_url=DEAD_REDIS)
    user = known_user(als.slot.ranker.model)

    response = await eng.recommend(RecipeRequest(user_id=user))
    batch = await eng.recommend_batch(BatchRequest(user_ids=[user, known_user(als.slot.ranker.model, 1)]))
    cold = await eng.cold_start(ColdStartRequest())
    health = await eng.health()

    assert response.model_used == "als" and len(response.recommendations) == 10
    assert all(isinstance(r, RecipeResponse) and len(r.recommendations) == 10 for r in batch.results)
    assert len(cold.recommendations) == 10
    assert health.status == "degraded" and health.redis == "unreachable"


async def test_health_reports_versions_and_unreachable_parts(als: LocalBackend, popularity: LocalBackend) -> None:
    healthy = await engine(als, popularity).health()
    broken = await engine(FailingBackend(), als, popularity, kafka_bootstrap_servers="127.0.0.1:1").health()

    assert healthy.model_dump() == {
        "status": "ok",
        "models": {"als": als.version, "popularity": popularity.version},
        "refused": {},
        "personalization": {
            "als": "no personal scorer: the model's own ranking",
            "popularity": "none: the same ranking for every user",
        },
        "redis": "not configured",
        "kafka": "not configured",
        "experiment": None,
        "catalogue": {"recipes": 0, "hidden": 0, "version": 0, "folded_in": 0},
    }
    assert broken.status == "degraded"
    assert broken.models == {"broken": "unavailable", "als": als.version, "popularity": popularity.version}
    assert broken.kafka == "unreachable"


@pytest.fixture(scope="module")
def two_tower(model_store: Path) -> Recommender:
    model, _ = load_from_store("recipe_two_tower", home=model_store)
    return model


async def test_the_two_tower_answers_with_its_personal_scorer_and_honours_personalization(
    two_tower: Recommender, popularity: LocalBackend
) -> None:
    eng = engine(LocalBackend(ModelSlot(ModelRanker(two_tower, "recipe_two_tower:t"))), popularity)
    user = known_user(two_tower, 3)

    default = await eng.recommend(RecipeRequest(user_id=user, diversity=0.0))
    popular = await eng.recommend(RecipeRequest(user_id=user, diversity=0.0, personalization=0.0))
    personal = await eng.recommend(RecipeRequest(user_id=user, diversity=0.0, personalization=1.0))

    assert default.model_used == popular.model_used == "two_tower"
    assert default.personalized_by == popular.personalized_by == "ease"
    personalization = (await eng.health()).personalization
    assert personalization["two_tower"].startswith("ease scorer, adaptive positions")
    assert ids(popular) != ids(personal) and not (set(ids(personal)) & training_history(two_tower, user))
    assert personal.recommendations[0].recipe_id != popular.recommendations[0].recipe_id


async def test_a_two_tower_trained_without_a_personal_scorer_falls_back_and_says_so(
    two_tower: Recommender, popularity: LocalBackend, tmp_path: Path
) -> None:
    without = copy.copy(two_tower)
    without.personal = without.policy = None
    without.save(tmp_path / "no_personal")
    loaded = Recommender.load(tmp_path / "no_personal")
    eng = engine(LocalBackend(ModelSlot(ModelRanker(loaded, "recipe_two_tower:old"))), popularity)

    response = await eng.recommend(RecipeRequest(user_id=known_user(loaded, 3), diversity=0.0))
    health = await eng.health()

    assert loaded.personal is None and response.model_used == "two_tower"
    assert len(response.recommendations) == 10
    personalization = health.personalization["two_tower"]
    assert personalization == "no personal scorer: fallback, 1 position(s) by the model's own affinity"


def test_an_empty_chain_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        engine()


def experiment_file(tmp_path: Path) -> Path:
    path = tmp_path / "experiment.json"
    path.write_text(
        json.dumps(
            {
                "name": "shipped-vs-popularity",
                "salt": "s1",
                "variants": [
                    {"name": "shipped", "weight": 1},
                    {"name": "popular", "weight": 1, "overrides": {"first_model": "popularity", "diversity": 0.0}},
                ],
            }
        )
    )
    return path


def shown(eng: RecommendationEngine) -> list[Impression]:
    sink = eng.impressions.sink
    assert isinstance(sink, MemorySink)
    eng.impressions.close()  # everything published is written
    return [record for record in sink.records() if isinstance(record, Impression)]


async def test_every_answer_has_its_own_id_and_is_logged_as_shown(als: LocalBackend, popularity: LocalBackend) -> None:
    eng = engine(als, popularity)
    user, other = known_user(als.slot.ranker.model), known_user(als.slot.ranker.model, 1)

    answers = [
        await eng.recommend(RecipeRequest(user_id=user)),
        await eng.recommend(RecipeRequest(user_id=user)),  # a cache hit: a new id all the same
        *(await eng.recommend_batch(BatchRequest(user_ids=[other, UNKNOWN_USER]))).results[:1],
        await eng.cold_start(ColdStartRequest()),
        await eng.similar_recipes(
            SimilarRecipesRequest(recipe_id=ids(await eng.recommend(RecipeRequest(user_id=other)))[0])
        ),
    ]
    records = shown(eng)

    assert not any(isinstance(answer, BatchError) for answer in answers)
    assert answers[1].cached  # type: ignore[union-attr]
    rids = [answer.recommendation_id for answer in answers]  # type: ignore[union-attr]
    assert len(set(rids)) == len(rids) and all(re.fullmatch(RECOMMENDATION_ID, rid) for rid in rids)
    assert {answer.variant for answer in answers} == {"default"}  # type: ignore[union-attr]
    by_id = {record.recommendation_id: record for record in records}
    assert len(records) == 6 and set(rids) <= set(by_id)
    assert [by_id[rid].endpoint for rid in rids] == ["recipes", "recipes", "batch", "cold_start", "similar_recipes"]
    first = by_id[rids[0]]
    assert (first.user_id, first.model, first.variant, list(first.recipe_ids)) == (
        user,
        "als",
        "default",
        ids(answers[0]),  # type: ignore[arg-type]
    )


async def test_with_the_impression_log_off_nothing_is_logged_or_kept_and_answers_keep_their_ids(
    als: LocalBackend, popularity: LocalBackend
) -> None:
    eng = engine(als, popularity, impression_log_enabled=False)
    user = known_user(als.slot.ranker.model)

    answer = await eng.recommend(RecipeRequest(user_id=user))

    assert re.fullmatch(RECOMMENDATION_ID, answer.recommendation_id) and answer.variant == "default"
    assert shown(eng) == []
    assert eng.store.shown(answer.recommendation_id) is None, "no list kept: nothing to attribute"


async def test_each_user_is_served_by_the_variant_assigned_or_forced(
    als: LocalBackend, popularity: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = experiment_file(tmp_path)
    eng = engine(als, popularity, experiments=path)
    users = [known_user(als.slot.ranker.model, n) for n in range(12)]
    monkeypatch.setenv("EXPERIMENTS", str(path))  # what requests are validated against
    get_settings.cache_clear()
    try:
        forced_request = RecipeRequest(user_id=users[0], variant="popular")
    finally:
        monkeypatch.delenv("EXPERIMENTS")
        get_settings.cache_clear()

    batch = await eng.recommend_batch(BatchRequest(user_ids=users))
    forced = await eng.recommend(forced_request)
    health = await eng.health()
    records = shown(eng)

    expected = {user: eng.experiment.assign(user).name for user in users}
    assert set(expected.values()) == {"shipped", "popular"}, "12 users fall in both halves"
    for entry in batch.results:
        assert isinstance(entry, BatchRecipes)
        assert entry.variant == expected[entry.user_id]
        assert entry.model_used == ("popularity" if entry.variant == "popular" else "als")
    assert forced.variant == "popular" and forced.model_used == "popularity"
    assert {(r.user_id, r.variant) for r in records if r.endpoint == "batch"} == set(expected.items())
    assert health.experiment is not None and health.experiment.model_dump() == {
        "name": "shipped-vs-popularity",
        "variants": [
            {"name": "shipped", "weight": 1.0, "overrides": {}},
            {"name": "popular", "weight": 1.0, "overrides": {"first_model": "popularity", "diversity": 0.0}},
        ],
    }
