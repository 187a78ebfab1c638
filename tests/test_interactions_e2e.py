"""End to end: Kafka topic → consumer process → Redis → the API's next answer, and the next trained version.

The real server (shared ``server`` fixture: the API reads live state from the
test Redis only, Kafka is the consumer's business), a real consumer process
(``recipe-ml consume``) and a real broker (tansu).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge.model_store import load_from_store
from harness.server import LocalServer
from recipe_ml.config import REPO_ROOT, get_settings
from recipe_ml.models.base import Recommender
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.wire import RankQuery, SimilarRecipeQuery
from recipe_ml.storage.redis import RedisInteractionStore
from scripts.cli import main as cli
from tests.fixtures.kafka import TansuBroker, free_port, wait_until

pytestmark = pytest.mark.integration

UNKNOWN_USER = 999_999_998
LIVE_ONLY_USER, LIVE_ONLY_RECIPE = 900_000_001, 900_000_002
"""Ids no Allrecipes user or recipe has: they exist only through live events."""
APPLY_TIMEOUT = 30.0
"""Generous: the consumer process starts and joins its group meanwhile."""
VISIBLE_WITHIN = 10.0
"""Once applied, the API answers accordingly by then: a bound for a stalled
machine, not a speed check (``scripts/benchmark_consumer`` prints freshness)."""


@dataclass
class Pipeline:
    broker: TansuBroker
    topic: str
    api: httpx.Client
    store: RedisInteractionStore

    def send(self, event: dict[str, object]) -> None:
        producer = self.broker.producer()
        producer.send(self.topic, key=str(event["userId"]).encode(), value=json.dumps(event).encode())
        producer.flush()
        producer.close()

    def recipes(self, user_id: int) -> httpx.Response:
        return self.api.post("/api/recommendations/recipes", json={"user_id": user_id, "top_k": 10, "diversity": 0})


@pytest.fixture(scope="module")
def consumer_process(
    tmp_path_factory: pytest.TempPathFactory, test_redis_url: str
) -> Iterator[tuple[TansuBroker, str]]:
    """A broker and ``recipe-ml consume`` on it, joined to its group."""
    broker = TansuBroker()
    broker.start()
    topic, metrics_port = f"interactions-{uuid.uuid4().hex[:8]}", free_port()
    broker.create_topic(topic)
    broker.create_topic(f"{topic}.dlq")
    broker.create_topic(f"{topic}.recipes")  # the catalogue's topic, which the consumer reads too
    env = {key: val for key, val in os.environ.items() if key not in {"REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env.update(
        REDIS_URL=test_redis_url,
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        KAFKA_TOPIC=topic,
        KAFKA_DLQ_TOPIC=f"{topic}.dlq",
        KAFKA_RECIPES_TOPIC=f"{topic}.recipes",
        KAFKA_GROUP_ID=f"e2e-{topic}",
        CONSUMER_METRICS_PORT=str(metrics_port),
    )
    log_path: Path = tmp_path_factory.mktemp("consumer") / "consumer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "consume"], cwd=REPO_ROOT, env=env, stderr=log, stdout=log
        )

    def joined() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as response:
                return "recipe_consumer_assigned_partitions 2.0" in response.read().decode()
        except OSError:
            return False

    try:
        wait_until(joined, APPLY_TIMEOUT, "consumer process joined its group")
        yield broker, topic
    finally:
        process.terminate()
        process.wait(timeout=20)
        broker.stop()


@pytest.fixture
def pipeline(consumer_process: tuple[TansuBroker, str], server: LocalServer, redis_url: str) -> Iterator[Pipeline]:
    """The running pipeline on an emptied test Redis (no cache, no live state)."""
    broker, topic = consumer_process
    with httpx.Client(base_url=server.base_url, timeout=15) as api:
        yield Pipeline(broker, topic, api, RedisInteractionStore(redis_url, 24.0))


@pytest.fixture(scope="module")
def model(model_store: Path) -> Recommender:
    return load_from_store("recipe_popularity", home=model_store)[0]


def recipe_ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["recipe_id"] for r in response.json()["recommendations"]]


def test_an_event_on_the_topic_changes_the_users_next_recommendation(pipeline: Pipeline, model: Recommender) -> None:
    user = int(model.users.ids[3])
    before = recipe_ids(pipeline.recipes(user))
    assert recipe_ids(pipeline.recipes(user)) == before  # stable (and now cached)
    cooked = before[0]

    pipeline.send({"userId": user, "recipeId": cooked, "interactionType": "cook", "eventId": f"e2e-{uuid.uuid4()}"})
    wait_until(lambda: cooked in pipeline.store.recent_items(user), APPLY_TIMEOUT, "consumer applied the event")
    wait_until(
        lambda: cooked not in recipe_ids(pipeline.recipes(user)),
        VISIBLE_WITHIN,
        "the cooked recipe left the user's recommendations",
    )


def test_a_brand_new_user_becomes_servable_after_their_first_events(pipeline: Pipeline, model: Recommender) -> None:
    missing = pipeline.recipes(UNKNOWN_USER)
    assert missing.status_code == 404, missing.text
    first = [int(recipe) for recipe in model.items.ids[:2]]

    for n, recipe in enumerate(first):
        pipeline.send({"userId": UNKNOWN_USER, "recipeId": recipe, "interactionType": "like", "eventId": f"new-{n}"})
    wait_until(lambda: pipeline.store.recent_items(UNKNOWN_USER) == first[::-1], APPLY_TIMEOUT, "events applied")
    deadline = time.monotonic() + VISIBLE_WITHIN
    while (served := pipeline.recipes(UNKNOWN_USER)).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    served_ids = recipe_ids(served)
    assert len(served_ids) == 10
    assert not set(served_ids) & set(first)


def test_interactions_applied_live_are_in_the_next_trained_version(
    pipeline: Pipeline,
    model: Recommender,
    model_store: Path,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A user and a recipe seen only over Kafka get vectors of their own: answers from the model, not a fold-in."""
    liked = [int(recipe) for recipe in model.items.ids[:6]]
    others = [int(user) for user in model.users.ids[:5]]
    events = [(LIVE_ONLY_USER, recipe, "like") for recipe in [*liked, LIVE_ONLY_RECIPE]]
    events += [(user, LIVE_ONLY_RECIPE, "cook") for user in others]
    for n, (user, recipe, kind) in enumerate(events):
        pipeline.send({"userId": user, "recipeId": recipe, "interactionType": kind, "eventId": f"live-{n}"})
    wait_until(lambda: len(pipeline.store.interactions()) == len(events), APPLY_TIMEOUT, "every event applied")
    before = ModelRanker(*load_from_store("recipe_two_tower", home=model_store))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    try:
        assert cli(["train", "--live", "--kinds", "two_tower", "--sample-users", "300", "--epochs", "1"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert f"live: {len(events)} interactions of 6 users from Redis" in out
    assert "+live in" in out

    after = ModelRanker(*load_from_store("recipe_two_tower", home=tmp_path))
    (own,) = after.rank([RankQuery(user_id=LIVE_ONLY_USER, top_k=10)])  # no live ids sent: no fold-in
    (unknown,) = before.rank([RankQuery(user_id=LIVE_ONLY_USER, top_k=10)])
    (similar,) = after.similar_recipes([SimilarRecipeQuery(recipe_id=LIVE_ONLY_RECIPE, top_k=5)])
    index = after.model.users.index_of(LIVE_ONLY_USER)
    assert index is not None and not unknown.found
    assert set(after.model.items.ids[after.model.history(index)].tolist()) == {*liked, LIVE_ONLY_RECIPE}
    assert own.found and len(own.recipe_ids) == 10 and not set(own.recipe_ids) & {*liked, LIVE_ONLY_RECIPE}
    assert own.personalized_by == "ease" and own.model_version == after.version
    assert similar.found and len(similar.recipe_ids) == 5
