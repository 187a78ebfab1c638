"""The server as an operator runs it: bad settings, a Redis that stalls, dropped runner connections, memory.

Real processes only (``bentoml serve``, a private ``redis-server``); every
assertion is on statuses, answers and counts, none on durations: a request
may take up to its configured timeout on a busy machine.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from dotenv import dotenv_values
from prometheus_client.parser import text_string_to_metric_families

from edge.model_store import load_from_store
from harness.redis_server import RedisServer
from harness.server import ServerStartError, start_local_server
from recipe_ml.config import REPO_ROOT
from recipe_ml.models.base import Recommender
from tests.fixtures.server import StartServer
from tests.fixtures.tools import apt_install, require_tool
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.integration

CLIENTS = 8
"""Concurrent clients of the load parts."""


@pytest.fixture(scope="module")
def users(model_store: Path) -> list[int]:
    model: Recommender = load_from_store("recipe_popularity", home=model_store)[0]
    return [int(u) for u in model.users.ids]


def counter(client: httpx.Client, name: str, **labels: str) -> float:
    """Sum of the samples of metric ``name`` whose labels include ``labels``."""
    text = client.get("/api/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def _load(base_url: str, users: list[int], requests_per_client: int, seed: int = 0) -> Counter[str]:
    """``CLIENTS`` clients, each posting ``requests_per_client`` recommendation requests; status (and model) counts."""
    outcomes: Counter[str] = Counter()

    async def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            for _ in range(requests_per_client):
                response = await http.post("/api/recommendations/recipes", json={"user_id": rng.choice(users)})
                outcomes[str(response.status_code)] += 1
                if response.status_code == 200:
                    outcomes["cached" if response.json()["cached"] else response.json()["model_used"]] += 1

    await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    return outcomes


def unread_bytes(ss: str, pid: int) -> int:
    """Bytes waiting unread on the established Unix sockets of process ``pid`` (``ss -x``: the runners' sockets)."""
    listing = subprocess.run([ss, "-x", "-p", "-H", "state", "established"], capture_output=True, text=True, check=True)
    return sum(int(line.split()[1]) for line in listing.stdout.splitlines() if f"pid={pid}," in line)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("RUNNER_TIMEOUT_SECONDS", "0"), ("REDIS_URL", "http://x"), ("TWO_TOWER_MODEL", "no_such_model")],
)
def test_a_bad_setting_stops_the_server_at_start_up_naming_it(
    setting: str, value: str, model_store: Path, tmp_path: Path
) -> None:
    with pytest.raises(ServerStartError, match="bentoml serve exited") as failure:
        server = start_local_server(model_store, tmp_path / "server.log", env={setting: value})
        server.stop()

    assert setting in str(failure.value)


def test_the_example_secrets_stop_the_server_naming_each_variable(model_store: Path, tmp_path: Path) -> None:
    """A compose API replica started from an unedited copy of deploy/secrets.env.example."""
    example = dotenv_values(REPO_ROOT / "deploy/secrets.env.example")
    env = {name: str(example[name]) for name in ("API_KEYS", "REDIS_URL")}

    with pytest.raises(ServerStartError, match="bentoml serve exited") as failure:
        server = start_local_server(model_store, tmp_path / "server.log", env=env)
        server.stop()

    assert "API_KEYS, REDIS_URL: still the change-me-... placeholder" in str(failure.value)
    assert not any(value in str(failure.value) for value in env.values())


