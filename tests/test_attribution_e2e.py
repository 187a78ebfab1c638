"""Attributed interactions end to end: an answer, then an interaction naming its ``recommendationId``.

Over HTTP (an embedded server writing its impression log to a JSONL file): the
interaction is counted once for the answer's endpoint, variant, model and rank,
however often it is sent, and its attribution record lands beside the
impressions; one that no kept answer explains is applied all the same and
counted by reason. Over Kafka (the API and a ``recipe-ml consume`` process
sharing Redis, a tansu broker): the consumer attributes a redelivered event
once, in its own metrics, and publishes one record to the attributions topic.

Records are published by a background thread in queue order, so an answer
asked for afterwards is a barrier: once its impression is out, every record
queued before it is out too (no fixed waits for "nothing more").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from edge.model_store import load_from_store
from harness.net import free_port
from harness.server import LocalServer
from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.models.base import Recommender
from recipe_ml.storage.redis import RedisInteractionStore
from tests.fixtures.kafka import TansuBroker
from tests.fixtures.server import StartServer
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.integration

ENDPOINT = "recipes"
"""The endpoint label of ``POST /api/recommendations/recipes``."""
LOGGED_WITHIN = 30.0
"""Generous: the impression log's thread writes a record by then, on a busy machine."""
APPLY_TIMEOUT = 60.0
"""Generous: the consumer applies an event published on its topic by then."""
JOIN_TIMEOUT = 60.0
"""The consumer process starts and joins its group meanwhile."""
RECOMMENDATIONS_TOPIC: str = Settings.model_fields["kafka_recommendations_topic"].default
ATTRIBUTIONS_TOPIC: str = Settings.model_fields["kafka_attributions_topic"].default


@pytest.fixture(scope="module")
def model(model_store: Path) -> Recommender:
    return load_from_store("recipe_popularity", home=model_store)[0]


def user(model: Recommender, n: int) -> int:
    """The raw id of the ``n``-th training user: each test asks for users of its own (no cached answers)."""
    return int(model.users.ids[n])


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with ``labels`` in a Prometheus exposition; 0 when absent."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
    )


@dataclass(frozen=True)
class Answer:
    """A recommendations answer: the ids it was published under, and its recipes in rank order."""

    recommendation_id: str
    variant: str
    model: str
    user_id: int
    recipe_ids: list[int]


