"""``recipe-ml models``: every version in the model store, with its stage, data, figures and age.

Stages: ``production`` (promoted last), ``previous`` (promoted before it: what
a rollback promotes), ``retired`` (promoted once), ``candidate`` (never).
``*`` marks the version each ``*_MODEL`` setting serves: the promoted one,
else the latest, or the version a full tag pins.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from edge.model_store import ModelNotFoundError, StoredVersion, serving_tag, stored_versions
from recipe_ml.config import get_settings
from recipe_ml.models import KINDS

COLUMNS = ("", "TAG", "STAGE", "AGE", "TRAINED ON", "ROWS train/held-out/live", "DATA", "nDCG@20", "COV@10", "PERS@10")


def age(created: datetime, now: datetime) -> str:
    """``45s``, ``12m``, ``5h`` or ``3d``: how long ago a version was created."""
    seconds = max(0.0, (now - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def row(version: StoredVersion, served: set[str], now: datetime) -> tuple[str, ...]:
    meta: Mapping[str, Any] = version.metadata
    rows = meta.get("rows", {})
    figures = meta.get("metrics", {})

    def figure(name: str, fmt: str) -> str:
        return format(figures[name], fmt) if name in figures else "-"

    counts = "/".join(f"{rows[k]:,}" for k in ("train", "validation", "live")) if rows else "-"
    return (
        "*" if version.tag in served else "",
        version.tag,
        version.stage,
        age(version.created, now),
        str(meta.get("trained_on", "-")),
        counts,
        str(meta.get("data_fingerprint", "-"))[:8],
        figure("ndcg@20", ".4f"),
        figure("coverage@10", ".1%"),
        figure("personalisation@10", ".3f"),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    settings = get_settings()
    served = set()
    for kind in KINDS:
        try:
            served.add(serving_tag(settings.model_name(kind)))
        except ModelNotFoundError:
            continue
    now = datetime.now(UTC)
    table = [COLUMNS, *(row(v, served, now) for v in stored_versions())]
    if len(table) == 1:
        print("the model store is empty: `recipe-ml train` fills it")
        return 0
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0
