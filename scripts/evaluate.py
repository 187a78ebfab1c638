"""``recipe-ml evaluate``: the offline evaluation report under training_artifacts/reports/.

    recipe-ml evaluate                 # the report under training_artifacts/reports/
    recipe-ml evaluate --tune-als      # also grid-search ALS on validation

The evaluation itself is ``recipe_ml.evaluation.report``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from recipe_ml.config import REPORTS_DIR
from recipe_ml.evaluation.report import run
from scripts.train import add_data_arguments, check_data_arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    parser.add_argument("--out-dir", type=Path, default=REPORTS_DIR)
    parser.add_argument("--tune-als", action="store_true", help="grid-search ALS on validation too")
    parser.add_argument("--skip-full-timing", action="store_true", help="do not time training on train+validation")
    args = parser.parse_args(argv)
    check_data_arguments(parser, args)
    run(
        args.data_dir,
        args.out_dir,
        seed=args.seed,
        n_sample_users=args.sample_users,
        epochs=args.epochs,
        tune=args.tune_als,
        time_full_training=not args.skip_full_timing,
    )
    return 0
