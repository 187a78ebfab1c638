"""``recipe-ml train``: fit the models and save them to the BentoML model store.

    recipe-ml train            # ship: fit on train + validation
    recipe-ml train --eval     # fit on train, store validation metrics too

Models go to ``$BENTOML_HOME/models`` under the names of ``Settings``; the
training itself is ``recipe_ml.training.trainer``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from edge.model_store import save_to_store
from recipe_ml.config import DATA_DIR
from recipe_ml.models import KINDS
from recipe_ml.training.trainer import train_all


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``evaluate``: data, seed, user slice, epochs."""
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-users", type=int, default=None, metavar="N", help="use N seeded users only")
    parser.add_argument("--epochs", type=int, default=None, help="Two-Tower epochs (default: the tuned value)")


def check_data_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject out-of-range values of ``add_data_arguments`` options (exit status 2)."""
    if args.sample_users is not None and args.sample_users < 1:
        parser.error("--sample-users must be >= 1")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be >= 1")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--eval", action="store_true", help="fit on train only and store validation metrics")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="models to train")
    args = parser.parse_args(argv)
    check_data_arguments(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    train_all(
        save_to_store,
        args.data_dir,
        eval_mode=args.eval,
        seed=args.seed,
        n_sample_users=args.sample_users,
        epochs=args.epochs,
        kinds=args.kinds,
    )
    return 0
