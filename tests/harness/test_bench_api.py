"""The benchmark's load phases against the shared test server (short, no timing asserted)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.model_store import load_from_store
from harness.bench_api import run_phase
from harness.server import LocalServer

pytestmark = pytest.mark.integration


def test_phases_count_answers_and_errors(server: LocalServer, redis_url: str, model_store: Path) -> None:
    users = [int(u) for u in load_from_store("recipe_popularity", home=model_store)[0].users.ids[:50]]

    uncached = asyncio.run(run_phase("uncached", server.base_url, users, clients=2, seconds=1.0, cached=False))
    cached = asyncio.run(run_phase("cached", server.base_url, users, clients=2, seconds=1.0, cached=True))
    failing = asyncio.run(run_phase("unknown", server.base_url, [999_999_999], clients=1, seconds=0.5, cached=False))

    assert uncached.errors == 0 and len(uncached.latencies_ms) > 0
    assert cached.errors == 0 and len(cached.latencies_ms) > 0  # only answers served from the cache count
    assert failing.errors > 0 and not failing.latencies_ms  # a 404 is an error, not a latency sample
    assert "p50" in uncached.line() and uncached.throughput > 0