def ask(api: httpx.Client, user_id: int) -> Answer:
    response = api.post("/api/recommendations/recipes", json={"user_id": user_id, "top_k": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["recommendation_id"], str) and len(body["recommendation_id"]) == 32
    recipes = [r["recipe_id"] for r in body["recommendations"]]
    assert [r["rank"] for r in body["recommendations"]] == list(range(1, len(recipes) + 1))
    assert len(recipes) >= 3, body
    return Answer(body["recommendation_id"], body["variant"], body["model_used"], user_id, recipes)


def event(answer: Answer, recipe_id: int, event_id: str, kind: str = "cook", **extra: object) -> dict[str, object]:
    """The interaction event as the backend publishes it (camelCase), naming ``answer``."""
    return {
        "userId": answer.user_id,
        "recipeId": recipe_id,
        "interactionType": kind,
        "eventId": event_id,
        "recommendationId": answer.recommendation_id,
        **extra,
    }


# -- over HTTP: the embedded server, its impression log a JSONL file ---------------------------------------------


@dataclass(frozen=True)
class Embedded:
    api: httpx.Client
    log: Path

    def records(self) -> list[dict[str, Any]]:
        """The complete lines of the impression log (a line being written is not read yet)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines(keepends=True)
        return [json.loads(line) for line in lines if line.endswith("\n")]

    def of(self, recommendation_id: str, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["recommendationId"] == recommendation_id and r["kind"] == kind]

    def shown(self, user_id: int) -> Answer:
        """An answer whose impression is out, so its shown list is kept (the log keeps it before writing)."""
        answer = ask(self.api, user_id)
        wait_until(
            lambda: self.of(answer.recommendation_id, "impression"),
            LOGGED_WITHIN,
            f"the impression of {answer.recommendation_id} in {self.log}",
        )
        return answer

    def metrics(self) -> str:
        response = self.api.get("/api/metrics")
        assert response.status_code == 200, response.text
        return response.text

    def post(self, body: dict[str, object]) -> httpx.Response:
        return self.api.post("/api/interactions", json=body)


@pytest.fixture(scope="module")
def embedded_server(start_server: StartServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalServer, Path]:
    """One embedded server (in-process store) for the module, its impression log in a file of its own."""
    log = tmp_path_factory.mktemp("attribution") / "impressions.jsonl"
    return start_server({"IMPRESSION_LOG_PATH": str(log)}), log


@pytest.fixture
def embedded(embedded_server: tuple[LocalServer, Path]) -> Iterator[Embedded]:
    server, log = embedded_server
    with httpx.Client(base_url=server.base_url, timeout=30) as api:
        yield Embedded(api, log)


def test_an_interaction_naming_its_answer_is_attributed_once_to_its_rank(
    embedded: Embedded, model: Recommender
) -> None:
    answer = embedded.shown(user(model, 10))
    second = answer.recipe_ids[1]
    attributed = {"endpoint": ENDPOINT, "variant": answer.variant, "model": answer.model, "interaction_type": "cook"}
    ranks = {"endpoint": ENDPOINT, "variant": answer.variant}
    before = embedded.metrics()
    body = event(answer, second, f"attr-{uuid.uuid4()}")

    first, again = embedded.post(body), embedded.post(body)

    assert first.status_code == 202, first.text
    assert first.json()["applied"] is True
    assert again.status_code == 202, again.text
    assert again.json()["duplicate"] is True
    after = embedded.metrics()
    name = "recipe_attributed_interactions_total"
    assert metric(after, name, **attributed) - metric(before, name, **attributed) == 1
    assert (
        metric(after, "recipe_attributed_rank_sum", **ranks) - metric(before, "recipe_attributed_rank_sum", **ranks)
        == 2
    )
    count = "recipe_attributed_rank_count"
    assert metric(after, count, **ranks) - metric(before, count, **ranks) == 1
    embedded.shown(user(model, 20))  # a barrier: every record queued before it is in the file
    (record,) = embedded.of(answer.recommendation_id, "attribution")
    assert record["rank"] == 2 and record["recipeId"] == second and record["userId"] == answer.user_id
    assert (record["endpoint"], record["variant"], record["model"], record["interactionType"]) == (
        ENDPOINT,
        answer.variant,
        answer.model,
        "cook",
    )


def applied_and_counted_unattributed(
    response: httpx.Response, before: str, after: str, reason: str, not_as: str
) -> None:
    """The interaction was applied (202), and counted once as unattributed for ``reason``, not for ``not_as``."""
    assert response.status_code == 202, response.text
    assert response.json()["applied"] is True
    name = "recipe_unattributed_interactions_total"
    assert metric(after, name, reason=reason) - metric(before, name, reason=reason) == 1
    assert metric(after, name, reason=not_as) == metric(before, name, reason=not_as)


def test_an_unknown_recommendation_id_is_applied_and_counted_as_unknown(embedded: Embedded, model: Recommender) -> None:
    answer = embedded.shown(user(model, 11))
    unknown = Answer(uuid.uuid4().hex, answer.variant, answer.model, answer.user_id, answer.recipe_ids)
    cooked = answer.recipe_ids[0]
    before = embedded.metrics()

    response = embedded.post(event(unknown, cooked, f"unknown-{uuid.uuid4()}"))

    applied_and_counted_unattributed(response, before, embedded.metrics(), "unknown", not_as="not_shown")
    assert cooked not in ask(embedded.api, answer.user_id).recipe_ids  # applied: the user's own recipe now
    embedded.shown(user(model, 21))
    assert not embedded.of(unknown.recommendation_id, "attribution")


def test_a_recipe_the_answer_did_not_show_is_counted_as_not_shown(embedded: Embedded, model: Recommender) -> None:
    answer = embedded.shown(user(model, 12))
    elsewhere = next(int(recipe) for recipe in model.items.ids if int(recipe) not in answer.recipe_ids)
    before = embedded.metrics()

    response = embedded.post(event(answer, elsewhere, f"not-shown-{uuid.uuid4()}"))

    applied_and_counted_unattributed(response, before, embedded.metrics(), "not_shown", not_as="unknown")
    embedded.shown(user(model, 22))
    assert not embedded.of(answer.recommendation_id, "attribution")


def test_a_malformed_recommendation_id_is_a_422_naming_it(embedded: Embedded, model: Recommender) -> None:
    answer = Answer("abc", "default", "two_tower", user(model, 13), [int(model.items.ids[0])])
    before = embedded.metrics()

    response = embedded.post(event(answer, answer.recipe_ids[0], f"malformed-{uuid.uuid4()}"))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422 and problem["instance"] == "/api/interactions"
    assert [error["field"] for error in problem["errors"]] == ["recommendationId"]
    assert "recommendationId" in problem["detail"]
    after = embedded.metrics()
    for reason in ("unknown", "expired", "not_shown", "store_error"):
        name = "recipe_unattributed_interactions_total"
        assert metric(after, name, reason=reason) == metric(before, name, reason=reason), reason


# -- over Kafka: the API and the consumer process on one Redis --------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    topic: str
    metrics_url: str

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            text: str = response.read().decode()
        return text


@pytest.fixture
def consumer(kafka_broker: TansuBroker, redis_url: str, tmp_path: Path) -> Iterator[Consumer]:
    """``recipe-ml consume`` on a topic of its own, joined to its group, on the emptied test Redis."""
    topic = f"interactions-{uuid.uuid4().hex[:8]}"
    for name in (topic, f"{topic}.dlq", f"{topic}.recipes", RECOMMENDATIONS_TOPIC, ATTRIBUTIONS_TOPIC):
        kafka_broker.create_topic(name)
    port = free_port()
    env = {key: val for key, val in os.environ.items() if key not in {"REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env.update(
        REDIS_URL=redis_url,
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap,
        KAFKA_TOPIC=topic,
        KAFKA_DLQ_TOPIC=f"{topic}.dlq",
        KAFKA_RECIPES_TOPIC=f"{topic}.recipes",
        KAFKA_GROUP_ID=f"e2e-{topic}",
        KAFKA_ATTRIBUTIONS_TOPIC=ATTRIBUTIONS_TOPIC,
        CONSUMER_METRICS_PORT=str(port),
    )
    log_path = tmp_path / "consumer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "consume"], cwd=REPO_ROOT, env=env, stderr=log, stdout=log
        )
    running = Consumer(topic, f"http://127.0.0.1:{port}/metrics")

    def joined() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            return "recipe_consumer_assigned_partitions 2.0" in running.metrics()
        except OSError:
            return False

    try:
        wait_until(joined, JOIN_TIMEOUT, "consumer process joined its group")
        yield running
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_on_kafka_the_consumer_attributes_a_redelivered_event_once(
    start_server: StartServer, kafka_broker: TansuBroker, redis_url: str, consumer: Consumer, model: Recommender
) -> None:
    server = start_server(
        {
            "REDIS_URL": redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
            "KAFKA_RECOMMENDATIONS_TOPIC": RECOMMENDATIONS_TOPIC,
            "KAFKA_ATTRIBUTIONS_TOPIC": ATTRIBUTIONS_TOPIC,
        }
    )
    store = RedisInteractionStore(redis_url, 24.0)
    with httpx.Client(base_url=server.base_url, timeout=30) as api:
        answer = ask(api, user(model, 14))
    wait_until(
        lambda: store.shown(answer.recommendation_id) is not None,
        LOGGED_WITHIN,
        f"the API kept the shown list of {answer.recommendation_id} in Redis",
    )
    with redis.Redis.from_url(redis_url) as client:  # kept for the attribution window
        kept = client.ttl(f"rml:shown:{answer.recommendation_id}")
    assert 0 < kept <= Settings.model_fields["attribution_window_hours"].default * 3600, kept
    second, third = answer.recipe_ids[1], answer.recipe_ids[2]
    producer = kafka_broker.producer()

    def send(body: dict[str, object]) -> None:
        producer.send(consumer.topic, key=str(body["userId"]).encode(), value=json.dumps(body).encode())
        producer.flush()

    def counted(name: str, value: float) -> bool:
        return metric(consumer.metrics(), name) >= value

    try:
        redelivered = event(answer, second, f"kafka-{uuid.uuid4()}")
        send(redelivered)
        send(redelivered)
        wait_until(lambda: counted("recipe_consumer_applied_total", 1), APPLY_TIMEOUT, "the event applied")
        wait_until(lambda: counted("recipe_consumer_duplicates_total", 1), APPLY_TIMEOUT, "its redelivery seen")

        seen = consumer.metrics()
        labels = {"endpoint": ENDPOINT, "variant": answer.variant, "model": answer.model}
        assert metric(seen, "recipe_consumer_applied_total") == 1
        assert metric(seen, "recipe_consumer_duplicates_total") == 1
        assert metric(seen, "recipe_attributed_interactions_total", **labels, interaction_type="cook") == 1
        assert metric(seen, "recipe_attributed_interactions_total") == 1
        assert metric(seen, "recipe_attributed_rank_sum", endpoint=ENDPOINT, variant=answer.variant) == 2
        assert metric(seen, "recipe_unattributed_interactions_total") == 0

        # A barrier: a new event after the redelivered one, so the topic holds exactly what came before it.
        send(event(answer, third, f"kafka-{uuid.uuid4()}", kind="like"))
        wait_until(lambda: counted("recipe_consumer_applied_total", 2), APPLY_TIMEOUT, "the next event applied")
    finally:
        producer.close()

    records = [json.loads(record.value) for record in kafka_broker.read_all(ATTRIBUTIONS_TOPIC, 2, timeout=30)]
    assert [(r["kind"], r["recommendationId"], r["recipeId"], r["rank"], r["interactionType"]) for r in records] == [
        ("attribution", answer.recommendation_id, second, 2, "cook"),
        ("attribution", answer.recommendation_id, third, 3, "like"),
    ]
    assert all(
        (r["endpoint"], r["variant"], r["model"], r["userId"])
        == (ENDPOINT, answer.variant, answer.model, answer.user_id)
        for r in records
    )
