"""The hot swap: a watcher moves a slot to the version the store names; a version that fails to load is refused."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from recipe_ml.data import Interactions
from recipe_ml.models.base import Recommender
from recipe_ml.models.popularity import PopularityRecommender
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.slot import ModelSlot, Refusal, SlotWatcher, every
from recipe_ml.serving.wire import RankQuery

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def model(small_splits: dict[str, Interactions]) -> Recommender:
    """A small real model, fitted in process: what a slot holds does not matter here, only which version."""
    popularity = PopularityRecommender()
    popularity.fit(small_splits["train"])
    return popularity


class Store:
    """What a watcher sees of the model store: the version to serve, and loading a version."""

    def __init__(self, model: Recommender, serving: str) -> None:
        self.model = model
        self.serving = serving
        self.broken: set[str] = set()
        self.loads: list[str] = []

    def resolve(self) -> str:
        if self.serving == "unreadable":
            raise OSError("store not mounted")
        return self.serving

    def load(self, version: str) -> ModelRanker:
        self.loads.append(version)
        if version in self.broken:
            raise ValueError("cannot reshape array of size 100 into shape (8435,1)")
        return ModelRanker(self.model, version)


def watched(model: Recommender) -> tuple[Store, ModelSlot, SlotWatcher, list[str]]:
    store = Store(model, "pop:v1")
    slot = ModelSlot(store.load("pop:v1"))
    swaps: list[str] = []
    return store, slot, SlotWatcher(slot, store.resolve, store.load, on_swap=lambda: swaps.append(slot.version)), swaps


async def test_a_promoted_version_swaps_in_and_a_request_in_flight_finishes_on_its_own(model: Recommender) -> None:
    store, slot, watcher, swaps = watched(model)
    in_flight = slot.ranker  # what a request read when it started
    store.serving = "pop:v2"

    assert await watcher.check() is True
    assert await watcher.check() is False  # already serving it

    (new,) = slot.ranker.rank([RankQuery(top_k=3)])
    (old,) = in_flight.rank([RankQuery(top_k=3)])
    assert (new.model_version, old.model_version) == ("pop:v2", "pop:v1")
    assert swaps == ["pop:v2"] and store.loads == ["pop:v1", "pop:v2"]


def refused_gauge() -> float | None:
    return REGISTRY.get_sample_value("recipe_model_version_refused", {"model": "popularity"})


async def test_a_version_that_fails_to_load_is_refused_once_and_the_old_one_keeps_serving(model: Recommender) -> None:
    store, slot, watcher, swaps = watched(model)
    store.serving = "pop:broken"
    store.broken.add("pop:broken")

    assert await watcher.check() is False
    assert await watcher.check() is False

    assert slot.version == "pop:v1" and swaps == []
    assert slot.refused == Refusal(
        "pop:broken", "failed to load: ValueError: cannot reshape array of size 100 into shape (8435,1)"
    )
    assert store.loads.count("pop:broken") == 1  # a stored version never changes: not tried again
    assert refused_gauge() == 1  # what RecipeModelVersionRefused reads

    store.serving = "pop:v1"  # rolled back
    assert await watcher.check() is False and slot.refused is None and refused_gauge() == 0
    store.serving = "pop:v3"
    assert await watcher.check() is True and slot.version == "pop:v3" and slot.refused is None


async def test_an_unreadable_store_keeps_the_version_serving(model: Recommender) -> None:
    store, slot, watcher, _ = watched(model)
    store.serving = "unreadable"
    assert await watcher.check() is False and slot.version == "pop:v1" and slot.refused is None


async def test_every_runs_its_step_again_after_a_failure() -> None:
    calls: list[int] = []
    done = asyncio.Event()

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("one bad look")
        done.set()

    task = asyncio.create_task(every(0.01, step))
    await asyncio.wait_for(done.wait(), timeout=30)
    task.cancel()
    assert calls == [0, 1]
