"""The API against a one-process peer, in one run: latency, throughput, errors, batch sizes, memory, cold start.

    python -m harness.bench_api --bentoml-home ./bentoml_home            # make bench
    python -m harness.bench_api --bentoml-home ./bentoml_home --seconds 5 --redis-url redis://127.0.0.1:6379/14

Starts ``bentoml serve`` (the API, ``--workers`` of it, and its runners) and ``harness.peer`` (the
same stored Two-Tower vectors and ranking work in one FastAPI process) in its
two forms: its handler on the event loop (``async``) and in Starlette's thread
pool (``threads``). The API runs with what measures it online: an experiment of
two arms that rank alike, and the impression log in a JSONL file (with each
answer's shown list kept for attribution); a second API without them
(``IMPRESSION_LOG_ENABLED=false``, no experiment) runs right after it in each
phase, so the measurement's cost is printed side by side. A third API has
the measured API's settings and a catalogue: every recipe of the stored
Two-Tower with 10 tags drawn from a vocabulary of 40 (``catalogue_tags``:
``contains:peanut`` on about 10% of them), seeded through
``POST /api/recipes/bulk`` in chunks of 1000 before the runs, and every
request it gets carries ``"exclude_tags": ["contains:peanut"]``, so the
catalogue filter's cost is printed side by side too. Before the runs one
filtered request per warmed user must return no tagged recipe (the run exits
otherwise). In each phase the three APIs run in the order A B C C B A
(A measured, B without the measurement, C filtered), each at its better run:
every API's two runs sit at the same mean time, so a drift in the machine's
load favours none. Uncached, C also answers plain requests around its
filtered runs (A B C' C C C' B A): the filter's cost is read within C's
processes, and against A's as well. Drives them all with wrk (``harness/wrk_recipes.lua``) on
``POST /api/recommendations/recipes``, user ids rotating over every training
user: uncached (each request excludes a recipe id never sent before, so the
model scores it) and cached (a few warmed requests repeated), at 1, 16 and 64
connections, the APIs and the peers one after the other in each phase so they
see the same machine. Prints p50, p99, requests/s and errors per phase with
the API/peer ratios against the better peer of each phase (its lower p50, its
higher requests/s), so the API is compared with the peer at its best; the
batch sizes the Two-Tower runner saw, the fallbacks (BentoML shedding load,
answered by the next model, apart from failures), the resident memory of
every process and the cold start (process start to the first 200). The
budget of an uncached request follows: the CPU each of the measured API's
processes and each peer form spent per request over the run chosen, and the
ranking work alone (the peer's ``rank_users`` for one user, and over
batches of 16), timed in this process before any server starts. Two
references run in the uncached phases, after the peers: the peer ranking by
the vectors alone (``--plain``: no personal scorer, so the scorer's price
shows) and the floor of one BentoML hop (``harness.floor``: one route that
only parses the body); the API's p50 is set against two such hops (its own
and its runner's) plus the peer's. The
targets are printed, never asserted: compare ratios within a run, since
absolute figures move with the machine's load. About 13 minutes at
``--seconds 10`` (60 wrk runs).

Without ``--redis-url`` each API keeps its catalogue in process, so only the
filtered API has one. With it the catalogue is Redis's: the three APIs share
it (the other two filter nothing with it) and the records stay in that
database after the run.

wrk comes from the distribution's packages (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from edge.model_store import load_from_store
from harness.net import free_port
from harness.server import LocalServer, start_local_server
from recipe_ml.config import REPO_ROOT, get_settings

WRK_SCRIPT = Path(__file__).with_name("wrk_recipes.lua")
CONNECTIONS = (1, 16, 64)
MODES = ("uncached", "cached")
WARM_USERS = 20
"""Users of the cached phases (their answers are cached before the phase)."""
PEER_FORMS = {"async": False, "threads": True}
"""The peer's handler forms: name -> runs in Starlette's thread pool (``harness.peer --thread-pool``)."""
PLAIN_PEER, FLOOR = "plain peer", "floor"
REFERENCES = (PLAIN_PEER, FLOOR)
"""What the uncached phases also run, beside the peer: the peer ranking by the vectors alone (``harness.peer
--plain``, an ``async`` handler) and one BentoML route that only parses the body (``harness.floor``)."""
RECIPES_PATH = "/api/recommendations/recipes"
HOP_METRIC = "recipe_api_runner_hop_queries"
"""The API's histogram of the queries one hop to a runner carried (``edge.remote.Coalesced``)."""
BENCH_EXPERIMENT = "name: bench\nsalt: bench\nvariants:\n  - {name: a, weight: 1}\n  - {name: b, weight: 1}\n"
"""Two arms doing the same ranking work: what is measured is the assignment and the logging, not a policy."""
COST_TARGET = 1.05
"""The measurement's most: requests/s without it over requests/s with it, at 16 connections, uncached."""
FILTER_TAG = "contains:peanut"
"""The tag every request of the filtered API excludes."""
FILTER_SHARE = 0.10
"""About this share of the catalogue's recipes carries ``FILTER_TAG``."""
TAGS_PER_RECIPE = 10
TAG_VOCABULARY = (
    *(f"diet:{d}" for d in ("vegetarian", "vegan", "pescatarian", "gluten-free", "dairy-free", "low-carb")),
    *(f"diet:{d}" for d in ("keto", "halal")),
    *(f"contains:{c}" for c in ("peanut", "tree-nut", "egg", "milk", "soy", "wheat", "fish", "shellfish")),
    *(f"contains:{c}" for c in ("sesame", "mustard")),
    *(f"course:{c}" for c in ("breakfast", "starter", "main", "side", "dessert", "snack", "drink")),
    *(f"cuisine:{c}" for c in ("thai", "italian", "indian", "mexican", "chinese", "japanese", "french", "greek")),
    *(f"cuisine:{c}" for c in ("spanish", "british", "american", "moroccan")),
    *(f"time:{t}" for t in ("under-15", "under-30", "over-60")),
)
"""40 tags of the benchmark's catalogue."""
CATALOGUE_SEED = 20261204
BULK_CHUNK = 1000
"""Records per ``POST /api/recipes/bulk`` (CATALOGUE_BULK_LIMIT's default)."""
FILTER_TARGET = 1.10
"""The filters' most: requests/s without them over requests/s with them, at 16 connections, uncached."""
_RUNS = itertools.count()
"""Numbers the wrk runs of this process, so uncached bodies never repeat across runs."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: latency percentiles, completed requests, errors (socket errors and non-2xx)."""

    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        sys.exit("wrk not found: install it with `apt-get install wrk` (make system-deps)")
    return binary


