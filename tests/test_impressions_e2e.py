"""The real server on a real broker: every answer is one impression record, and a dead broker costs records only.

The server also runs an experiment, so the variants it assigns are checked
against this process's own assignment (another process, the same answer).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.model_store import load_from_store
from harness.server import ServerStartError, start_local_server
from recipe_ml.experiments import load_experiment
from tests.fixtures.kafka import TansuBroker
from tests.fixtures.server import StartServer
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.integration

CONNECTIONS = 16
PER_CONNECTION = 8


async def _load(base_url: str, users: list[int]) -> list[dict[str, object]]:
    """Each of CONNECTIONS clients asks for PER_CONNECTION users' recommendations, all at once."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(n: int) -> list[dict[str, object]]:
            bodies = []
            for k in range(PER_CONNECTION):
                response = await client.post(
                    "/api/recommendations/recipes", json={"user_id": users[(n * PER_CONNECTION + k) % len(users)]}
                )
                assert response.status_code == 200, response.text
                bodies.append(response.json())
            return bodies

        parts = await asyncio.gather(*(one(n) for n in range(CONNECTIONS)))
    return [body for part in parts for body in part]


def dropped(base_url: str) -> float:
    text = httpx.get(f"{base_url}/api/metrics", timeout=15).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "recipe_impressions_dropped_total"
    )


def test_answers_and_impressions_match_one_to_one_and_survive_a_stopped_broker(
    start_server: StartServer, kafka_broker: TansuBroker, model_store: Path, tmp_path: Path
) -> None:
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(
        "name: e2e\nsalt: s\nvariants:\n  - {name: shipped, weight: 1}\n"
        "  - {name: popular, weight: 1, overrides: {first_model: popularity}}\n"
    )
    kafka_broker.create_topic("recommendations")
    server = start_server({"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap, "EXPERIMENTS": str(experiment)})
    model, _ = load_from_store("recipe_popularity", home=model_store)
    users = [int(user) for user in model.users.ids[:60]]

    bodies = asyncio.run(_load(server.base_url, users))

    records = [json.loads(record.value) for record in kafka_broker.read_all("recommendations", len(bodies))]
    by_id = {record["recommendationId"]: record for record in records}
    assert len(records) == len(by_id) == len(bodies)
    assigned = load_experiment(experiment)
    for body in bodies:
        record = by_id[str(body["recommendation_id"])]
        assert record["userId"] == body["user_id"] and record["endpoint"] == "recipes"
        assert record["recipeIds"] == [r["recipe_id"] for r in body["recommendations"]]  # type: ignore[attr-defined]
        assert (record["variant"], record["model"], record["modelVersion"]) == (
            body["variant"],
            body["model_used"],
            body["model_version"],
        )
        assert body["variant"] == assigned.assign(int(body["user_id"])).name  # type: ignore[call-overload]
    assert {body["variant"] for body in bodies} == {"shipped", "popular"}
    assert all(body["model_used"] == "popularity" for body in bodies if body["variant"] == "popular")
    health = httpx.get(f"{server.base_url}/api/health", timeout=15).json()
    assert health["experiment"]["name"] == "e2e"

    kafka_broker.stop()
    before = dropped(server.base_url)
    while_down = asyncio.run(_load(server.base_url, users))  # every request answered: asserted in _load

    assert len(while_down) == CONNECTIONS * PER_CONNECTION
    wait_until(lambda: dropped(server.base_url) > before, 90, "impressions dropped while the broker is down")


def test_a_malformed_experiment_file_stops_the_start_naming_the_problem(model_store: Path, tmp_path: Path) -> None:
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text("name: e2e\nsalt: s\nvariants:\n  - {name: shipped, weight: 0}\n")

    with pytest.raises(ServerStartError) as failed:
        start_local_server(
            model_store, tmp_path / "server.log", env={"EXPERIMENTS": str(experiment)}, timeout_seconds=90
        )

    assert f"EXPERIMENTS={experiment}: variants.0.weight: Input should be greater than 0" in str(failed.value)
