"""The runner services' code, called in-process on the fixture's real models.

Over HTTP (adaptive batching, fallbacks) they are exercised by
``tests/test_service.py``; here: a batch answers exactly what single queries
answer, whichever mix of users it holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_ml.config import Settings
from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult
from runners.als import ALSRunner
from runners.base import RankerRunner, batching_options, service_options
from runners.two_tower import TwoTowerRunner

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture(scope="module", params=[TwoTowerRunner, ALSRunner], ids=["two_tower", "als"])
def runner(request: pytest.FixtureRequest, model_store: Path) -> RankerRunner:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(model_store))
        instance: RankerRunner = request.param.inner()
    return instance


def same(batched: list[RankResult] | list[SimilarResult], single: list[RankResult] | list[SimilarResult]) -> None:
    """Equal answers; scores up to float32 noise (BLAS sums a batch in another order)."""
    assert len(batched) == len(single)
    for one, other in zip(batched, single, strict=True):
        assert one.model_dump(exclude={"scores"}) == other.model_dump(exclude={"scores"})
        assert one.model_dump()["scores"] == pytest.approx(other.model_dump()["scores"], rel=1e-5, abs=1e-6)


async def test_info_names_the_loaded_model(runner: RankerRunner) -> None:
    info = await runner.info()

    assert info["kind"] == runner.slot.ranker.model.kind
    assert info["version"].startswith(f"recipe_{info['kind']}:")


async def test_a_batch_answers_what_single_queries_answer(runner: RankerRunner) -> None:
    model = runner.slot.ranker.model
    users = [int(u) for u in model.users.ids[:3]]
    recipes = [int(r) for r in model.items.ids[:2]]
    queries = [
        RankQuery(user_id=users[0], top_k=5),
        RankQuery(user_id=users[1], top_k=3, live_recipe_ids=recipes),
        RankQuery(user_id=999_999_999),
        RankQuery(user_id=None, live_recipe_ids=recipes, top_k=4, diversity=0.5),
        RankQuery(user_id=users[2], top_k=6, max_fsa_score=8.0, exclude_recipe_ids=recipes),
    ]

    batched = await runner.rank(queries)

    same(batched, [(await runner.rank([query]))[0] for query in queries])
    assert [r.found for r in batched] == [True, True, False, True, True]
    assert [len(r.recipe_ids) for r in batched] == [5, 3, 0, 4, 6]
    assert not set(batched[1].recipe_ids) & set(recipes)


async def test_similar_users_batch_matches_single_queries(runner: RankerRunner) -> None:
    users = [int(u) for u in runner.slot.ranker.model.users.ids[:2]]
    queries = [
        SimilarQuery(user_id=users[0], top_k=3),
        SimilarQuery(user_id=999_999_999),
        SimilarQuery(user_id=users[1]),
    ]

    batched = await runner.similar_users(queries)

    same(batched, [(await runner.similar_users([query]))[0] for query in queries])
    assert [r.found for r in batched] == [True, False, True]
    assert users[0] not in batched[0].user_ids and len(batched[0].user_ids) == 3


async def test_similar_recipes_batch_matches_single_queries(runner: RankerRunner) -> None:
    recipes = [int(r) for r in runner.slot.ranker.model.items.ids[:40]]
    queries = [
        SimilarRecipeQuery(recipe_id=recipes[0], top_k=3),
        SimilarRecipeQuery(recipe_id=999_999_999),
        SimilarRecipeQuery(recipe_id=recipes[1], top_k=4, diversity=0.5, exclude_recipe_ids=recipes[2:4]),
        SimilarRecipeQuery(recipe_id=recipes[4], top_k=5, include_recipe_ids=recipes[10:40], max_fsa_score=9.0),
    ]

    batched = await runner.similar_recipes(queries)

    same(batched, [(await runner.similar_recipes([query]))[0] for query in queries])
    assert [r.found for r in batched] == [True, False, True, True]
    assert recipes[0] not in batched[0].recipe_ids and len(batched[0].recipe_ids) == 3
    assert not set(batched[2].recipe_ids) & set(recipes[1:4])
    assert set(batched[3].recipe_ids) <= set(recipes[10:40])


async def test_ids_beyond_int64_from_live_events_are_ignored(runner: RankerRunner) -> None:
    user = int(runner.slot.ranker.model.users.ids[0])
    huge = 2**70

    (result,) = await runner.rank(
        [RankQuery(user_id=user, top_k=3, live_recipe_ids=[huge], exclude_recipe_ids=[huge], boost={huge: 1.0})]
    )
    (plain,) = await runner.rank([RankQuery(user_id=user, top_k=3)])

    assert result.recipe_ids == plain.recipe_ids


def test_the_batching_limits_and_service_options_follow_the_settings() -> None:
    settings = Settings(_env_file=None, max_batch_size=300, runner_timeout_seconds=0.5)  # type: ignore[call-arg]

    assert batching_options(settings) == {"max_batch_size": 300, "max_latency_ms": 250}
    assert batching_options(Settings(_env_file=None))["max_batch_size"] == 128  # type: ignore[call-arg]
    assert service_options(settings)["traffic"] == {"timeout": 0.5}
