"""``recipe-ml train``: fit the models and save them to the BentoML model store.

    recipe-ml train                              # ship: fit on train + validation
    recipe-ml train --live                       # ... plus every interaction the service applied (REDIS_URL)
    recipe-ml train --live --promote-if-better   # ... and promote them if the gate lets them through
    recipe-ml train --eval                       # store the models fitted on train only

Every version records its held-out figures (a fit without the validation
split, measured on it), its data, code version and hyper-parameters. With
``--promote-if-better`` the gate compares those figures with the serving
versions' (``GATE_*`` settings); a refusal stores and changes nothing and
exits with status 3. Models go to ``$BENTOML_HOME/models`` under the names of
``Settings``; the training itself is ``recipe_ml.training``.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from pathlib import Path

from edge.model_store import ModelNotFoundError, promote, save_to_store, serving_entry
from recipe_ml.config import DATA_DIR, Settings, get_settings
from recipe_ml.models import KINDS
from recipe_ml.training.gate import GatePolicy, Serving, decide
from recipe_ml.training.snapshot import read_live
from recipe_ml.training.trainer import Gate, train_all
from scripts.promote import pinned_note

GATE_REFUSED = 3
"""Exit status when the gate refused the candidates (0: trained, and promoted if asked; 2: bad input)."""


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
    parser.add_argument("--eval", action="store_true", help="store the models fitted on train only")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="models to train")
    parser.add_argument("--live", action="store_true", help="fit on the interactions recorded at REDIS_URL too")
    parser.add_argument(
        "--promote-if-better",
        action="store_true",
        help=f"gate the candidates against the serving versions; promote them, or exit {GATE_REFUSED}",
    )
    args = parser.parse_args(argv)
    check_data_arguments(parser, args)
    if args.eval and args.promote_if_better:
        parser.error("--eval models are fitted without the validation split: they are not promoted")
    return args


def serving_versions(settings: Settings, kinds: Sequence[str]) -> dict[str, Serving | None]:
    """What serves each kind now (what ``*_MODEL`` resolves to), with the figures its metadata holds."""
    serving: dict[str, Serving | None] = {}
    for kind in kinds:
        try:
            entry = serving_entry(settings.model_name(kind))
        except ModelNotFoundError:
            serving[kind] = None
            continue
        metadata = entry.info.metadata
        stored = metadata.get("metrics")
        if not isinstance(stored, dict):
            stored = {}
        figures = {str(name): float(value) for name, value in stored.items() if isinstance(value, (int, float))}
        serving[kind] = Serving(str(entry.tag), figures, str(metadata.get("held_out_fingerprint", "")))
    return serving


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = parse_args(argv)
    settings = get_settings()
    gate: Gate | None = None
    if args.promote_if_better:
        serving = serving_versions(settings, args.kinds)
        gate = functools.partial(decide, serving=serving, policy=GatePolicy.from_settings(settings))
    run = train_all(
        save_to_store,
        args.data_dir,
        live=read_live(settings.redis_url) if args.live else None,
        gate=gate,
        eval_mode=args.eval,
        seed=args.seed,
        n_sample_users=args.sample_users,
        epochs=args.epochs,
        kinds=args.kinds,
    )
    if run.refused:
        print(f"not promoted: the gate refused the candidates (exit {GATE_REFUSED}); the serving versions stay")
        return GATE_REFUSED
    if args.promote_if_better:
        for model in run.models:
            promote(model.tag, model.kind)
            print(f"promoted {model.tag}")
            note = pinned_note(settings, model.kind)
            if note is not None:
                print(note)
    return 0
