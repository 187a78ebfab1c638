"""Minutes of full uncached load: memory of every process over time, requests, errors, p99.

    python -m harness.soak --bentoml-home ./bentoml_home                  # make soak (180 s)
    python -m harness.soak --bentoml-home ./bentoml_home --seconds 600 --connections 64

Starts ``bentoml serve`` with the cache off (``CACHE_TTL_SECONDS=0``: every
request is scored) and runs wrk (``harness/wrk_recipes.lua``, user ids
rotating over every training user) for ``--seconds``, while sampling the
resident memory of each process and the count of answered requests every
``--interval`` seconds, printed as a table as it goes. A plateau and a leak
look alike for a while; the growth per request over the second half of the
run tells them apart (the target is printed, never asserted).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from harness.bench_api import WRK_SCRIPT, load_users, metric_values, parse_wrk, running_api, wrk_binary

GROWTH_TARGET_KB = 0.5
"""Most resident memory a process may still gain per request once warm (KB)."""
RSS_TARGET_MB = 500.0
"""Most resident memory of all the API's processes together under load (MB)."""


def answered(base_url: str) -> float:
    """Requests the API answered so far (``recipe_api_requests_total`` of the recipes endpoint)."""
    return sum(
        value
        for (name, labels), value in metric_values(base_url).items()
        if name == "recipe_api_requests_total" and dict(labels).get("endpoint") == "recipes"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bentoml-home", type=Path, required=True, help="model store home of the server")
    parser.add_argument("--seconds", type=float, default=180.0, help="duration of the load")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--redis-url", help="serve with this REDIS_URL (default: in-process)")
    args = parser.parse_args()

    users = load_users(args.bentoml_home)
    users_file = Path(tempfile.mkdtemp(prefix="soak_users_")) / "users.txt"
    users_file.write_text("\n".join(str(u) for u in users) + "\n")
    env = {"CACHE_TTL_SECONDS": "0", **({"REDIS_URL": args.redis_url} if args.redis_url else {})}

    with running_api(args.bentoml_home, users[0], env) as (server, cold):
        print(f"API {server.base_url} (cold start {cold:.1f} s); {args.connections} connections for {args.seconds:g} s")
        command = [
            wrk_binary(),
            "-t2",
            f"-c{args.connections}",
            f"-d{round(args.seconds)}s",
            "--timeout",
            "30s",
            "-s",
            str(WRK_SCRIPT),
            server.base_url,
        ]
        wrk_env = {**os.environ, "USERS_FILE": str(users_file), "MODE": "uncached"}
        started = time.monotonic()
        load = subprocess.Popen(command, env=wrk_env, stdout=subprocess.PIPE, text=True)
        samples: list[tuple[float, float, dict[str, float]]] = []
        names: list[str] = []
        while load.poll() is None:
            rss = {name: value / 2**20 for name, value in server.rss_by_process().items()}
            if not names:
                names = list(rss)
                print(
                    f"{'t (s)':>6} {'requests':>9} " + " ".join(f"{name[:24]:>24}" for name in names) + f" {'all':>6}"
                )
            samples.append((time.monotonic() - started, answered(server.base_url), rss))
            t, requests, _ = samples[-1]
            print(
                f"{t:6.0f} {requests:9.0f} "
                + " ".join(f"{rss.get(name, 0.0):24.1f}" for name in names)
                + f" {sum(rss.values()):6.0f}",
                flush=True,
            )
            time.sleep(args.interval)
        stdout, _ = load.communicate()
        result = parse_wrk(stdout)

    print()
    print(
        f"wrk: {result.requests} requests, {result.rps:.0f}/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms,"
        f" {result.errors} errors"
    )
    half = [sample for sample in samples if sample[0] >= args.seconds / 2]
    if len(half) < 2:
        print("run too short for a growth figure (raise --seconds)")
        return
    (_, first_requests, first_rss), (_, last_requests, last_rss) = half[0], half[-1]
    served = last_requests - first_requests
    peak = max(sum(rss.values()) for _, _, rss in samples)
    print(f"second half: {served:.0f} requests")
    for name in names:
        growth_kb = (last_rss.get(name, 0.0) - first_rss.get(name, 0.0)) * 1024 / served if served else 0.0
        verdict = "met" if growth_kb <= GROWTH_TARGET_KB else "MISSED"
        print(
            f"  {name:<28} {first_rss.get(name, 0.0):7.1f} -> {last_rss.get(name, 0.0):7.1f} MB,"
            f" {growth_kb:6.3f} KB/request (target <= {GROWTH_TARGET_KB} -> {verdict})"
        )
    print(
        f"peak of all processes: {peak:.0f} MB"
        f" (target <= {RSS_TARGET_MB:.0f} -> {'met' if peak <= RSS_TARGET_MB else 'MISSED'})"
    )
    print(f"errors: {result.errors} (target 0 -> {'met' if result.errors == 0 else 'MISSED'})")


if __name__ == "__main__":
    main()
