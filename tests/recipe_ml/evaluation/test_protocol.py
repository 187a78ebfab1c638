"""Offline evaluation on a real slice: serving's answers, the new metrics, the quartiles, the policy fit."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from recipe_ml.data import Histories, Interactions
from recipe_ml.evaluation.policy import AffinityScorer, fit_policy
from recipe_ml.evaluation.protocol import METRICS, activity_quartiles, evaluate, rank_users
from recipe_ml.models.als import ALSRecommender
from recipe_ml.models.base import Recommender
from recipe_ml.models.ease import EASEScorer
from recipe_ml.models.popularity import PopularityRecommender
from recipe_ml.models.two_tower import TwoTowerRecommender
from recipe_ml.ranking import PersonalPolicy
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.wire import RankQuery

POLICY = PersonalPolicy(blend_weight=500.0, intercept=2.0, per_doubling=1.0)


@pytest.fixture(scope="module")
def two_tower(small_splits: dict[str, Interactions]) -> Recommender:
    model = TwoTowerRecommender(epochs=2)
    model.fit(small_splits["train"])
    return model


@pytest.fixture(scope="module")
def with_ease(two_tower: Recommender, small_splits: dict[str, Interactions]) -> Recommender:
    model = copy.copy(two_tower)
    scorer = EASEScorer(neighbours=200)
    scorer.fit(small_splits["train"].matrix())
    model.attach_personal(scorer, POLICY)
    return model


@pytest.mark.parametrize("diversity", [0.0, 0.3])
@pytest.mark.parametrize("personal", [False, True])
def test_offline_ranking_is_what_a_user_is_served(
    two_tower: Recommender, with_ease: Recommender, diversity: float, personal: bool
) -> None:
    model = with_ease if personal else two_tower
    users = np.arange(25)

    offline = rank_users(model, users, 10, model.seen, diversity)

    queries = [RankQuery(user_id=int(model.users.ids[u]), top_k=10, diversity=diversity) for u in users]
    served = [model.items.indices(np.asarray(r.recipe_ids)).tolist() for r in ModelRanker(model, "t").rank(queries)]
    assert offline.tolist() == served


def test_the_personal_scorer_makes_lists_personal(
    two_tower: Recommender, with_ease: Recommender, small_splits: dict[str, Interactions]
) -> None:
    train, validation = small_splits["train"], small_splits["validation"]
    alone = evaluate(two_tower, train, validation).overall
    personal = evaluate(with_ease, train, validation).overall

    assert set(personal) == set(METRICS)
    assert personal["personalisation@10"] > alone["personalisation@10"] + 0.2
    assert personal["coverage@10"] > 2 * alone["coverage@10"]
    none = evaluate(with_ease, train, validation, personalization=0.0).overall
    assert none["personalisation@10"] < personal["personalisation@10"]


def test_quartiles_split_users_by_training_ratings(
    with_ease: Recommender, small_splits: dict[str, Interactions]
) -> None:
    train = small_splits["train"]
    users = np.arange(len(train.users))
    quartile = activity_quartiles(train, users)
    lengths = np.diff(train.matrix().indptr)

    assert np.bincount(quartile).tolist() == [len(users) // 4] * 4
    assert all(lengths[quartile == q].max() <= lengths[quartile == q + 1].min() for q in range(3))
    detail = evaluate(with_ease, train, small_splits["validation"])
    assert [q["min_ratings"] for q in detail.quartiles] == sorted(q["min_ratings"] for q in detail.quartiles)
    assert detail.per_user_ndcg20.mean() == pytest.approx(detail.overall["ndcg@20"])


def test_policy_fit_keeps_the_best_feasible_rule_and_leaves_the_model_as_it_was(
    with_ease: Recommender, small_splits: dict[str, Interactions]
) -> None:
    train, validation = small_splits["train"], small_splits["validation"]
    popularity = PopularityRecommender(weighting="count")
    popularity.fit(train)
    baseline = evaluate(popularity, train, validation).per_user_ndcg20

    fit = fit_policy(with_ease, train, validation, baseline, blend_weights=(500.0,))

    assert with_ease.policy == POLICY
    assert [m["positions"] for m in fit.fixed[500.0]] == list(range(11))
    feasible = [
        c for c in fit.candidates if c.metrics["personalisation@10"] >= 0.55 and c.metrics["coverage@10"] >= 0.15
    ]
    assert fit.best in (feasible or fit.candidates)
    assert fit.best.metrics["ndcg@20"] == max(c.metrics["ndcg@20"] for c in (feasible or fit.candidates))
    assert len(fit.held_out_gain) == 2


def test_another_models_affinity_can_fill_the_personal_positions_for_comparison(
    two_tower: Recommender, small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    als = ALSRecommender(factors=16, iterations=3)
    als.fit(small_splits["train"])
    candidate = copy.copy(two_tower)
    candidate.attach_personal(AffinityScorer(als), PersonalPolicy(0.0, 0.0, 0.0))

    inputs = candidate.rank_inputs(candidate.user_vectors[:3], Histories.of_matrix(candidate.seen[:3]))

    assert inputs.personal is not None
    expected = als.affinity(als.fold_in([als.history(u) for u in range(3)]))
    assert expected is not None
    np.testing.assert_allclose(inputs.personal, expected)
    np.testing.assert_array_equal(inputs.ranking, inputs.scores)  # blend weight 0: the head is the Two-Tower's
    with pytest.raises(NotImplementedError, match="never shipped"):
        candidate.save(tmp_path / "m")
    with pytest.raises(NotImplementedError, match="recipes of the evaluation only"):
        candidate.fold_in_recipes([np.arange(3)])
    popularity = PopularityRecommender()
    popularity.fit(small_splits["train"])
    with pytest.raises(ValueError, match="popularity has no per-user affinity"):
        AffinityScorer(popularity).scores(Histories.of_matrix(candidate.seen[:1]))
