"""Attribution: an interaction naming an answer is counted for that answer's variant, model and rank, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from recipe_ml.events.applier import EventApplier
from recipe_ml.events.attribution import UNATTRIBUTED_REASONS, Attribution, AttributionMetrics, Attributor
from recipe_ml.events.schema import InteractionEvent, InteractionType, new_recommendation_id
from recipe_ml.storage.base import InteractionStore, ShownList
from recipe_ml.storage.memory import MemoryCache, MemoryInteractionStore
from recipe_ml.storage.redis import RedisInteractionStore

WINDOW = 3600.0
SHOWN_AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> InteractionStore:
    if request.param == "memory":
        return MemoryInteractionStore(24.0)
    return RedisInteractionStore(request.getfixturevalue("redis_url"), 24.0)


class Setup:
    """An attributor over ``store`` whose records land in ``published`` and counters in ``registry``."""

    def __init__(self, store: InteractionStore) -> None:
        self.registry = CollectorRegistry()
        self.published: list[Attribution] = []
        self.attributor = Attributor(store, self.published.append, AttributionMetrics(self.registry), WINDOW)
        self.store = store

    def show(self, recipes: tuple[int, ...], variant: str = "control") -> str:
        recommendation_id = new_recommendation_id()
        shown = ShownList(recommendation_id, "recipes", variant, "two_tower", recipes, SHOWN_AT.timestamp())
        self.store.remember_shown([shown], ttl_seconds=600)
        return recommendation_id

    def attributed(self, variant: str = "control", kind: str = "cook") -> float:
        labels = {"endpoint": "recipes", "variant": variant, "model": "two_tower", "interaction_type": kind}
        return self.registry.get_sample_value("recipe_attributed_interactions_total", labels) or 0.0

    def unattributed(self, reason: str) -> float:
        value = self.registry.get_sample_value("recipe_unattributed_interactions_total", {"reason": reason})
        assert value is not None, f"the {reason} counter exists from the start"
        return value


def cook(recipe: int, recommendation_id: str | None, after: timedelta = timedelta(minutes=5)) -> InteractionEvent:
    return InteractionEvent(
        user_id=7,
        recipe_id=recipe,
        interaction_type=InteractionType.COOK,
        timestamp=SHOWN_AT + after,
        recommendation_id=recommendation_id,
    )


def test_an_interaction_with_a_shown_recipe_is_attributed_to_its_rank_variant_and_model(
    store: InteractionStore,
) -> None:
    setup = Setup(store)
    recommendation_id = setup.show((11, 22, 33), variant="treatment")

    attribution = setup.attributor.attribute(cook(33, recommendation_id))

    assert attribution is not None
    assert (attribution.rank, attribution.variant, attribution.model) == (3, "treatment", "two_tower")
    assert setup.published == [attribution]
    assert attribution.record() == {
        "kind": "attribution",
        "recommendationId": recommendation_id,
        "endpoint": "recipes",
        "variant": "treatment",
        "model": "two_tower",
        "userId": 7,
        "recipeId": 33,
        "interactionType": "cook",
        "rank": 3,
        "timestamp": attribution.timestamp.isoformat(),
    }
    assert setup.attributed("treatment") == 1
    rank_labels = {"endpoint": "recipes", "variant": "treatment"}
    assert setup.registry.get_sample_value("recipe_attributed_rank_sum", rank_labels) == 3
    assert all(setup.unattributed(reason) == 0 for reason in UNATTRIBUTED_REASONS)


@pytest.mark.parametrize(
    ("reason", "recipe", "after", "known"),
    [
        ("unknown", 11, timedelta(minutes=5), False),
        ("expired", 11, timedelta(seconds=WINDOW + 1), True),
        ("not_shown", 99, timedelta(minutes=5), True),
    ],
)
def test_an_interaction_no_kept_answer_explains_is_counted_unattributed_by_reason(
    store: InteractionStore, reason: str, recipe: int, after: timedelta, known: bool
) -> None:
    setup = Setup(store)
    recommendation_id = setup.show((11, 22)) if known else new_recommendation_id()

    assert setup.attributor.attribute(cook(recipe, recommendation_id, after)) is None

    assert setup.unattributed(reason) == 1
    assert sum(setup.unattributed(other) for other in UNATTRIBUTED_REASONS) == 1
    assert setup.published == []
    assert setup.attributed() == 0


def test_an_interaction_without_a_recommendation_id_is_not_counted_at_all() -> None:
    setup = Setup(MemoryInteractionStore(24.0))
    assert setup.attributor.attribute(cook(11, None)) is None
    assert sum(setup.unattributed(reason) for reason in UNATTRIBUTED_REASONS) == 0


def test_an_unreachable_store_is_counted_and_never_raises() -> None:
    """Nothing listens on port 1: the store's breaker refuses, the attributor counts a store_error."""
    setup = Setup(RedisInteractionStore("redis://127.0.0.1:1/0", 24.0))
    assert setup.attributor.attribute(cook(11, new_recommendation_id())) is None
    assert setup.unattributed("store_error") == 1


def test_a_redelivered_event_is_attributed_once(store: InteractionStore) -> None:
    """The applier attributes only what it applies for the first time: the consumer's redelivery counts once."""
    setup = Setup(store)
    recommendation_id = setup.show((11, 22, 33))
    applier = EventApplier(store, MemoryCache(), setup.attributor)
    event = cook(22, recommendation_id).model_copy(update={"event_id": "redelivered"})

    assert applier.apply(event) is True
    assert applier.apply(event) is False

    assert setup.attributed() == 1
    assert [a.rank for a in setup.published] == [2]