def run_wrk(
    base_url: str,
    users_file: Path,
    mode: str,
    connections: int,
    seconds: float,
    warm_users: int = WARM_USERS,
    exclude_tags: Sequence[str] = (),
) -> WrkResult:
    """wrk with ``WRK_SCRIPT`` against ``base_url`` (``mode`` uncached or cached), each body with ``exclude_tags``."""
    threads = 1 if connections == 1 else 2
    run = str(next(_RUNS) % 100)
    env = {
        **os.environ,
        "USERS_FILE": str(users_file),
        "MODE": mode,
        "WARM_USERS": str(warm_users),
        "RUN": run,
        "EXCLUDE_TAGS": json.dumps(list(exclude_tags)) if exclude_tags else "",
    }
    command = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_SCRIPT),
        base_url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> WrkResult:
    """The ``RESULT`` line the script's ``done()`` prints."""
    match = re.search(r"^RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{output}")
    values = {key: int(value) for key, value in (pair.split("=") for pair in match.group(1).split())}
    return WrkResult(
        p50_ms=values["p50_us"] / 1000.0,
        p99_ms=values["p99_us"] / 1000.0,
        requests=values["requests"],
        seconds=values["duration_us"] / 1e6,
        errors=values["socket_errors"] + values["non2xx"],
    )


