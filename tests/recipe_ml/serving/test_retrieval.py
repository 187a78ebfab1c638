"""Candidate retrieval in the runners' ranking: bit-identical below ANN_MIN_RECIPES, exact scoring's answers above."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.model_store import load_from_store
from harness.catalogue import Shape, SyntheticRecommender, draw_model
from recipe_ml.config import Settings
from recipe_ml.models.base import INDEX_DIR, Recommender
from recipe_ml.retrieval.base import IndexParams
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.wire import RankQuery, RankResult
from tests.fixtures.models import known_user

N_ITEMS, N_USERS, DIM = 10_000, 300, 32


def answers(ranker: ModelRanker, queries: list[RankQuery]) -> list[tuple[list[int], list[float]]]:
    return [(r.recipe_ids, r.scores) for r in ranker.rank(queries)]


def variety(model: Recommender) -> list[RankQuery]:
    """Queries that take every path of the ranking: filters, exclusions, live recipes, boosts, MMR, personalisation."""
    ids = model.items.ids
    users = [known_user(model, n) for n in range(6)]
    return [
        RankQuery(user_id=users[0], top_k=10),
        RankQuery(user_id=users[1], top_k=25, diversity=0.3),
        RankQuery(user_id=users[2], max_fsa_score=8.0, exclude_recipe_ids=ids[:40].tolist()),
        RankQuery(user_id=users[3], include_recipe_ids=ids[::7].tolist(), diversity=0.5),
        RankQuery(user_id=users[4], live_recipe_ids=ids[100:103].tolist(), personalization=0.5),
        RankQuery(user_id=users[5], boost={int(ids[-1]): 3.0}, top_k=5),
        RankQuery(live_recipe_ids=ids[200:204].tolist()),
        RankQuery(user_id=999_999_999),
    ]


@pytest.mark.integration  # trains the session's models (model_store)
@pytest.mark.parametrize("kind", ["two_tower", "als"])
def test_below_the_threshold_the_index_changes_no_answer_by_a_bit(model_store: Path, kind: str) -> None:
    """The trained model carries its index; with today's catalogue below ANN_MIN_RECIPES nothing reads it."""
    model, tag = load_from_store(f"recipe_{kind}", home=model_store)
    assert model.index is not None and len(model.index) == len(model.items)
    assert len(model.items) < Settings().ann_min_recipes
    without = copy.copy(model)
    without.index = None

    served = ModelRanker(model, tag, ann_min_recipes=Settings().ann_min_recipes)
    exact = ModelRanker(without, tag, ann_min_recipes=None)

    for query in variety(model):  # alone and in one batch: both are how runners answer
        assert answers(served, [query]) == answers(exact, [query])
    assert answers(served, variety(model)) == answers(exact, variety(model))


@pytest.fixture(scope="module")
def catalogue() -> SyntheticRecommender:
    """10k recipes drawn with a bias and norms spread as the Two-Tower's, with its index (fast build)."""
    rng = np.random.default_rng(0)
    shape = Shape(
        kind="synthetic",
        item_mean=np.zeros(DIM),
        item_basis=np.diag(np.linspace(1.0, 0.2, DIM)),
        item_norms=rng.lognormal(1.0, 0.15, 2000),
        item_bias=rng.gamma(2.0, 0.6, 2000),
        user_mean=np.zeros(DIM),
        user_basis=np.eye(DIM),
        user_norms=rng.lognormal(-1.0, 0.3, 2000),
        history_lengths=rng.integers(1, 60, 2000),
    )
    model = draw_model(shape, N_ITEMS, N_USERS, seed=1)
    model.build_index(IndexParams(expansion_add=64))
    return model


def recall_at_10(found: list[RankResult], exact: list[RankResult]) -> float:
    pairs = [(set(f.recipe_ids), set(e.recipe_ids)) for f, e in zip(found, exact, strict=True) if e.recipe_ids]
    return float(np.mean([len(f & e) / len(e) for f, e in pairs]))


