"""The real server (``bentoml serve``: API + two runner services) on the real Redis.

Every endpoint, every error path, each step of the fallback chain (a runner
process is frozen with SIGSTOP so its calls time out) and concurrent load.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.model_store import load_from_store
from harness.server import LocalServer, ServerStartError, start_local_server
from recipe_ml.models.base import Recommender
from tests.fixtures.models import known_user, training_history
from tests.fixtures.server import StartServer

pytestmark = pytest.mark.integration

UNKNOWN_USER = 999_999_999
LOAD_CLIENTS = 32
LOAD_SECONDS = 12.0


@pytest.fixture(scope="module")
def model(model_store: Path) -> Recommender:
    """The fixture store's popularity model: ids, training history and FSA scores."""
    return load_from_store("recipe_popularity", home=model_store)[0]


@pytest.fixture
def api(server: LocalServer, redis_url: str) -> Iterator[httpx.Client]:
    """A client of the shared server, its Redis database emptied (no cache, no live state)."""
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        yield client


def recipe_ids(body: dict[str, object]) -> list[int]:
    recommendations = body["recommendations"]
    assert isinstance(recommendations, list)
    return [r["recipe_id"] for r in recommendations]


def metric_samples(client: httpx.Client, name: str) -> list[tuple[dict[str, str], float]]:
    response = client.get("/api/metrics")
    assert response.status_code == 200
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name
    ]


def test_recipes_are_personal_unseen_and_cached(api: httpx.Client, model: Recommender) -> None:
    uid = known_user(model)

    first = api.post("/api/recommendations/recipes", json={"user_id": uid, "top_k": 7})
    second = api.post("/api/recommendations/recipes", json={"user_id": uid, "top_k": 7})

    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {
        "recommendation_id",
        "variant",
        "user_id",
        "recommendations",
        "model_used",
        "personalized_by",
        "model_version",
        "latency_ms",
        "cached",
        "exhausted",
    }
    assert body["exhausted"] is False
    assert body["user_id"] == uid and body["model_used"] == "two_tower" and body["cached"] is False
    assert body["personalized_by"] == "ease"
    assert body["model_version"] == api.get("/api/health").json()["models"]["two_tower"]
    assert [r["rank"] for r in body["recommendations"]] == list(range(1, 8))
    assert len(set(recipe_ids(body))) == 7 and not set(recipe_ids(body)) & training_history(model, uid)
    assert second.json()["cached"] is True and recipe_ids(second.json()) == recipe_ids(body)
    assert body["variant"] == second.json()["variant"] == "default"
    assert second.json()["recommendation_id"] != body["recommendation_id"], "a cached answer has an id of its own"


def test_exclusions_and_health_filter(api: httpx.Client, model: Recommender) -> None:
    uid = known_user(model, 1)
    plain = api.post("/api/recommendations/recipes", json={"user_id": uid, "top_k": 5}).json()

    excluded = api.post(
        "/api/recommendations/recipes", json={"user_id": uid, "top_k": 5, "exclude_recipe_ids": recipe_ids(plain)[:2]}
    ).json()
    healthy = api.post("/api/recommendations/recipes", json={"user_id": uid, "top_k": 5, "max_fsa_score": 7}).json()

    assert not set(recipe_ids(excluded)) & set(recipe_ids(plain)[:2])
    fsa = model.item_fsa[model.items.indices(np.asarray(recipe_ids(healthy)))]
    assert len(fsa) == 5 and all(score <= 7 for score in fsa)


def test_an_interaction_changes_the_next_recommendation(api: httpx.Client, model: Recommender) -> None:
    uid = known_user(model, 2)
    request = {"user_id": uid, "top_k": 10, "diversity": 0}
    before = api.post("/api/recommendations/recipes", json=request).json()
    event = {"userId": uid, "recipeId": recipe_ids(before)[0], "interactionType": "cook", "eventId": "svc-1"}

    applied = api.post("/api/interactions", json=event)
    duplicate = api.post("/api/interactions", json=event)
    after = api.post("/api/recommendations/recipes", json=request).json()

    assert applied.status_code == 202 and applied.json()["applied"] is True
    assert duplicate.status_code == 202 and duplicate.json()["applied"] is False
    assert after["cached"] is False
    assert recipe_ids(before)[0] not in recipe_ids(after)