def metric_values(base_url: str, path: str = "/api/metrics") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``path`` (the API's ``/api/metrics``; a runner's BentoML ``/metrics``), by name and labels."""
    text = httpx.get(f"{base_url}{path}", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def batch_sizes(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    metric: str = "recipe_runner_batch_size",
) -> str:
    """Mean and largest-bucket batch size the Two-Tower runner saw between two metric snapshots (``metric``:
    another histogram of queries, ``recipe_api_runner_hop_queries`` for the queries each hop to it carried)."""
    labels = (("api", "recommend"), ("model", "two_tower"))

    def delta(name: str, extra: tuple[tuple[str, str], ...] = ()) -> float:
        key = (name, tuple(sorted(labels + extra)))
        return after.get(key, 0.0) - before.get(key, 0.0)

    count = delta(f"{metric}_count")
    if count <= 0:
        return "none"
    mean = delta(f"{metric}_sum") / count
    buckets = sorted(
        (float(dict(key[1])["le"]), after[key] - before.get(key, 0.0))
        for key in after
        if key[0] == f"{metric}_bucket"
        and dict(key[1]).get("model") == "two_tower"
        and dict(key[1]).get("api") == "recommend"
    )
    p90 = next((le for le, n in buckets if n >= 0.9 * count), float("inf"))
    return f"mean {mean:.1f}, p90 <= {p90:g} ({count:.0f})"


def fallbacks(
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    after: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> dict[str, float]:
    """Fallbacks by reason between two snapshots (``overloaded``: BentoML shed the request)."""
    reasons: dict[str, float] = {}
    for key, value in after.items():
        if key[0] in ("recipe_api_fallbacks_total", "recipe_api_runner_retries_total"):
            labels = dict(key[1])
            reason = labels.get("reason", "retried")
            change = value - before.get(key, 0.0)
            if change:
                reasons[f"{labels['model']}:{reason}"] = reasons.get(f"{labels['model']}:{reason}", 0.0) + change
    return reasons


def load_users(home: Path | None) -> list[int]:
    """Every training user of the stored Two-Tower model."""
    return load_ids(home)[0]


def load_ids(home: Path | None) -> tuple[list[int], list[int]]:
    """Every training user and every recipe of the stored Two-Tower model."""
    model, _ = load_from_store(get_settings().two_tower_model, home=home)
    return [int(u) for u in model.users.ids], [int(r) for r in model.items.ids]


def catalogue_tags(recipe_ids: Sequence[int], seed: int = CATALOGUE_SEED) -> dict[int, list[str]]:
    """``TAGS_PER_RECIPE`` distinct tags of ``TAG_VOCABULARY`` for each recipe, the same for the same ids.

    ``FILTER_TAG`` on each recipe with probability ``FILTER_SHARE``, the other tags uniform over the rest of
    the vocabulary (each on about a quarter of the recipes).
    """
    rng = np.random.default_rng(seed)
    others = [tag for tag in TAG_VOCABULARY if tag != FILTER_TAG]
    tags: dict[int, list[str]] = {}
    for recipe_id in sorted(recipe_ids):
        marked = bool(rng.random() < FILTER_SHARE)
        drawn = [others[i] for i in rng.choice(len(others), TAGS_PER_RECIPE - marked, replace=False)]
        tags[recipe_id] = sorted([*drawn, FILTER_TAG] if marked else drawn)
    return tags


def seed_catalogue(base_url: str, tags: dict[int, list[str]]) -> None:
    """Every record of ``tags`` through ``POST /api/recipes/bulk``, ``BULK_CHUNK`` at a time (exits on a refusal)."""
    records = [{"recipe_id": recipe_id, "tags": recipe_tags} for recipe_id, recipe_tags in tags.items()]
    for start in range(0, len(records), BULK_CHUNK):
        chunk = records[start : start + BULK_CHUNK]
        answer = httpx.post(f"{base_url}/api/recipes/bulk", json={"recipes": chunk}, timeout=60)
        if answer.status_code != 200 or answer.json()["applied"] != len(chunk):
            sys.exit(f"seeding the catalogue: records {start}.. answered {answer.status_code}: {answer.text[:500]}")
    health = httpx.get(f"{base_url}/api/health", timeout=30).json()["catalogue"]
    if health["recipes"] != len(records):
        sys.exit(f"seeding the catalogue: {len(records)} records sent, the API holds {health['recipes']}")


def check_filter(base_url: str, users: Sequence[int], tagged: set[int]) -> tuple[int, int]:
    """Exits unless each user's answer with ``exclude_tags: [FILTER_TAG]`` holds none of ``tagged``.

    Returns how many of the same users' unfiltered answers' recipes are ``tagged``, and of how many: what the
    filter had to keep out.
    """
    shown = kept_out = 0
    for user in users:
        filtered, plain = (
            httpx.post(f"{base_url}{RECIPES_PATH}", json={"user_id": user, **extra}, timeout=30)
            for extra in ({"exclude_tags": [FILTER_TAG]}, {})
        )
        if filtered.status_code != 200 or plain.status_code != 200:
            sys.exit(f"filter check, user {user}: answered {filtered.status_code} and {plain.status_code}")
        ids = [r["recipe_id"] for r in filtered.json()["recommendations"]]
        leaked = sorted(set(ids) & tagged)
        if leaked:
            sys.exit(f"filter check, user {user}: exclude_tags [{FILTER_TAG}] returned tagged recipes {leaked}")
        plain_ids = [r["recipe_id"] for r in plain.json()["recommendations"]]
        shown += len(plain_ids)
        kept_out += len(set(plain_ids) & tagged)
    return kept_out, shown


def first_200(base_url: str, user_id: int, started: float, process: subprocess.Popen[bytes]) -> float:
    """Seconds from ``started`` until a recommendation for ``user_id`` answers 200 (the cold start)."""
    while process.poll() is None:
        try:
            if httpx.post(f"{base_url}{RECIPES_PATH}", json={"user_id": user_id}, timeout=30).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{base_url}: the process exited with {process.returncode} before answering")


@contextmanager
def running_api(home: Path, user_id: int, env: dict[str, str]) -> Iterator[tuple[LocalServer, float]]:
    """``bentoml serve`` on the models of ``home``: the server and its cold start in seconds."""
    log = Path(tempfile.mkdtemp(prefix="bench_api_")) / "server.log"
    started = time.perf_counter()
    server = start_local_server(home, log, env=env)
    try:
        yield server, first_200(server.base_url, user_id, started, server.process)
    finally:
        server.stop()


@dataclass(frozen=True)
class RunningPeer:
    base_url: str
    process: psutil.Process
    cold_start_seconds: float


@contextmanager
def running_peer(home: Path, user_id: int, in_thread_pool: bool, *, plain: bool = False) -> Iterator[RunningPeer]:
    """``harness.peer`` (in one of its ``PEER_FORMS``, or ``plain``: ranking by the vectors alone) on a free
    port, started and answering."""
    command = [sys.executable, "-m", "harness.peer", "--bentoml-home", str(home)]
    command += ["--thread-pool"] if in_thread_pool else []
    command += ["--plain"] if plain else []
    with running_reference(command, {}, user_id) as peer:
        yield peer


@contextmanager
def running_floor(home: Path, user_id: int) -> Iterator[RunningPeer]:
    """``harness.floor`` (one BentoML route that parses the body) under ``bentoml serve``, started and answering.

    ``home``: a BENTOML_HOME of its own (BentoML clears the metrics of the home a server starts in).
    """
    bentoml = Path(sys.executable).parent / "bentoml"
    command = [str(bentoml), "serve", "harness.floor:Floor", "--host", "127.0.0.1"]
    with running_reference(command, {"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}, user_id) as floor:
        yield floor


@contextmanager
def running_reference(command: list[str], env: dict[str, str], user_id: int) -> Iterator[RunningPeer]:
    """``command`` and ``--port`` a free port, in the repository with ``env``, until it answers a recommendation.

    Its output goes to a file, as the API's does (``server.log``): an access log line a request costs both the
    same, and none floods the benchmark's own output.
    """
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OPENBLAS_NUM_THREADS": "1", **env}
    log = Path(tempfile.mkdtemp(prefix="bench_reference_")) / "server.log"
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        yield RunningPeer(base_url, psutil.Process(process.pid), first_200(base_url, user_id, started, process))
    finally:
        process.terminate()
        process.wait(timeout=20)


def ratio(api: float, peer: float) -> str:
    return f"{api / peer:5.2f}x" if peer > 0 else "   n/a"


def with_children(process: psutil.Process) -> dict[str, psutil.Process]:
    """``process`` and every process it started, by pid: what a server's CPU is counted over."""
    return {str(proc.pid): proc for proc in [process, *process.children(recursive=True)]}


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds (user + system) each process has used so far (0 for one that has gone)."""
    used = {}
    for name, proc in processes.items():
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            times = None
        used[name] = 0.0 if times is None else times.user + times.system
    return used


def with_cpu(run: Callable[[], WrkResult], processes: dict[str, psutil.Process]) -> tuple[WrkResult, dict[str, float]]:
    """``run``'s result and the milliseconds of CPU each process spent per completed request during it."""
    before = cpu_seconds(processes)
    result = run()
    after = cpu_seconds(processes)
    return result, {name: 1000 * (after[name] - before[name]) / max(result.requests, 1) for name in processes}