def test_a_stalled_redis_degrades_then_recovers_by_itself(
    start_server: StartServer, private_redis: RedisServer, users: list[int]
) -> None:
    server = start_server({"REDIS_URL": private_redis.url()})
    event = {"userId": users[0], "recipeId": 1, "interactionType": "view"}
    with httpx.Client(base_url=server.base_url, timeout=30) as api:
        assert api.post("/api/interactions", json={**event, "eventId": "before"}).status_code == 202

        private_redis.pause()
        try:
            during = asyncio.run(_load(server.base_url, users, 10, seed=1))
            stalled_event = api.post("/api/interactions", json={**event, "eventId": "during"})
            stalled_health = api.get("/api/health").json()
        finally:
            private_redis.resume()
        wait_until(lambda: api.get("/api/health").json()["redis"] == "ok", 60, "health sees Redis resumed")
        after_resume = api.post("/api/interactions", json={**event, "eventId": "after-resume"})

        private_redis.stop()
        private_redis.start()
        wait_until(lambda: api.get("/api/health").json()["redis"] == "ok", 60, "health sees Redis restarted")
        after_restart = api.post("/api/interactions", json={**event, "eventId": "after-restart"})
        cached = [api.post("/api/recommendations/recipes", json={"user_id": users[1]}).json() for _ in range(2)]

    assert during["200"] == CLIENTS * 10 and during["cached"] == 0, during
    assert stalled_event.status_code == 503 and "retry" in stalled_event.json()["detail"]
    assert stalled_health["status"] == "degraded" and stalled_health["redis"] == "unreachable"
    assert after_resume.status_code == 202
    assert after_restart.status_code == 202
    assert [body["cached"] for body in cached] == [False, True], "the cache works again after the restart"


def test_a_dropped_runner_connection_is_retried(start_server: StartServer, users: list[int]) -> None:
    """The Two-Tower runner dies with a request in flight: the API retries on a fresh connection.

    The runner is paused, and killed once the request waits unread on its
    connection (``ss`` shows the bytes): the connection drops under the
    request. The retry reaches the runner BentoML restarts, or the request
    falls through to ALS within its timeout; either way it is answered, and
    the retry is counted.
    """
    ss = require_tool("ss", apt_install("iproute2"))
    server = start_server({"CACHE_TTL_SECONDS": "0"})
    with httpx.Client(base_url=server.base_url, timeout=30) as api:
        retries_before = counter(api, "recipe_api_runner_retries_total", model="two_tower")
        runner = server.runner_process("two_tower")
        answers: list[httpx.Response] = []
        # Just before the pause: the API's connection to the runner is open (kept alive), so the
        # request below is written on it rather than waiting for a new one to be accepted.
        assert api.post("/api/recommendations/recipes", json={"user_id": users[0]}).json()["model_used"] == "two_tower"

        runner.send_signal(signal.SIGSTOP)
        request = threading.Thread(
            target=lambda: answers.append(api.post("/api/recommendations/recipes", json={"user_id": users[1]}))
        )
        request.start()
        wait_until(lambda: unread_bytes(ss, runner.pid) > 0, 60, "the request waits in the paused runner's socket")
        runner.send_signal(signal.SIGKILL)
        request.join()

        retried = counter(api, "recipe_api_runner_retries_total", model="two_tower") - retries_before
        wait_until(
            lambda: (
                api.post("/api/recommendations/recipes", json={"user_id": users[2]}).json()["model_used"] == "two_tower"
            ),
            120,
            "the restarted Two-Tower runner answers again",
        )

    assert answers[0].status_code == 200 and answers[0].json()["model_used"] in {"two_tower", "als"}
    assert retried == 1


def test_memory_stays_flat_under_sustained_load(start_server: StartServer, users: list[int]) -> None:
    """Growth of every process over a few thousand uncached requests, after a warm-up.

    Retained per-request state (request contexts kept alive by BentoML's
    traffic timers, before ``edge.compat``) grew every process by several KB
    per request until a plateau far above this slack; the Two-Tower runner
    kept the high-water mark of the longest histories it had scored (the EASE
    gather's temporaries, before ``ease.GATHER_BLOCK``), a few MB more each
    time a longer one came.
    """
    server = start_server({"CACHE_TTL_SECONDS": "0"})
    asyncio.run(_load(server.base_url, users, 100, seed=2))  # warm-up: lazy imports, pools, allocator arenas
    before = server.rss_by_process()
    requests_per_client = 400
    outcomes = asyncio.run(_load(server.base_url, users, requests_per_client, seed=3))
    after = server.rss_by_process()

    total = CLIENTS * requests_per_client
    growth = {name: (after[name] - before[name]) / total for name in before}
    assert outcomes["200"] == total
    assert all(per_request <= 2048 for per_request in growth.values()), {
        name: f"{per_request:.0f} B/request" for name, per_request in growth.items()
    }
