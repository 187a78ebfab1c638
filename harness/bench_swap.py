"""A hot swap under load: p99 during a promotion and a rollback against steady load, and memory before and after.

    python -m harness.bench_swap --bentoml-home ./bentoml_home                # make bench-swap
    python -m harness.bench_swap --bentoml-home ./bentoml_home --window 8 --connections 32

Copies the store of ``--bentoml-home`` (its models are left untouched),
adds a second version of the Two-Tower holding the same model (a retrain
on the same data: same size), and serves the copy with the cache off
(``CACHE_TTL_SECONDS=0``: every request is scored) and
``MODEL_WATCH_SECONDS=1``. Then wrk (``harness/wrk_recipes.lua``, uncached)
runs back-to-back windows of ``--window`` seconds: steady ones, one during
which the new version is promoted (the runner loads it beside the old one
and swaps), steady ones after, one during the rollback, steady ones after.
Each window prints p50, p99, requests/s, errors and the Two-Tower runner's
resident memory (its peak within the window, and at its end). The targets
(p99 during a swap at most twice the steady p99; the runner's memory back
to its steady value once the old version is freed) are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from edge.model_store import promote, save_to_store, serving_tag, store_entry
from harness.bench_api import WrkResult, load_users, run_wrk, running_api, wrk_binary
from harness.server import LocalServer
from recipe_ml.models import REGISTRY
from recipe_ml.models.base import Recommender

RUNNER = REGISTRY["two_tower"].runner or ""
STEADY_WINDOWS = 3
P99_TARGET = 2.0
"""Most p99 of a swap window, as a multiple of the steady p99."""
RSS_TARGET_MB = 10.0
"""How close (MB) the runner's memory after a swap must come back to its steady value."""


@dataclass(frozen=True)
class Window:
    phase: str
    result: WrkResult
    peak_mb: float
    end_mb: float
    version: str


def runner_mb(server: LocalServer) -> float:
    return server.rss_by_process().get(RUNNER, 0.0) / 2**20


def serving(server: LocalServer) -> str:
    version: str = httpx.get(f"{server.base_url}/api/health", timeout=30).json()["models"]["two_tower"]
    return version


def window(
    server: LocalServer,
    home: Path,
    users_file: Path,
    phase: str,
    seconds: float,
    connections: int,
    promote_tag: str | None,
) -> Window:
    """One wrk window; with ``promote_tag``, that version is promoted one second in and awaited in health."""
    results: list[WrkResult] = []
    load = threading.Thread(
        target=lambda: results.append(run_wrk(server.base_url, users_file, "uncached", connections, seconds))
    )
    load.start()
    peak = 0.0
    started = time.monotonic()
    promoted = promote_tag is None
    while load.is_alive():
        peak = max(peak, runner_mb(server))
        if not promoted and time.monotonic() - started >= 1.0 and promote_tag is not None:
            promote(promote_tag, "two_tower", home=home)
            promoted = True
        time.sleep(0.1)
    load.join()
    return Window(phase, results[0], max(peak, runner_mb(server)), runner_mb(server), serving(server))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bentoml-home", type=Path, required=True, help="the store whose models are served (copied)")
    parser.add_argument("--window", type=float, default=6.0, help="seconds of each wrk window")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    wrk_binary()

    home = Path(tempfile.mkdtemp(prefix="bench_swap_"))
    shutil.copytree(args.bentoml_home / "models", home / "models")
    old = serving_tag(REGISTRY["two_tower"].store_name, home=home)
    promote(old, "two_tower", home=home)
    entry = store_entry(old, home=home)
    new = save_to_store(Recommender.load(Path(entry.path)), entry.tag.name, dict(entry.info.metadata), home=home)
    users = load_users(home)
    users_file = home / "users.txt"
    users_file.write_text("\n".join(str(u) for u in users) + "\n")
    env = {"CACHE_TTL_SECONDS": "0", "MODEL_WATCH_SECONDS": "1"}

    windows: list[Window] = []
    with running_api(home, users[0], env) as (server, _):
        print(f"API {server.base_url}; {args.connections} connections, {args.window:g} s windows; {old} -> {new}")
        run_wrk(server.base_url, users_file, "uncached", args.connections, args.window)  # warm-up, not shown
        plan: list[tuple[str, str | None]] = [("steady", None)] * STEADY_WINDOWS
        plan += [("promote", new)] + [("after", None)] * STEADY_WINDOWS
        plan += [("rollback", old)] + [("after", None)] * STEADY_WINDOWS
        for phase, tag in plan:
            windows.append(window(server, home, users_file, phase, args.window, args.connections, tag))
            w = windows[-1]
            print(f"  {phase:<9} p99 {w.result.p99_ms:7.2f} ms, runner {w.end_mb:6.1f} MB, serving {w.version}")
    shutil.rmtree(home, ignore_errors=True)

    print()
    print(
        f"{'window':<10}{'p50 ms':>8}{'p99 ms':>9}{'req/s':>8}{'errors':>8}{'runner peak MB':>16}{'end MB':>8}  serving"
    )
    for w in windows:
        r = w.result
        print(
            f"{w.phase:<10}{r.p50_ms:8.2f}{r.p99_ms:9.2f}{r.rps:8.0f}{r.errors:8d}{w.peak_mb:16.1f}{w.end_mb:8.1f}"
            f"  {w.version}"
        )
    steady = windows[:STEADY_WINDOWS]
    steady_p99 = statistics.median(w.result.p99_ms for w in steady)
    steady_mb = statistics.median(w.end_mb for w in steady)
    print()
    for swap_index in (STEADY_WINDOWS, 2 * STEADY_WINDOWS + 1):
        swap, after = windows[swap_index], windows[swap_index + 1 : swap_index + 1 + STEADY_WINDOWS]
        ratio = swap.result.p99_ms / steady_p99 if steady_p99 > 0 else float("inf")
        settled = after[-1].end_mb
        p99_verdict = "met" if ratio <= P99_TARGET else "MISSED"
        rss_verdict = "met" if abs(settled - steady_mb) <= RSS_TARGET_MB else "MISSED"
        print(
            f"{swap.phase}: p99 {swap.result.p99_ms:.2f} ms = {ratio:.2f}x steady {steady_p99:.2f} ms"
            f" (target <= {P99_TARGET:g}x -> {p99_verdict}); errors {swap.result.errors};"
            f" runner {steady_mb:.0f} MB steady, {swap.peak_mb:.0f} MB at the swap's peak, {settled:.0f} MB after"
            f" (target within {RSS_TARGET_MB:g} MB -> {rss_verdict})"
        )
    errors = sum(w.result.errors for w in windows)
    print(f"errors over all windows: {errors} (target 0 -> {'met' if errors == 0 else 'MISSED'})")


if __name__ == "__main__":
    main()