RANKING_USERS = 200
"""Users the in-process ranking is timed over (one at a time, then in batches of ``RANKING_BATCH``)."""
RANKING_BATCH = 16


def ranking_cost(home: Path) -> tuple[float, float]:
    """Milliseconds of the peer's ranking work (``harness.peer.rank_users``) for one user, median over
    ``RANKING_USERS``, and per user over batches of ``RANKING_BATCH`` (what a runner does with a batch), in
    this process."""
    from harness.peer import rank_users
    from recipe_ml.ranking import normalize_rows

    model, _ = load_from_store("recipe_two_tower", home=home)
    unit = normalize_rows(model.item_vectors)
    users = np.arange(min(RANKING_USERS, len(model.users)))
    alone = []
    for index in users:
        started = time.perf_counter()
        rank_users(model, unit, users[index : index + 1], [], 10)
        alone.append(time.perf_counter() - started)
    started = time.perf_counter()
    for first in range(0, users.size, RANKING_BATCH):
        rank_users(model, unit, users[first : first + RANKING_BATCH], [], 10)
    batched = (time.perf_counter() - started) / users.size
    return 1000 * float(np.median(alone)), 1000 * batched


MEASURED_ANSWERS = 4_000
"""Answers each round of the in-process reading of the measurement's work publishes (ids and users of the bench)."""
MEASURED_ROUNDS = 4
"""Rounds of that reading, each the loop without the log and then with it (the median difference is printed)."""
REQUEST_WORK = 20_000
"""Steps of a plain Python loop standing in for the rest of a request between two answers."""
IDLE_EVERY = 4
"""Answers between two idle moments of the loop (as an event loop waiting on its sockets): the log's thread writes
then, as it does in a server."""


def _request_work() -> int:
    """CPU spent as the rest of a request would: what the log's work runs between (and its caches go cold in)."""
    total = 0
    for step in range(REQUEST_WORK):
        total += step
    return total


def measurement_work(
    experiment_file: Path,
    users: Sequence[int],
    scratch: Path,
    answers: int = MEASURED_ANSWERS,
    rounds: int = MEASURED_ROUNDS,
) -> float:
    """Microseconds of process CPU (every thread's) the measurement's own work adds to an answer, in this process:
    the id, the assignment, the impression published, and the log's thread writing its JSONL line and keeping its
    shown list (in the in-process store), until the thread has written every answer.

    Paced as a server's answers come: each answer is published alone after ``REQUEST_WORK`` of other work,
    with an idle moment every ``IDLE_EVERY`` answers, in which the thread writes what has come. Each round runs
    the same loop without the log, then with it; the median difference over ``rounds`` is returned. Not a burst
    of answers: the thread would write hundreds of records a batch with its caches warm, and read several
    times lower than a server pays. What the measured API does on top of the other, apart from what differs
    between two servers' processes.
    """
    from recipe_ml.events.schema import new_recommendation_id
    from recipe_ml.experiments import load_experiment
    from recipe_ml.serving.impressions import Impression, ImpressionLog, JsonlSink
    from recipe_ml.storage.memory import MemoryInteractionStore

    experiment = load_experiment(experiment_file)

    def paced(log: ImpressionLog | None) -> float:
        started = time.process_time()
        for answer in range(answers):
            _request_work()
            if log is not None:
                user = users[answer % len(users)]
                variant = experiment.assign(user)
                recipes = list(range(answer, answer + 10))
                impression = Impression(
                    new_recommendation_id(), "recipes", variant.name, "two_tower", "bench", user, recipes
                )
                log.publish(impression)
            if answer % IDLE_EVERY == 0:
                time.sleep(0.0005)
        if log is not None:
            log.close(timeout=120)
        return time.process_time() - started

    added = []
    for _ in range(rounds):
        without = paced(None)
        sink = JsonlSink(scratch / "work_impressions.jsonl", 2**30)
        added.append(paced(ImpressionLog(sink, answers + 1, MemoryInteractionStore(24.0), 600)) - without)
    return 1e6 * float(np.median(added)) / answers


def budget(phases: list[Phase], ranking: tuple[float, float]) -> list[str]:
    """The uncached phases' CPU per request in each process of the API and in each peer form, and the ranking
    alone, in milliseconds."""
    lines = ["CPU per request, uncached (ms; user + system, over the chosen run):"]
    for phase in phases:
        if phase.mode != "uncached":
            continue
        api = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(phase.api_cpu.items()))
        peers = ", ".join(f"{form} {ms:.2f}" for form, ms in {**phase.peer_cpu, **phase.reference_cpu}.items())
        total = sum(phase.api_cpu.values())
        lines.append(f"  {phase.name:<18} API: {api}; all {total:.2f} | peer: {peers}")
    alone, batched = ranking
    lines.append(
        f"ranking alone, in process (rank_inputs + exclusions + rank_rows): {alone:.2f} ms for one user, "
        f"{batched:.2f} ms a user in batches of {RANKING_BATCH}"
    )
    return lines


