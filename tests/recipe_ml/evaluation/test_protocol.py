"""Offline ranking equals serving: the same policy (MMR, personal slots) on a real slice."""

from __future__ import annotations

import numpy as np
import pytest

from recipe_ml.data import Interactions
from recipe_ml.evaluation.protocol import evaluate, rank_users
from recipe_ml.models.base import Recommender
from recipe_ml.models.two_tower import TwoTowerRecommender
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.schemas import RankQuery


@pytest.fixture(scope="module")
def two_tower(small_splits: dict[str, Interactions]) -> Recommender:
    model = TwoTowerRecommender(epochs=2)
    model.fit(small_splits["train"])
    return model


@pytest.mark.parametrize("diversity", [0.0, 0.3])
@pytest.mark.parametrize("slots", [0, 2])
def test_offline_ranking_is_what_a_user_is_served(two_tower: Recommender, diversity: float, slots: int) -> None:
    two_tower.personal_slots = slots
    users = np.arange(25)

    offline = rank_users(two_tower, users, 10, two_tower.seen, diversity)

    ranker = ModelRanker(two_tower, "test")
    queries = [RankQuery(user_id=int(two_tower.users.ids[u]), top_k=10, diversity=diversity) for u in users]
    served = [two_tower.items.indices(np.asarray(r.recipe_ids)).tolist() for r in ranker.recommend(queries)]
    assert offline.tolist() == served


def test_personal_slots_buy_coverage(two_tower: Recommender, small_splits: dict[str, Interactions]) -> None:
    two_tower.personal_slots = 0
    without = evaluate(two_tower, small_splits["train"], small_splits["validation"])
    two_tower.personal_slots = 2
    with_slots = evaluate(two_tower, small_splits["train"], small_splits["validation"])
    assert with_slots["coverage@10"] > 2 * without["coverage@10"]
