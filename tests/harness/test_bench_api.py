"""The benchmark's pieces against real servers: wrk runs parsed, the peer's answers (short, no timing asserted)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from edge.model_store import load_from_store
from harness.bench_api import (
    BENCH_EXPERIMENT,
    FILTER_TAG,
    FLOOR,
    PLAIN_PEER,
    TAG_VOCABULARY,
    TAGS_PER_RECIPE,
    Phase,
    WrkResult,
    budget,
    catalogue_tags,
    filter_cost,
    measurement_cost,
    measurement_work,
    parse_wrk,
    reference_table,
    run_wrk,
    running_floor,
    service_cpu,
    with_cpu,
)
from harness.peer import create_app
from harness.server import LocalServer
from recipe_ml.models.base import Recommender
from tests.fixtures.tools import apt_install, require_tool

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model(model_store: Path) -> Recommender:
    return load_from_store("recipe_two_tower", home=model_store)[0]


def test_wrk_runs_count_answers_and_errors(
    server: LocalServer, redis_url: str, model: Recommender, tmp_path: Path
) -> None:
    require_tool("wrk", apt_install("wrk"))
    users = tmp_path / "users.txt"
    users.write_text("\n".join(str(u) for u in model.users.ids[:50]))
    unknown = tmp_path / "unknown.txt"
    unknown.write_text("999999999\n")

    uncached = run_wrk(server.base_url, users, "uncached", connections=2, seconds=1)
    cached = run_wrk(server.base_url, users, "cached", connections=2, seconds=1, warm_users=5)
    failing = run_wrk(server.base_url, unknown, "uncached", connections=1, seconds=1)

    assert uncached.requests > 0 and uncached.errors == 0 and uncached.rps > 0
    assert cached.requests > 0 and cached.errors == 0
    assert failing.requests > 0 and failing.errors == failing.requests  # every 404 counts as an error


def test_parse_wrk_reads_the_result_line_and_rejects_output_without_one() -> None:
    result = parse_wrk(
        "Running 1s test\nRESULT p50_us=1500 p99_us=9000 requests=200 duration_us=2000000 socket_errors=1 non2xx=2\n"
    )

    assert (result.p50_ms, result.p99_ms, result.requests, result.errors, result.rps) == (1.5, 9.0, 200, 3, 100.0)
    with pytest.raises(RuntimeError, match="no RESULT line"):
        parse_wrk("wrk: connection refused")


def run(rps: float, p50_ms: float) -> WrkResult:
    return WrkResult(p50_ms=p50_ms, p99_ms=2 * p50_ms, requests=int(rps * 10), seconds=10.0, errors=0)


def phases(
    api: WrkResult,
    off: WrkResult,
    filtered: WrkResult,
    cached: WrkResult | None = None,
    filtered_plain: WrkResult | None = None,
) -> list[Phase]:
    """The six phases with these results (``cached``, if given, as every API's in the cached ones; the filtered
    API's plain requests, uncached only, ``filtered_plain`` or the measured API's)."""
    return [
        Phase(
            mode,
            connections,
            *((api, off, filtered) if cached is None or mode == "uncached" else (cached, cached, cached)),
            (filtered_plain or api) if mode == "uncached" else None,
            {"async": run(1.0, 1.0)},
            "",
            {},
            {"recipe_ml_service": 2.5, "recipe_two_tower_runner": 3.0},
            {"recipe_ml_service": 2.0, "recipe_two_tower_runner": 3.0},
            {"async": 1.25},
            {PLAIN_PEER: run(2.0, 0.5), FLOOR: run(4.0, 0.25)} if mode == "uncached" else {},
            {PLAIN_PEER: 0.75, FLOOR: 0.5} if mode == "uncached" else {},
        )
        for mode in ("uncached", "cached")
        for connections in (1, 16, 64)
    ]


def test_the_measurement_cost_is_off_over_on_per_uncached_phase_its_target_on_16_connections() -> None:
    lines = measurement_cost(phases(run(100.0, 2.0), run(105.0, 1.6), run(1.0, 1.0)), 25.0)

    name = "measurement cost (id, assignment, impression log, shown lists)"
    assert lines == [
        f"{name}: req/s off/on at 16 connections uncached = 1.05x (target <= 1.05x)",
        f"{name}: req/s off/on at 1 connections uncached = 1.05x",
        f"{name}: req/s off/on at 64 connections uncached = 1.05x",
        f"{name}: p50 on/off at 16 connections uncached = 1.25x",
        f"{name}: p50 on/off at 1 connections uncached = 1.25x",
        f"{name}: p50 on/off at 64 connections uncached = 1.25x",
        *(
            f"{name}: CPU per request on/off at {connections} connections uncached = 1.10x "
            "(5.50 / 5.00 ms, all API processes; recipe_ml_service's workers 2.50 / 2.00 ms)"
            for connections in (1, 16, 64)
        ),
        f"{name}: its own work in process 25.0 us an answer = 0.5% of the CPU of an uncached request without it at"
        " 16 connections",
    ]


def test_the_filter_cost_is_plain_over_filtered_per_uncached_phase_in_one_server_then_against_the_measured_api() -> (
    None
):
    lines = filter_cost(
        phases(run(120.0, 2.0), run(1.0, 1.0), run(100.0, 2.5), cached=run(500.0, 9.0), filtered_plain=run(110.0, 2.0))
    )

    name = f"catalogue filter cost (exclude_tags [{FILTER_TAG}])"
    other = f"{name}, against the API without a catalogue"
    assert lines == [
        f"{name}: req/s plain/filtered at 16 connections uncached = 1.10x (target <= 1.10x)",
        f"{name}: req/s plain/filtered at 1 connections uncached = 1.10x",
        f"{name}: req/s plain/filtered at 64 connections uncached = 1.10x",
        f"{name}: p50 filtered/plain at 16 connections uncached = 1.25x",
        f"{name}: p50 filtered/plain at 1 connections uncached = 1.25x",
        f"{name}: p50 filtered/plain at 64 connections uncached = 1.25x",
        f"{other}: req/s plain/filtered at 16 connections uncached = 1.20x (target <= 1.10x)",
        f"{other}: req/s plain/filtered at 1 connections uncached = 1.20x",
        f"{other}: req/s plain/filtered at 64 connections uncached = 1.20x",
        f"{other}: p50 filtered/plain at 16 connections uncached = 1.25x",
        f"{other}: p50 filtered/plain at 1 connections uncached = 1.25x",
        f"{other}: p50 filtered/plain at 64 connections uncached = 1.25x",
    ]


def test_a_phase_without_the_filtered_apis_plain_requests_says_so() -> None:
    cached = phases(run(1.0, 1.0), run(1.0, 1.0), run(1.0, 1.0), cached=run(2.0, 1.0))[-1]

    with pytest.raises(ValueError, match="cached 64 conn: the filtered API answered no plain requests"):
        _ = cached.unfiltered


def test_the_catalogue_gives_each_recipe_ten_distinct_tags_the_filter_tag_to_about_a_tenth() -> None:
    recipe_ids = list(range(500_000, 508_437))

    tags = catalogue_tags(recipe_ids)

    assert tags == catalogue_tags(list(reversed(recipe_ids)))  # the same catalogue whatever the ids' order
    assert len(TAG_VOCABULARY) == len(set(TAG_VOCABULARY)) == 40
    assert sorted(tags) == recipe_ids
    assert all(len(set(t)) == len(t) == TAGS_PER_RECIPE and set(t) <= set(TAG_VOCABULARY) for t in tags.values())
    share = sum(FILTER_TAG in t for t in tags.values()) / len(tags)
    assert 0.09 < share < 0.11
    assert catalogue_tags(recipe_ids, seed=1) != tags


@pytest.mark.parametrize(
    ("in_thread_pool", "plain"), [(False, False), (True, False), (False, True)], ids=["async", "threads", "plain"]
)
def test_the_peer_ranks_unseen_recipes_and_honours_exclusions(
    model_store: Path, model: Recommender, in_thread_pool: bool, plain: bool
) -> None:
    peer = TestClient(create_app(model_store, in_thread_pool=in_thread_pool, plain=plain))
    user = int(model.users.ids[0])
    index = model.users.index_of(user)
    assert index is not None
    seen = set(model.items.ids[model.history(index)].tolist())

    first = peer.post("/api/recommendations/recipes", json={"user_id": user}).json()["recommendations"]
    top = first[0]["recipe_id"]
    again = peer.post("/api/recommendations/recipes", json={"user_id": user, "exclude_recipe_ids": [top]}).json()
    unknown = peer.post("/api/recommendations/recipes", json={"user_id": 999_999_999})

    assert len(first) == 10 and not {r["recipe_id"] for r in first} & seen
    assert top not in {r["recipe_id"] for r in again["recommendations"]}
    assert unknown.status_code == 404


def test_the_budget_prints_each_uncached_phases_cpu_per_request_and_the_ranking_alone() -> None:
    lines = budget(phases(run(1.0, 1.0), run(1.0, 1.0), run(1.0, 1.0)), (1.5, 0.25))

    assert lines == [
        "CPU per request, uncached (ms; user + system, over the chosen run):",
        *(
            f"  uncached {c:>2} conn   API: recipe_ml_service 2.50, recipe_two_tower_runner 3.00; all 5.50"
            " | peer: async 1.25, plain peer 0.75, floor 0.50"
            for c in (1, 16, 64)
        ),
        "ranking alone, in process (rank_inputs + exclusions + rank_rows): 1.50 ms for one user, 0.25 ms a user"
        " in batches of 16",
    ]


def test_cpu_per_request_is_what_the_processes_spent_over_the_requests_done() -> None:
    def busy() -> WrkResult:
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:
            pass
        return WrkResult(p50_ms=1.0, p99_ms=1.0, requests=100, seconds=1.0, errors=0)

    result, cpu = with_cpu(busy, {"this": psutil.Process()})

    assert result.requests == 100
    # At least 0.2 s of CPU over 100 requests, 2 ms each; the kernel counts CPU time in clock ticks (10 ms), so
    # the two readings around it may come out up to a tick short each.
    assert 1.8 <= cpu["this"] < 20.0


def test_the_plain_peer_ranks_by_the_vectors_alone(model_store: Path, model: Recommender) -> None:
    """The same user's lists differ once the personal positions are gone (the peer's price of EASE shows)."""
    users = [int(u) for u in model.users.ids[:20]]
    lists = {}
    for plain in (False, True):
        peer = TestClient(create_app(model_store, plain=plain))
        lists[plain] = [
            [
                r["recipe_id"]
                for r in peer.post("/api/recommendations/recipes", json={"user_id": u}).json()["recommendations"]
            ]
            for u in users
        ]
    assert lists[True] != lists[False]


def test_the_reference_table_sets_the_peer_beside_the_plain_peer_and_the_api_beside_two_floors() -> None:
    lines = reference_table(phases(run(100.0, 3.0), run(1.0, 1.0), run(1.0, 1.0)))

    assert lines[1:4] == [
        f"uncached {c:>2} conn       0.50     1.00       2 |      0.25     0.50       4 |            0.50x |"
        "                    2.00x"
        for c in (1, 16, 64)
    ]
    assert len(lines) == 5


def test_the_floor_is_a_bentoml_route_that_parses_the_body(tmp_path: Path, model: Recommender) -> None:
    user = int(model.users.ids[0])
    with running_floor(tmp_path, user) as floor:
        answer = httpx.post(f"{floor.base_url}/api/recommendations/recipes", json={"user_id": user})
        bad = httpx.post(f"{floor.base_url}/api/recommendations/recipes", json={"user_id": "x"})

    assert answer.json() == {"user_id": user, "recommendations": []}
    assert bad.status_code == 400 and "user_id" in bad.text
    assert floor.cold_start_seconds > 0


def test_the_measurements_own_work_is_timed_over_every_answer_written(tmp_path: Path) -> None:
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(BENCH_EXPERIMENT)

    work_us = measurement_work(experiment, [1, 2, 3], tmp_path, answers=300, rounds=2)

    lines = (tmp_path / "work_impressions.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 300, "the thread wrote every answer of each round before the clock stopped"
    assert {json.loads(line)["variant"] for line in lines} <= {"a", "b"}
    assert math.isfinite(work_us)  # a difference of two noisy CPU readings: its sign is not the test's to hold


def test_a_services_cpu_is_that_of_all_its_workers() -> None:
    cpu = {"recipe_ml_service": 1.0, "recipe_ml_service:4242": 0.5, "recipe_two_tower_runner": 3.0}
    assert service_cpu(cpu) == 1.5
    assert service_cpu(cpu, "recipe_two_tower_runner") == 3.0