def test_unknown_user_is_404_until_their_first_interaction(api: httpx.Client, model: Recommender) -> None:
    missing = api.post("/api/recommendations/recipes", json={"user_id": UNKNOWN_USER})
    recipe = int(model.items.ids[0])
    api.post(
        "/api/interactions",
        json={"user_id": UNKNOWN_USER, "recipe_id": recipe, "interaction_type": "rate", "rating": 5},
    ).raise_for_status()
    served = api.post("/api/recommendations/recipes", json={"user_id": UNKNOWN_USER, "top_k": 5})

    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert "cold-start" in missing.json()["detail"] and missing.json()["user_id"] == UNKNOWN_USER
    assert missing.json()["cold_start"] == "/api/recommendations/cold-start"
    assert served.status_code == 200 and len(recipe_ids(served.json())) == 5
    assert recipe not in recipe_ids(served.json())


def test_similar_users(api: httpx.Client, model: Recommender) -> None:
    uid = known_user(model)

    found = api.post("/api/recommendations/users", json={"user_id": uid, "top_k": 4})
    missing = api.post("/api/recommendations/users", json={"user_id": UNKNOWN_USER})

    assert found.status_code == 200
    body = found.json()
    assert body["model_used"] == "two_tower" and len(body["similar_users"]) == 4
    assert uid not in {s["user_id"] for s in body["similar_users"]}
    assert missing.status_code == 404


def test_batch_has_an_entry_per_user(api: httpx.Client, model: Recommender) -> None:
    users = [known_user(model, n) for n in range(3)]

    response = api.post(
        "/api/recommendations/batch", json={"user_ids": [users[0], UNKNOWN_USER, *users[1:]], "top_k": 3}
    )

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["user_id"] for r in results] == [users[0], UNKNOWN_USER, *users[1:]]
    assert [r["status"] for r in results] == ["ok", "error", "ok", "ok"]
    assert results[1]["problem"]["status"] == 404 and "cold-start" in results[1]["problem"]["detail"]
    assert all(len(r["recommendations"]) == 3 for r in results if r["user_id"] != UNKNOWN_USER)


