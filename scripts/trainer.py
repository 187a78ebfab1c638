"""``recipe-ml trainer``: ``recipe-ml train --live --promote-if-better`` every ``RETRAIN_INTERVAL``, until stopped.

    recipe-ml trainer                      # the loop of docker-compose's `trainer` service
    recipe-ml trainer --once               # one run; exits with its status (0 promoted, 3 refused)
    recipe-ml trainer --keep 5             # versions kept per model (default 10)
    recipe-ml trainer --sample-users 500   # any other option goes to `recipe-ml train`

Each run logs what it read (live interactions, rows), each model's held-out
figures, the gate's decision and the tags promoted, then deletes each
model's versions beyond the newest ``--keep`` (never the one serving nor the
one a rollback would promote: ``edge.model_store.prune``). A run that fails
is logged and the loop goes on; a ``RETRAIN_INTERVAL`` (or any setting) that
does not parse stops it at start-up, naming the setting.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime

from edge.model_store import ModelNotFoundError, prune, serving_tag
from recipe_ml.config import get_settings
from recipe_ml.models import KINDS
from recipe_ml.training.trainer import store_name
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


def keep_newest(keep: int) -> None:
    """Delete each model's versions beyond the newest ``keep`` (the serving and rollback ones stay)."""
    settings = get_settings()
    for kind in KINDS:
        try:
            serving = frozenset({serving_tag(settings.model_name(kind))})
        except ModelNotFoundError:
            continue
        deleted = prune(store_name(kind), keep, protect=serving)
        if deleted:
            print(f"trainer: deleted {len(deleted)} old version(s): {', '.join(deleted)}", flush=True)


def run_once(number: int, train_argv: list[str], keep: int) -> int:
    print(f"trainer: run {number} at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}", flush=True)
    try:
        status = train.main(train_argv)
        keep_newest(keep)
    except Exception:  # a failed run is logged and retried at the next interval, never the end of the schedule
        traceback.print_exc()
        status = 1
    print(f"trainer: run {number}: {outcome(status)}", flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs until stopped (SIGTERM), or once with ``--once``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one run, then exit with its status")
    parser.add_argument("--keep", type=int, default=10, metavar="N", help="versions kept per model (default 10)")
    args, extra = parser.parse_known_args(argv)
    if args.keep < 2:
        parser.error("--keep must be >= 2: the version serving and the one a rollback promotes")
    train_argv = [*LIFECYCLE, *extra]
    train.parse_args(train_argv)  # a bad option stops the trainer now, not at the first run
    interval = get_settings().retrain_interval
    print(f"trainer: every {every(interval)}: recipe-ml train {' '.join(train_argv)}", flush=True)
    number = 1
    while True:
        status = run_once(number, train_argv, args.keep)
        if args.once:
            return status
        print(f"trainer: next run in {every(interval)}", flush=True)
        time.sleep(interval)
        number += 1