@dataclass(frozen=True)
class Phase:
    """One mode at one concurrency: the API's run, each peer form's, and what the API's metrics saw."""

    mode: str
    connections: int
    api: WrkResult
    off: WrkResult
    """The API with the impression log off and no experiment (``IMPRESSION_LOG_ENABLED=false``)."""
    filtered: WrkResult
    """The API's settings with the catalogue, every request with ``exclude_tags: [FILTER_TAG]``."""
    filtered_plain: WrkResult | None
    """The same API with the catalogue, requests without the filter (uncached phases; None: cached)."""
    peers: dict[str, WrkResult]
    batches: str
    fallbacks: dict[str, float]
    api_cpu: dict[str, float]
    """Milliseconds of CPU per request in each of the measured API's processes, over its chosen run."""
    off_cpu: dict[str, float]
    """The same for the API without the measurement."""
    peer_cpu: dict[str, float]
    """Milliseconds of CPU per request of each peer form's process."""
    references: dict[str, WrkResult]
    """Uncached phases: the plain-vector peer and the floor of one BentoML hop (``REFERENCES``); else empty."""
    reference_cpu: dict[str, float]
    """Milliseconds of CPU per request of each reference's process (its main process)."""

    @property
    def name(self) -> str:
        return f"{self.mode} {self.connections:>2} conn"

    @property
    def unfiltered(self) -> WrkResult:
        """The filtered API's plain requests (an uncached phase's)."""
        if self.filtered_plain is None:
            raise ValueError(f"{self.name}: the filtered API answered no plain requests in this phase")
        return self.filtered_plain

    @property
    def peer_p50_ms(self) -> float:
        """The better peer's median latency (the lower)."""
        return min(result.p50_ms for result in self.peers.values())

    @property
    def peer_rps(self) -> float:
        """The better peer's throughput (the higher)."""
        return max(result.rps for result in self.peers.values())


API_SERVICE = "recipe_ml_service"
"""The API's own process (where the measurement runs), by the name the budget gives it."""
COST_NAME = "measurement cost (id, assignment, impression log, shown lists)"
FILTER_NAME = f"catalogue filter cost (exclude_tags [{FILTER_TAG}])"


def _cost(
    name: str,
    phases: list[Phase],
    without: Callable[[Phase], WrkResult],
    with_: Callable[[Phase], WrkResult],
    names: tuple[str, str],
    target: float,
) -> list[str]:
    """req/s without/with and p50 with/without of the uncached phases, 16 connections (the target's) first."""
    by = {phase.connections: phase for phase in phases if phase.mode == "uncached"}
    order = sorted(by, key=lambda connections: (connections != 16, connections))
    plain, costly = names
    lines = []
    for connections in order:
        rps = ratio(without(by[connections]).rps, with_(by[connections]).rps).strip()
        shown = f" (target <= {target:.2f}x)" if connections == 16 else ""
        lines.append(f"{name}: req/s {plain}/{costly} at {connections} connections uncached = {rps}{shown}")
    lines += [
        f"{name}: p50 {costly}/{plain} at {connections} connections uncached = "
        + ratio(with_(by[connections]).p50_ms, without(by[connections]).p50_ms).strip()
        for connections in order
    ]
    return lines


def hop_bound_ms(phase: Phase) -> float:
    """The p50 an uncached request may take: two BentoML hops at their floor (the API's and its runner's) and the
    peer's own work."""
    return 2 * phase.references[FLOOR].p50_ms + phase.peer_p50_ms


def reference_table(phases: list[Phase]) -> list[str]:
    """The uncached phases' references: the plain-vector peer (the price of the personal scorer: the peer's
    req/s over its own) and the floor of one BentoML hop (the API's p50 over two floors and the peer's p50)."""
    lines = [
        f"{'phase':<18}{'plain p50':>10}{'p99':>9}{'req/s':>8} | {'floor p50':>10}{'p99':>9}{'req/s':>8}"
        f" | {'req/s peer/plain':>16} | {'p50 API/(2 floor + peer)':>24}"
    ]
    for phase in phases:
        if phase.mode != "uncached":
            continue
        plain, floor = phase.references[PLAIN_PEER], phase.references[FLOOR]
        lines.append(
            f"{phase.name:<18}{plain.p50_ms:9.2f} {plain.p99_ms:8.2f} {plain.rps:7.0f} | {floor.p50_ms:9.2f}"
            f" {floor.p99_ms:8.2f} {floor.rps:7.0f} | {ratio(phase.peer_rps, plain.rps):>16} |"
            f" {ratio(phase.api.p50_ms, hop_bound_ms(phase)):>24}"
        )
    lines.append(
        "(plain: the peer ranking by the vectors alone, no personal scorer; floor: one BentoML route that only "
        "parses the body)"
    )
    return lines


def service_cpu(cpu: dict[str, float], service: str = API_SERVICE) -> float:
    """The CPU per request of all the workers of ``service`` (``named_processes`` names a second ``name:pid``)."""
    return sum(ms for name, ms in cpu.items() if name.split(":")[0] == service)