def test_cold_start(api: httpx.Client, model: Recommender) -> None:
    first_recipes = [int(r) for r in model.items.ids[:3]]

    popular = api.post("/api/recommendations/cold-start", json={"top_k": 5})
    folded = api.post("/api/recommendations/cold-start", json={"top_k": 5, "recent_recipe_ids": first_recipes})

    assert popular.status_code == 200 and popular.json()["model_used"] == "popularity"
    assert len(recipe_ids(popular.json())) == 5
    assert folded.json()["model_used"] == "two_tower"
    assert not set(recipe_ids(folded.json())) & set(first_recipes)


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/api/recommendations/recipes", b'{"user_id": 5,', 400, "body"),
        ("/api/recommendations/recipes", b'{"user_id": "five"}', 422, "user_id"),
        ("/api/recommendations/recipes", b'{"user_id": 5, "top_k": -1}', 422, "top_k"),
        ("/api/recommendations/recipes", b'{"user_id": 5, "top_k": 100000}', 422, "top_k"),
        ("/api/recommendations/recipes", b'{"top_k": 5}', 422, "user_id"),
        ("/api/recommendations/recipes", b"", 422, "user_id"),
        ("/api/recommendations/recipes", b"[1, 2]", 422, "body"),
        ("/api/recommendations/recipes", b'{"user_id": 5, "max_fsa_score": "low"}', 422, "max_fsa_score"),
        ("/api/recommendations/recipes", b'{"user_id": 5, "personalization": 1.5}', 422, "personalization"),
        ("/api/recommendations/batch", b'{"user_ids": [5], "personalization": -0.1}', 422, "personalization"),
        ("/api/recommendations/users", b'{"user_id": 5, "top_k": 0}', 422, "top_k"),
        ("/api/recommendations/batch", b'{"user_ids": []}', 422, "user_ids"),
        ("/api/recommendations/batch", b'{"user_ids": [' + b",".join([b"1"] * 101) + b"]}", 422, "user_ids"),
        ("/api/recommendations/cold-start", b'{"recent_recipe_ids": [1, "x"]}', 422, "recent_recipe_ids.1"),
        ("/api/interactions", b'{"userId": 1, "recipeId": 2, "interactionType": "rate"}', 422, "rating"),
        ("/api/interactions", b'{"userId": 1, "recipeId": 2, "interactionType": "eat"}', 422, "interactionType"),
    ],
)
def test_malformed_requests_are_4xx_naming_the_field(
    server: LocalServer, path: str, body: bytes, status: int, field: str
) -> None:
    response = httpx.post(server.base_url + path, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert field in [error["field"] for error in response.json()["errors"]]


def test_similar_recipes(api: httpx.Client, model: Recommender) -> None:
    recipe = int(model.items.ids[0])
    candidates = [int(r) for r in model.items.ids[1:30]]

    found = api.post("/api/recommendations/similar-recipes", json={"recipe_id": recipe, "top_k": 4})
    again = api.post("/api/recommendations/similar-recipes", json={"recipe_id": recipe, "top_k": 4})
    among = api.post(
        "/api/recommendations/similar-recipes", json={"recipe_id": recipe, "top_k": 4, "include_recipe_ids": candidates}
    )
    missing = api.post("/api/recommendations/similar-recipes", json={"recipe_id": UNKNOWN_USER})

    assert found.status_code == 200, found.text
    body = found.json()
    assert body["model_used"] == "two_tower" and body["recipe_id"] == recipe
    similar = [r["recipe_id"] for r in body["similar_recipes"]]
    assert len(set(similar)) == 4 and recipe not in similar
    assert again.json()["cached"] is True and [r["recipe_id"] for r in again.json()["similar_recipes"]] == similar
    assert {r["recipe_id"] for r in among.json()["similar_recipes"]} <= set(candidates)
    assert missing.status_code == 404 and missing.json()["recipe_id"] == UNKNOWN_USER
    assert missing.headers["content-type"] == "application/problem+json"


def test_include_recipe_ids_limits_the_candidates(api: httpx.Client, model: Recommender) -> None:
    uid = known_user(model, 4)
    candidates = [int(r) for r in model.items.ids if int(r) not in training_history(model, uid)][:15]

    personal = api.post(
        "/api/recommendations/recipes", json={"user_id": uid, "top_k": 5, "include_recipe_ids": candidates}
    )
    batch = api.post(
        "/api/recommendations/batch", json={"user_ids": [uid], "top_k": 5, "include_recipe_ids": candidates}
    )
    cold = api.post("/api/recommendations/cold-start", json={"top_k": 5, "include_recipe_ids": candidates})

    assert len(recipe_ids(personal.json())) == 5 and set(recipe_ids(personal.json())) <= set(candidates)
    assert recipe_ids(batch.json()["results"][0]) == recipe_ids(personal.json())
    assert len(recipe_ids(cold.json())) == 5 and set(recipe_ids(cold.json())) <= set(candidates)


def test_a_body_over_max_request_bytes_is_413(server: LocalServer) -> None:
    big = b'{"user_id": 5, "exclude_recipe_ids": [' + b"1," * 600_000 + b"1]}"

    response = httpx.post(
        f"{server.base_url}/api/recommendations/recipes",
        content=big,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413 and response.headers["content-type"] == "application/problem+json"
    assert "MAX_REQUEST_BYTES" in response.json()["detail"]


def test_unknown_routes_and_methods_answer_json(server: LocalServer) -> None:
    wrong_method = httpx.get(f"{server.base_url}/api/recommendations/recipes")
    no_route = httpx.post(f"{server.base_url}/api/recommendations/nothing", json={})

    assert wrong_method.status_code == 405 and "detail" in wrong_method.json()
    assert wrong_method.headers["allow"] == "POST"
    assert no_route.status_code == 404 and "detail" in no_route.json()
    for response in (wrong_method, no_route):
        assert response.headers["content-type"] == "application/problem+json"


def test_health_and_metrics(api: httpx.Client, model: Recommender) -> None:
    api.post("/api/recommendations/recipes", json={"user_id": known_user(model), "top_k": 2})
    api.post("/api/recommendations/recipes", json={"user_id": known_user(model), "top_k": 2})

    health = api.get("/api/health").json()
    requests = metric_samples(api, "recipe_api_requests_total")
    cache = metric_samples(api, "recipe_api_cache_total")
    buckets = metric_samples(api, "recipe_api_request_latency_seconds_bucket")

    assert health["status"] == "ok" and health["redis"] == "ok" and health["kafka"] == "not configured"
    assert set(health["models"]) == {"two_tower", "als", "popularity"}
    assert all(version.startswith("recipe_") for version in health["models"].values())
    assert health["personalization"]["two_tower"].startswith("ease scorer, adaptive positions")
    assert health["personalization"]["als"] == "no personal scorer: the model's own ranking"
    assert any(
        labels["endpoint"] == "recipes"
        and labels["model_used"] == "two_tower"
        and labels["model_version"] == health["models"]["two_tower"]
        for labels, _ in requests
    )
    assert health["refused"] == {}
    assert {labels["result"] for labels, value in cache if value > 0} >= {"hit", "miss"}
    assert {labels["le"] for labels, _ in buckets} >= {"0.0001", "0.001"}


def test_no_process_loads_torch_on_the_cpu(server: LocalServer) -> None:
    """The Two-Tower folds in with numpy on the CPU (``recipe_ml.models.user_tower``): torch stays out."""

    def loads_torch(pid: int) -> bool:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()

    assert server.runner_process("two_tower").pid in {p.pid for p in server.processes()}
    assert not any(loads_torch(p.pid) for p in server.processes())


def test_fallback_chain_two_tower_then_als_then_popularity(
    api: httpx.Client, server: LocalServer, model: Recommender
) -> None:
    request = {"user_id": known_user(model, 3), "top_k": 5}
    two_tower, als = server.runner_process("two_tower"), server.runner_process("als")
    try:
        two_tower.send_signal(signal.SIGSTOP)
        by_als = api.post("/api/recommendations/recipes", json=request)
        degraded = api.get("/api/health").json()
        als.send_signal(signal.SIGSTOP)
        by_popularity = api.post("/api/recommendations/recipes", json=request)
        no_similarity = api.post("/api/recommendations/users", json={"user_id": known_user(model)})
    finally:
        two_tower.send_signal(signal.SIGCONT)
        als.send_signal(signal.SIGCONT)
    recovered = api.post("/api/recommendations/recipes", json=request)

    assert by_als.status_code == 200 and by_als.json()["model_used"] == "als"
    assert degraded["status"] == "degraded" and degraded["models"]["two_tower"] == "unavailable"
    assert by_popularity.status_code == 200 and by_popularity.json()["model_used"] == "popularity"
    assert not set(recipe_ids(by_popularity.json())) & training_history(model, request["user_id"])
    assert no_similarity.status_code == 503 and "detail" in no_similarity.json()
    assert recovered.json()["model_used"] == "two_tower" and recovered.json()["cached"] is False
    fallbacks = metric_samples(api, "recipe_api_fallbacks_total")
    assert {(labels["model"], labels["reason"]) for labels, _ in fallbacks} >= {
        ("two_tower", "timeout"),
        ("als", "timeout"),
    }


def test_redis_outage_degrades_but_never_fails(start_server: StartServer, model: Recommender) -> None:
    server = start_server({"REDIS_URL": "redis://127.0.0.1:1/0"})
    with httpx.Client(base_url=server.base_url, timeout=15) as client:
        recipes = client.post("/api/recommendations/recipes", json={"user_id": known_user(model)})
        cold = client.post("/api/recommendations/cold-start", json={})
        health = client.get("/api/health")
        event = client.post("/api/interactions", json={"userId": 1, "recipeId": 2, "interactionType": "view"})

    assert recipes.status_code == 200 and recipes.json()["model_used"] == "two_tower"
    assert cold.status_code == 200
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["redis"] == "unreachable"
    assert event.status_code == 503 and "retry" in event.json()["detail"]


async def _load(base_url: str, users: list[int], clients: int, seconds: float) -> Counter[str]:
    """``clients`` clients posting uncached recommendation requests for ``seconds``."""
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while time.monotonic() < deadline:
                body = {"user_id": rng.choice(users), "exclude_recipe_ids": [rng.randrange(10**9)]}  # miss the cache
                response = await http.post("/api/recommendations/recipes", json=body)
                outcomes[str(response.status_code)] += 1
                if response.status_code == 200:
                    outcomes[response.json()["model_used"]] += 1

    await asyncio.gather(*(client(seed) for seed in range(clients)))
    return outcomes


def test_concurrent_load_has_no_failed_requests(api: httpx.Client, server: LocalServer, model: Recommender) -> None:
    """The regression test of the dropped connections between API and runners.

    Before the fix, about 20% of runner calls under this load died on a
    closed connection (see ``TRANSPORT_RETRIES`` in edge/remote.py). A failure is
    any non-2xx, and also any fallback other than a timeout or BentoML's own
    overload shedding (reason ``overloaded``), or any retried runner call: the
    chain and the retry would otherwise hide a dropped connection as an ALS or
    popularity answer, or as a slower one.
    """

    def transport_failures() -> float:
        """Fallbacks other than timeouts and shed load, and calls retried on a fresh connection."""
        fallbacks = metric_samples(api, "recipe_api_fallbacks_total")
        retries = metric_samples(api, "recipe_api_runner_retries_total")
        shed = {"timeout", "overloaded"}  # a busy machine: BentoML shedding load is not a transport failure
        return sum(v for labels, v in fallbacks if labels["reason"] not in shed) + sum(v for _, v in retries)

    def histogram(name: str) -> dict[str, float]:
        samples = metric_samples(api, name)
        return {
            labels["le"]: v for labels, v in samples if labels["model"] == "two_tower" and labels["api"] == "recommend"
        }

    users = [int(u) for u in model.users.ids[:200]]
    failures_before = transport_failures()
    batches_before = histogram("recipe_runner_batch_size_bucket")
    hops_before = histogram("recipe_api_runner_hop_queries_bucket")

    outcomes = asyncio.run(_load(server.base_url, users, LOAD_CLIENTS, LOAD_SECONDS))

    batches = {le: v - batches_before.get(le, 0.0) for le, v in histogram("recipe_runner_batch_size_bucket").items()}
    hops = {le: v - hops_before.get(le, 0.0) for le, v in histogram("recipe_api_runner_hop_queries_bucket").items()}
    assert outcomes["200"] > LOAD_CLIENTS and set(outcomes) <= {"200", "two_tower", "als", "popularity"}, outcomes
    assert transport_failures() == failures_before
    assert batches["+Inf"] > batches["1.0"], "concurrent requests were never scored as one batch"
    assert hops["+Inf"] > hops["1.0"], "concurrent requests never shared a hop to the runner"


def test_a_setting_that_does_not_parse_stops_the_start_naming_it(model_store: Path, tmp_path: Path) -> None:
    with pytest.raises(ServerStartError) as failed:
        start_local_server(
            model_store, tmp_path / "server.log", env={"ANN_MIN_RECIPES": "a million"}, timeout_seconds=90
        )

    assert "ANN_MIN_RECIPES: Input should be a valid integer" in str(failed.value)
