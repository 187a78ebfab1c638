"""``recipe-ml``: the project's commands behind one entry point.

    recipe-ml train      # fit the models, save them to the BentoML model store
    recipe-ml models     # the stored versions: stage, data, figures, age
    recipe-ml promote    # serve a version (a rollback promotes the previous one)
    recipe-ml trainer    # train --live --promote-if-better every RETRAIN_INTERVAL
    recipe-ml bentofile  # the bentofile of `make build`: the promoted versions
    recipe-ml evaluate   # offline evaluation report (training_artifacts/reports/)
    recipe-ml experiment report  # the online experiment: per variant, cook rate with its interval
    recipe-ml consume    # the Kafka sidecar consumer
    recipe-ml produce    # demo interaction events drawn from the real data
    recipe-ml catalogue import FILE  # load a catalogue export (CSV or JSONL) into the running service

The Makefile, the Bento image and docker-compose call these (``python -m
scripts.cli …`` where the project is not pip-installed, as in the image).
Each command's module is imported only when it runs: the consumer never
loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from recipe_ml.config import SettingsError
from recipe_ml.data import DataError

COMMANDS = {
    "train": ("scripts.train", "train the models into the BentoML model store"),
    "models": ("scripts.models", "list the stored versions: stage, data, figures, age"),
    "promote": ("scripts.promote", "serve a stored version (rollback: promote the previous one)"),
    "trainer": ("scripts.trainer", "retrain on live data and promote if better, every RETRAIN_INTERVAL"),
    "bentofile": ("scripts.bentofile", "bentofile.yaml with the promoted model versions (make build)"),
    "evaluate": ("scripts.evaluate", "offline evaluation on the validation split; writes the report"),
    "experiment": ("scripts.experiment", "the online experiment's report from the impression log"),
    "consume": ("scripts.consume", "consume interaction events from Kafka into Redis"),
    "produce": ("scripts.produce_events", "send demo interaction events to Kafka or the HTTP API"),
    "catalogue": ("scripts.catalogue", "load a catalogue export (CSV or JSONL) into the running service"),
}
"""Command → (module with ``main(argv)``, one-line help)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="recipe-ml",
        description="Recipe ML Backend commands; `recipe-ml COMMAND --help` for each.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()),
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help=", ".join(COMMANDS))
    if not args or args[0] in {"-h", "--help"}:
        parser.print_help()
        return 0 if args else 2
    command = parser.parse_args(args[:1]).command
    entry: Callable[[Sequence[str]], int] = importlib.import_module(COMMANDS[command][0]).main
    try:
        return entry(args[1:])
    # A data file the command reads is missing or malformed, or a setting is one it cannot run with:
    # say which (the message names the file or the variable, never a secret), no traceback.
    except (DataError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