def measurement_cost(phases: list[Phase], work_us: float) -> list[str]:
    """The uncached phases' ratios of the API without the measurement over the API with it.

    req/s off/on (above 1: the measurement costs throughput) and p50 on/off (above 1: it costs latency), each
    connection count; the target is the issue's, on req/s at 16 connections. Then the CPU per request of all
    the API's processes, on over off: the measurement's work itself, which two servers' throughput on a shared
    machine reads only with their difference in it (two servers of the same settings differ by several percent).
    Last, that work timed alone in process (``work_us``, ``measurement_work``) as a share of the CPU of a request
    of the API without it, at 16 connections: the reading no second server's noise enters.
    """
    lines = _cost(COST_NAME, phases, lambda phase: phase.off, lambda phase: phase.api, ("off", "on"), COST_TARGET)
    for phase in phases:
        if phase.mode == "uncached":
            on, off = sum(phase.api_cpu.values()), sum(phase.off_cpu.values())
            lines.append(
                f"{COST_NAME}: CPU per request on/off at {phase.connections} connections uncached = "
                f"{ratio(on, off).strip()} ({on:.2f} / {off:.2f} ms, all API processes; {API_SERVICE}'s workers "
                f"{service_cpu(phase.api_cpu):.2f} / {service_cpu(phase.off_cpu):.2f} ms)"
            )
    off_16 = next(p.off_cpu for p in phases if p.mode == "uncached" and p.connections == 16)
    lines.append(
        f"{COST_NAME}: its own work in process {work_us:.1f} us an answer = "
        f"{work_us / 10 / sum(off_16.values()):.1f}% of the CPU of an uncached request without it at 16 connections"
    )
    return lines


