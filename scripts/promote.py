"""``recipe-ml promote NAME:VERSION ...``: serve that version of its model from now on.

    recipe-ml models                              # the versions, their stage and figures
    recipe-ml promote recipe_two_tower:VERSION    # serve it (a running service swaps within MODEL_WATCH_SECONDS)
    recipe-ml promote recipe_two_tower:PREVIOUS   # a rollback is promoting the previous version again

A version that is not in the store, is not of the kind its name serves, or
does not load is refused (exit status 2), naming it and the versions present;
nothing changes then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.model_store import PromotionError, list_store, promotable, promote, serving_tag
from recipe_ml.config import Settings, get_settings
from recipe_ml.models import KINDS, REGISTRY
from recipe_ml.training.trainer import store_name


def served_names() -> dict[str, str]:
    """Store name → the kind it serves, from the ``*_MODEL`` settings."""
    return {store_name(kind): kind for kind in KINDS}


def pinned_note(settings: Settings, kind: str) -> str | None:
    """A warning when the kind's setting pins a version: promoting then changes nothing it serves."""
    name = settings.model_name(kind)
    if name == store_name(kind):
        return None
    return f"  note: {REGISTRY[kind].setting.upper()}={name} pins a version; the service serves that one"


def check(tag: str) -> str:
    """The kind ``tag`` would serve, once it is known promotable and loads; ``PromotionError`` otherwise.

    Loading here refuses a broken version once, rather than in every server.
    """
    from recipe_ml.models.base import Recommender  # numpy and scipy: only when a tag is promoted

    names = served_names()
    name = tag.partition(":")[0]
    if name not in names:
        present = ", ".join(list_store()) or "(none)"
        raise PromotionError(
            f"{tag!r} is not a model the service serves; it serves {', '.join(names)}; tags present: {present}"
        )
    entry = promotable(tag, names[name])
    try:
        Recommender.load(Path(entry.path))
    except Exception as exc:  # whatever a damaged directory raises: np.load, json, zip...
        raise PromotionError(f"{tag} does not load ({type(exc).__name__}: {exc}); not promoted") from exc
    return names[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tags", nargs="+", metavar="NAME:VERSION", help="versions to serve (one per model name)")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        checked = [(tag, check(tag)) for tag in args.tags]  # all checked before any is promoted
    except PromotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for tag, kind in checked:
        before = serving_tag(settings.model_name(kind))
        promotion = promote(tag, kind)
        print(f"promoted {promotion.tag} (serving before: {before})")
        note = pinned_note(settings, kind)
        if note is not None:
            print(note)
    return 0
