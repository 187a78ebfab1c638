"""Latency, throughput and memory of the API, uncached and cached, in one run.

    python -m harness.bench_api --bentoml-home /tmp/bench_home   # starts a server
    python -m harness.bench_api --bentoml-home /tmp/bench_home --redis-url redis://127.0.0.1:6379/14
    python -m harness.bench_api --url http://127.0.0.1:8000 --pid 1234

Four phases of ``--seconds`` each against ``POST /api/recommendations/recipes``:
uncached (every request excludes a random recipe id, so its cache key is new
and the runner scores it) and cached (a few warmed requests repeated), each
at 1 and ``--clients`` concurrent clients. Prints p50/p99 latency, requests/s
and errors per phase, then the resident memory of all service processes. All
figures come from one run on purpose: this machine is shared and noisy, so
compare ratios within a run rather than across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil

from edge.model_store import load_from_store
from harness.server import LocalServer, start_local_server
from recipe_ml.config import get_settings

TARGETS = {
    "uncached p50 at 1 client (ms)": 10.0,
    "cached p50 at 1 client (ms)": 3.0,
    "uncached throughput at 16 clients (req/s)": 150.0,
    "RSS of all service processes (MB)": 1024.0,
}


@dataclass
class Phase:
    name: str
    latencies_ms: list[float]
    errors: int
    seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def line(self) -> str:
        return (
            f"{self.name:<22} p50 {self.percentile(50):7.2f} ms  p99 {self.percentile(99):7.2f} ms  "
            f"{self.throughput:7.1f} req/s  {len(self.latencies_ms):6d} ok  {self.errors} errors"
        )


async def run_phase(
    name: str, base_url: str, users: list[int], clients: int, seconds: float, cached: bool, seed: int = 0
) -> Phase:
    """``clients`` closed-loop clients for ``seconds``; cached = a fixed set of warmed requests."""
    latencies: list[float] = []
    errors = 0
    warm_users = users[:20]
    deadline = 0.0  # set once the cache is warm

    async def client(index: int) -> None:
        nonlocal errors
        rng = random.Random(seed * 1000 + index)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            while time.perf_counter() < deadline:
                if cached:
                    body: dict[str, object] = {"user_id": rng.choice(warm_users)}
                else:
                    body = {"user_id": rng.choice(users), "exclude_recipe_ids": [rng.randrange(10**12)]}
                started = time.perf_counter()
                response = await http.post("/api/recommendations/recipes", json=body)
                elapsed = (time.perf_counter() - started) * 1000.0
                if response.status_code == 200 and (response.json()["cached"] or not cached):
                    latencies.append(elapsed)
                else:
                    errors += 1

    if cached:  # warm the cache (a miss caches the answer of the preferred model)
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            for uid in warm_users:
                await http.post("/api/recommendations/recipes", json={"user_id": uid})
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(client(i) for i in range(clients)))
    return Phase(name, latencies, errors, time.perf_counter() - started)


def rss_mb(server: LocalServer | None, pid: int | None) -> float | None:
    if server is not None:
        return server.rss_bytes() / 2**20
    if pid is None:
        return None
    root = psutil.Process(pid)
    total: int = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--bentoml-home", type=Path, help="start a server on the models of this BENTOML_HOME")
    target.add_argument("--url", help="benchmark a running server")
    parser.add_argument("--pid", type=int, help="with --url: pid of its `bentoml serve`, for the memory figure")
    parser.add_argument("--redis-url", help="with --bentoml-home: serve with this REDIS_URL (default: in-process)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--users", type=int, default=1000, help="distinct training users to request")
    args = parser.parse_args()

    home = args.bentoml_home
    popularity, _ = load_from_store(get_settings().popularity_model, home=home)
    users = [
        int(u) for u in random.Random(0).sample(list(popularity.users.ids), min(args.users, len(popularity.users)))
    ]

    server = None
    if home is not None:
        log = Path(tempfile.mkdtemp(prefix="benchmark_api_")) / "server.log"
        server = start_local_server(home, log, env={"REDIS_URL": args.redis_url} if args.redis_url else None)
        print(f"server {server.base_url} (log: {log})")
    base_url = server.base_url if server else args.url
    try:
        phases = [
            asyncio.run(run_phase(f"uncached {n:>2} client(s)", base_url, users, n, args.seconds, cached=False))
            for n in (1, args.clients)
        ] + [
            asyncio.run(run_phase(f"cached   {n:>2} client(s)", base_url, users, n, args.seconds, cached=True))
            for n in (1, args.clients)
        ]
        memory = rss_mb(server, args.pid)
        if server is not None:
            for proc in server.processes():
                command = " ".join(proc.cmdline()[1:6])
                print(f"  pid {proc.pid:>7} rss {proc.memory_info().rss / 2**20:6.0f} MB  {command}")
    finally:
        if server is not None:
            server.stop()

    for phase in phases:
        print(phase.line())
    print(f"RSS of all service processes: {memory:.0f} MB" if memory is not None else "RSS: pass --pid to measure")
    figures = {
        "uncached p50 at 1 client (ms)": phases[0].percentile(50),
        "cached p50 at 1 client (ms)": phases[2].percentile(50),
        "uncached throughput at 16 clients (req/s)": phases[1].throughput,
        "RSS of all service processes (MB)": memory,
    }
    print(f"uncached/cached p50 ratio at 1 client: {phases[0].percentile(50) / phases[2].percentile(50):.1f}x")
    for name, limit in TARGETS.items():
        value = figures[name]
        if value is None:
            continue
        ok = value >= limit if "throughput" in name else value <= limit
        print(f"target {name}: {value:.2f} vs {limit:g} -> {'met' if ok else 'MISSED'}")
    if any(phase.errors for phase in phases):
        print(f"ERRORS: {sum(phase.errors for phase in phases)} failed requests")


if __name__ == "__main__":
    main()