def filter_cost(phases: list[Phase]) -> list[str]:
    """The uncached phases' ratios of plain requests over filtered ones, on the API with the catalogue.

    req/s plain/filtered (above 1: the filter costs throughput) and p50 filtered/plain (above 1: it costs
    latency), each connection count; the target is the issue's, on req/s at 16 connections. Both in one
    server's processes, so the ratio is the filter's cost; the same ratio against the measured API (another
    server, no catalogue) follows, for what a catalogue costs requests that do not filter.
    """
    return [
        *_cost(
            FILTER_NAME,
            phases,
            lambda phase: phase.unfiltered,
            lambda phase: phase.filtered,
            ("plain", "filtered"),
            FILTER_TARGET,
        ),
        *_cost(
            f"{FILTER_NAME}, against the API without a catalogue",
            phases,
            lambda phase: phase.api,
            lambda phase: phase.filtered,
            ("plain", "filtered"),
            FILTER_TARGET,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bentoml-home", type=Path, required=True, help="model store home of both servers")
    parser.add_argument("--redis-url", help="serve the API with this REDIS_URL (default: in-process)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each wrk run")
    parser.add_argument("--workers", type=int, default=1, help="WORKERS of the three APIs (above 1: --redis-url)")
    args = parser.parse_args()
    if args.workers > 1 and not args.redis_url:
        sys.exit("--workers above 1 needs --redis-url: workers share the catalogue and live state through Redis")
    wrk_binary()
    print(f"APIs with WORKERS={args.workers}", flush=True)

    home: Path = args.bentoml_home
    ranking = ranking_cost(home)  # before any server starts: the machine is this process's
    users, recipes = load_ids(home)
    tags = catalogue_tags(recipes)
    tagged = {recipe_id for recipe_id, recipe_tags in tags.items() if FILTER_TAG in recipe_tags}
    users_file = Path(tempfile.mkdtemp(prefix="bench_users_")) / "users.txt"
    users_file.write_text("\n".join(str(u) for u in users) + "\n")
    env = {"WORKERS": str(args.workers), **({"REDIS_URL": args.redis_url} if args.redis_url else {})}
    scratch = Path(tempfile.mkdtemp(prefix="bench_measured_"))
    (scratch / "experiment.yaml").write_text(BENCH_EXPERIMENT)
    work_us = measurement_work(scratch / "experiment.yaml", users, scratch)  # before any server, as the ranking
    measured = {
        **env,
        "EXPERIMENTS": str(scratch / "experiment.yaml"),
        "IMPRESSION_LOG_ENABLED": "true",
        "IMPRESSION_LOG_PATH": str(scratch / "impressions.jsonl"),
    }
    # The servers inherit this process's environment: an experiment set there would run on the API meant
    # to run without one (an empty value cannot unset it: it is no path).
    os.environ.pop("EXPERIMENTS", None)
    # BentoML keeps a server's metrics under its BENTOML_HOME and clears them when a server starts: the second
    # API gets a home of its own, sharing the model store.
    off_home, filtered_home = scratch / "bentoml_home", scratch / "filtered_home"
    for other_home in (off_home, filtered_home):
        other_home.mkdir()
        (other_home / "models").symlink_to((home / "models").resolve(), target_is_directory=True)
    filtering = {**measured, "IMPRESSION_LOG_PATH": str(scratch / "filtered_impressions.jsonl")}
    phases: list[Phase] = []

    with (
        running_api(home, users[0], measured) as (server, api_cold),
        running_api(off_home, users[0], {**env, "IMPRESSION_LOG_ENABLED": "false"}) as (off_server, _),
        running_api(filtered_home, users[0], filtering) as (filtered_server, _),
        ExitStack() as stack,
    ):
        peers = {
            form: stack.enter_context(running_peer(home, users[0], in_thread_pool))
            for form, in_thread_pool in PEER_FORMS.items()
        }
        (scratch / "floor_home").mkdir()
        references = {
            PLAIN_PEER: stack.enter_context(running_peer(home, users[0], False, plain=True)),
            FLOOR: stack.enter_context(running_floor(scratch / "floor_home", users[0])),
        }
        seed_catalogue(filtered_server.base_url, tags)
        kept_out, answered = check_filter(filtered_server.base_url, users[:WARM_USERS], tagged)
        print(
            f"API {server.base_url} (log {server.log_path}; experiment {BENCH_EXPERIMENT.split()[1]}, "
            f"impression log {scratch / 'impressions.jsonl'}), measurement off {off_server.base_url}, "
            f"filtered {filtered_server.base_url}, peers "
            + ", ".join(f"{form} {peer.base_url}" for form, peer in {**peers, **references}.items())
            + f"; {len(users)} users, {args.seconds:g} s a run"
        )
        print(
            f"catalogue of the filtered API: {len(tags)} recipes, {TAGS_PER_RECIPE} tags each of "
            f"{len(TAG_VOCABULARY)}; {len(tagged)} ({len(tagged) / len(tags):.1%}) carry {FILTER_TAG}. Filter "
            f"check: {WARM_USERS} users' answers with exclude_tags hold none of them (their unfiltered answers: "
            f"{kept_out} of {answered})"
        )
        exclude = [FILTER_TAG]
        for mode in MODES:
            if mode == "cached":
                for base_url, extra in (
                    (server.base_url, {}),
                    (off_server.base_url, {}),
                    (filtered_server.base_url, {"exclude_tags": exclude}),
                ):
                    for user in users[:WARM_USERS]:
                        httpx.post(f"{base_url}{RECIPES_PATH}", json={"user_id": user, **extra}, timeout=30)
            for connections in CONNECTIONS:
                # The three APIs in the order A B C C B A, each at the better of its two runs: every API's runs
                # have the same mean time, so drift in the machine's load favours none.
                wrk = partial(run_wrk, users_file=users_file, mode=mode, connections=connections, seconds=args.seconds)
                api_processes = server.named_processes()
                before = metric_values(server.base_url)
                api_runs = [with_cpu(partial(wrk, server.base_url), api_processes)]
                after = metric_values(server.base_url)
                off_processes = off_server.named_processes()
                off_runs = [with_cpu(partial(wrk, off_server.base_url), off_processes)]
                # Uncached, the filtered API also answers plain requests (around its filtered runs): the filter's
                # cost measured within one process, apart from what differs between two servers' processes.
                plain_runs = [wrk(filtered_server.base_url)] if mode == "uncached" else []
                filtered_runs = [wrk(filtered_server.base_url, exclude_tags=exclude) for _ in "ab"]
                if plain_runs:
                    plain_runs.append(wrk(filtered_server.base_url))
                off_runs.append(with_cpu(partial(wrk, off_server.base_url), off_processes))
                api_runs.append(with_cpu(partial(wrk, server.base_url), api_processes))
                best = (max(runs, key=lambda run: run[0].rps) for runs in (api_runs, off_runs))
                (api, api_cpu), (off, off_cpu) = best
                filtered = max(filtered_runs, key=lambda run: run.rps)
                peer_runs = {
                    form: with_cpu(partial(wrk, peer.base_url), {form: peer.process}) for form, peer in peers.items()
                }
                results = {form: result for form, (result, _) in peer_runs.items()}
                reference_runs = {
                    name: with_cpu(partial(wrk, reference.base_url), with_children(reference.process))
                    for name, reference in (references.items() if mode == "uncached" else ())
                }
                phases.append(
                    Phase(
                        mode,
                        connections,
                        api,
                        off,
                        filtered,
                        max(plain_runs, key=lambda run: run.rps) if plain_runs else None,
                        results,
                        f"{batch_sizes(before, after)}; hops {batch_sizes(before, after, HOP_METRIC)}",
                        fallbacks(before, after),
                        api_cpu,
                        off_cpu,
                        {form: cpu[form] for form, (_, cpu) in peer_runs.items()},
                        {name: result for name, (result, _) in reference_runs.items()},
                        {name: sum(cpu.values()) for name, (_, cpu) in reference_runs.items()},
                    )
                )
                print(f"  done: {mode} at {connections} connection(s)", flush=True)
        rss = {name: value / 2**20 for name, value in server.rss_by_process().items()}
        off_rss = {name: value / 2**20 for name, value in off_server.rss_by_process().items()}
        filtered_rss = {name: value / 2**20 for name, value in filtered_server.rss_by_process().items()}
        peer_rss = {form: peer.process.memory_info().rss / 2**20 for form, peer in peers.items()}

    print()
    columns = "".join(f" | {form + ' p50':>13}{'p99':>9}{'req/s':>8}{'err':>5}" for form in PEER_FORMS)
    print(
        f"{'phase':<18}{'API p50':>9}{'p99':>9}{'req/s':>8}{'err':>5} | {'off p50':>8}{'p99':>9}{'req/s':>8}"
        f" | {'filt p50':>8}{'p99':>9}{'req/s':>8}{'err':>5}{columns} | {'p50 API/peer':>12}{'req/s API/peer':>15}"
    )
    for phase in phases:
        cells = "".join(
            f" | {peer.p50_ms:12.2f} {peer.p99_ms:8.2f} {peer.rps:7.0f} {peer.errors:4d}"
            for peer in phase.peers.values()
        )
        api, off, filt = phase.api, phase.off, phase.filtered
        print(
            f"{phase.name:<18}{api.p50_ms:8.2f} {api.p99_ms:8.2f} {api.rps:7.0f} {api.errors:4d}"
            f" | {off.p50_ms:7.2f} {off.p99_ms:8.2f} {off.rps:7.0f}"
            f" | {filt.p50_ms:7.2f} {filt.p99_ms:8.2f} {filt.rps:7.0f} {filt.errors:4d}{cells} |"
            f" {ratio(api.p50_ms, phase.peer_p50_ms):>12}{ratio(api.rps, phase.peer_rps):>15}"
        )
    print(
        "(API/peer ratios against the better peer form of each phase; off: the API without the measurement;"
        f" filt: the API with the catalogue, every request excluding {FILTER_TAG})"
    )
    print()
    for line in reference_table(phases):
        print(line)
    print()
    for line in measurement_cost(phases, work_us):
        print(line)
    print()
    for line in filter_cost(phases):
        print(line)
    print()
    for line in budget(phases, ranking):
        print(line)
    print()
    print(
        "Two-Tower runner batch sizes, the queries each hop from the API carried, and fallbacks ('overloaded': "
        "BentoML shed the request, the next model answered):"
    )
    for phase in phases:
        shown = ", ".join(f"{name} {count:.0f}" for name, count in sorted(phase.fallbacks.items())) or "none"
        print(f"  {phase.name:<20} batches {phase.batches}; fallbacks {shown}")
    print()
    total = sum(rss.values())
    print(
        "resident memory after the run (MB): "
        + ", ".join(f"{name} {mb:.0f}" for name, mb in rss.items())
        + f"; all API processes {total:.0f}; peer "
        + ", ".join(f"{form} {mb:.0f}" for form, mb in peer_rss.items())
    )
    print(
        "resident memory of the API without the measurement (MB): "
        + ", ".join(f"{name} {mb:.0f}" for name, mb in off_rss.items())
        + f"; all its processes {sum(off_rss.values()):.0f}"
    )
    print(
        f"resident memory of the API with the catalogue ({len(tags)} recipes) and its filter (MB): "
        + ", ".join(f"{name} {mb:.0f}" for name, mb in filtered_rss.items())
        + f"; all its processes {sum(filtered_rss.values()):.0f}"
    )
    print(
        f"cold start (process start to first 200): API {api_cold:.1f} s, peer "
        + ", ".join(f"{form} {peer.cold_start_seconds:.1f} s" for form, peer in peers.items())
    )

    by = {(phase.mode, phase.connections): phase for phase in phases}
    one = by[("uncached", 1)]
    plain_16 = by[("uncached", 16)].unfiltered
    targets = [
        ("p99 at 1 connection, uncached <= 10 ms", one.api.p99_ms <= 10.0, f"{one.api.p99_ms:.2f} ms"),
        (
            "p50 at 1 connection, uncached <= 1.5x peer",
            one.api.p50_ms <= 1.5 * one.peer_p50_ms,
            ratio(one.api.p50_ms, one.peer_p50_ms).strip(),
        ),
        (
            "zero errors at 64 connections",
            all(by[(m, 64)].api.errors == 0 for m in MODES),
            ", ".join(f"{m} {by[(m, 64)].api.errors}" for m in MODES),
        ),
        (
            "req/s at 16 connections, uncached >= peer",
            by[("uncached", 16)].api.rps >= by[("uncached", 16)].peer_rps,
            ratio(by[("uncached", 16)].api.rps, by[("uncached", 16)].peer_rps).strip(),
        ),
        (
            "req/s at 64 connections, uncached >= 1.3x peer",
            by[("uncached", 64)].api.rps >= 1.3 * by[("uncached", 64)].peer_rps,
            ratio(by[("uncached", 64)].api.rps, by[("uncached", 64)].peer_rps).strip(),
        ),
        (
            "p50 at 1 connection, uncached <= 2 x floor p50 + peer p50",
            one.api.p50_ms <= hop_bound_ms(one),
            f"{one.api.p50_ms:.2f} ms against {hop_bound_ms(one):.2f} ms",
        ),
        (
            f"measurement cost at 16 connections, uncached: req/s off/on <= {COST_TARGET:.2f}x",
            by[("uncached", 16)].off.rps <= COST_TARGET * by[("uncached", 16)].api.rps,
            ratio(by[("uncached", 16)].off.rps, by[("uncached", 16)].api.rps).strip(),
        ),
        (
            f"measurement cost at 16 connections, uncached: CPU per request on/off <= {COST_TARGET:.2f}x",
            sum(by[("uncached", 16)].api_cpu.values()) <= COST_TARGET * sum(by[("uncached", 16)].off_cpu.values()),
            ratio(sum(by[("uncached", 16)].api_cpu.values()), sum(by[("uncached", 16)].off_cpu.values())).strip(),
        ),
        (
            f"measurement cost at 16 connections, uncached: its own work <= {COST_TARGET - 1:.0%} of a request's CPU",
            work_us / 1000 <= (COST_TARGET - 1) * sum(by[("uncached", 16)].off_cpu.values()),
            f"{work_us / 10 / sum(by[('uncached', 16)].off_cpu.values()):.1f}%",
        ),
        (
            f"catalogue filter cost at 16 connections, uncached: req/s plain/filtered <= {FILTER_TARGET:.2f}x",
            plain_16.rps <= FILTER_TARGET * by[("uncached", 16)].filtered.rps,
            ratio(plain_16.rps, by[("uncached", 16)].filtered.rps).strip(),
        ),
        ("all API processes <= 500 MB", total <= 500.0, f"{total:.0f} MB"),
        ("cold start <= 5 s", api_cold <= 5.0, f"{api_cold:.1f} s"),
    ]
    print()
    for name, met, value in targets:
        print(f"target {name}: {value} -> {'met' if met else 'MISSED'}")
    print("(RSS growth per request after the plateau: make soak)")


if __name__ == "__main__":
    main()