@pytest.mark.parametrize("share", [1.0, 0.5, 0.1, 0.01, 0.001])
def test_above_the_threshold_the_index_answers_as_exact_scoring(catalogue: SyntheticRecommender, share: float) -> None:
    rng = np.random.default_rng(2)
    include = (
        None
        if share == 1.0
        else catalogue.items.ids[rng.choice(N_ITEMS, max(int(N_ITEMS * share), 10), replace=False)].tolist()
    )
    queries = [
        RankQuery(user_id=int(user), top_k=10, diversity=0.3, include_recipe_ids=include)
        for user in catalogue.users.ids[:100]
    ]
    ann = ModelRanker(catalogue, "synthetic", ann_min_recipes=N_ITEMS)
    exact = ModelRanker(catalogue, "synthetic", ann_min_recipes=None)

    found, expected = ann.rank(queries), exact.rank(queries)

    assert recall_at_10(found, expected) >= 0.95
    assert [len(r.recipe_ids) for r in found] == [len(r.recipe_ids) for r in expected]
    if share >= 0.1:  # retrieval did answer: each query scored a few hundred recipes, not 10k
        groups = ann._column_groups(
            queries, catalogue.user_vectors[:100], np.ones(100, dtype=bool), [catalogue.history(u) for u in range(100)]
        )
        assert all(columns is not None and len(columns) < N_ITEMS // 2 for _, columns in groups)


def test_above_the_threshold_filters_exclusions_and_boosts_hold(catalogue: SyntheticRecommender) -> None:
    ids = catalogue.items.ids
    user = int(catalogue.users.ids[0])
    ann = ModelRanker(catalogue, "synthetic", ann_min_recipes=N_ITEMS)
    exact = ModelRanker(catalogue, "synthetic", ann_min_recipes=None)
    top = ann.rank([RankQuery(user_id=user)])[0].recipe_ids
    worst = int(ids[np.argmin(catalogue.score(catalogue.user_vectors[:1])[0])])
    queries = [
        RankQuery(user_id=user, exclude_recipe_ids=top[:5]),
        RankQuery(user_id=user, max_fsa_score=5.0),
        RankQuery(user_id=user, boost={worst: 100.0}),
        RankQuery(user_id=user, live_recipe_ids=top[:2]),
    ]

    found = ann.rank(queries)

    assert not set(found[0].recipe_ids) & set(top[:5])
    fsa = dict(zip(ids.tolist(), catalogue.item_fsa.tolist(), strict=True))
    assert all(fsa[r] <= 5.0 for r in found[1].recipe_ids)
    assert found[2].recipe_ids[0] == worst, "a boosted recipe is scored even if the index would not find it"
    assert not set(found[3].recipe_ids) & set(top[:2])
    assert recall_at_10(found, exact.rank(queries)) >= 0.95


@pytest.mark.integration  # trains the session's models (model_store)
def test_an_index_of_another_model_is_refused_at_load_and_exact_scoring_serves(
    model_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ALS and Two-Tower are trained on the same recipes (same count, same dimension): only the vectors differ."""
    two_tower, tag = load_from_store("recipe_two_tower", home=model_store)
    als, _ = load_from_store("recipe_als", home=model_store)
    two_tower.save(tmp_path / "tt")
    als.save(tmp_path / "als")
    shutil.rmtree(tmp_path / "tt" / INDEX_DIR)
    shutil.copytree(tmp_path / "als" / INDEX_DIR, tmp_path / "tt" / INDEX_DIR)

    with caplog.at_level(logging.WARNING, logger="recipe_ml.models.base"):
        loaded = Recommender.load(tmp_path / "tt")

    assert loaded.index is None
    assert "recipe index refused, serving by exact scoring" in caplog.text
    assert "index built from other recipe vectors than the two_tower model's" in caplog.text
    queries = variety(loaded)
    served = ModelRanker(loaded, tag, ann_min_recipes=1)  # even asked to use an index, it has none: exact
    assert answers(served, queries) == answers(ModelRanker(two_tower, tag, ann_min_recipes=None), queries)
