"""``recipe-ml trainer``: ``recipe-ml train --live --promote-if-better`` every ``RETRAIN_INTERVAL``, until stopped.

    recipe-ml trainer                      # the loop of docker-compose's `trainer` service
    recipe-ml trainer --once               # one run; exits with its status (0 promoted, 3 refused)
    recipe-ml trainer --sample-users 500   # any other option goes to `recipe-ml train`

Each run logs what it read (live interactions, rows), each model's held-out
figures, the gate's decision and the tags promoted. A run that fails is
logged and the loop goes on; a ``RETRAIN_INTERVAL`` (or any setting) that
does not parse stops it at start-up, naming the setting.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime

from recipe_ml.config import get_settings
from scripts import train

LIFECYCLE = ["--live", "--promote-if-better"]


def every(seconds: float) -> str:
    """``24h``, ``30m``, ``90s``: an interval as its setting would write it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def outcome(status: int) -> str:
    if status == 0:
        return "trained and promoted"
    if status == train.GATE_REFUSED:
        return "refused by the gate, nothing changed"
    return f"failed (exit {status}), nothing changed"


def run_once(number: int, train_argv: list[str]) -> int:
    print(f"trainer: run {number} at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}", flush=True)
    try:
        status = train.main(train_argv)
    except Exception:  # a failed run is logged and retried at the next interval, never the end of the schedule
        traceback.print_exc()
        status = 1
    print(f"trainer: run {number}: {outcome(status)}", flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs until stopped (SIGTERM), or once with ``--once``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one run, then exit with its status")
    args, extra = parser.parse_known_args(argv)
    train_argv = [*LIFECYCLE, *extra]
    train.parse_args(train_argv)  # a bad option stops the trainer now, not at the first run
    interval = get_settings().retrain_interval
    print(f"trainer: every {every(interval)}: recipe-ml train {' '.join(train_argv)}", flush=True)
    number = 1
    while True:
        status = run_once(number, train_argv)
        if args.once:
            return status
        print(f"trainer: next run in {every(interval)}", flush=True)
        time.sleep(interval)
        number += 1
