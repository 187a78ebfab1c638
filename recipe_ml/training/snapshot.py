"""What a retrain fits on: the shipped ratings plus every interaction the service applied since.

The live part comes from the interaction store (``InteractionStore.interactions``:
Redis when ``REDIS_URL`` is set). Users and recipes seen only live get rows
and vectors of their own in the next version. The shipped validation split
stays the held-out data the gate measures every version on, so the figures
of two versions are comparable; a live interaction with a held-out
(user, recipe) pair is left out of the fit that is measured, never out of the
one that is stored.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recipe_ml.config import REPO_ROOT, check_redis_url
from recipe_ml.data import (
    HEALTH_FILE,
    Interactions,
    Ratings,
    concat,
    fingerprint,
    load_health,
    load_splits,
    ratings_of,
    sample_users,
    splits_of,
)
from recipe_ml.storage import open_interaction_store
from recipe_ml.storage.base import RecordedInteraction

IMPLICIT_RATINGS = {"cook": 5, "save": 5, "like": 5, "view": 3}
"""The rating a live event without one counts as (a ``rate`` event carries its own).

Every rating is a positive interaction to the models, as in the shipped
data; the value matters to the popularity prior, which counts 5-star
ratings: cooking, saving or liking a recipe counts as five stars, a view as
an interaction that is not one."""

_BENTO_FIELD = re.compile(r"^(name|version): (\S+)$", re.MULTILINE)
HELD_OUT = "validation"
"""The shipped split every version is measured on (the gate's held-out data)."""


@dataclass(frozen=True)
class LiveData:
    """The live interactions read for a retrain, and a sentence saying where they came from."""

    ratings: Ratings
    note: str


def no_live_data(note: str) -> LiveData:
    empty = np.zeros(0, dtype=np.int64)
    return LiveData(Ratings(empty, empty.copy(), np.zeros(0, dtype=np.int8)), note)


def live_ratings(records: Sequence[RecordedInteraction]) -> Ratings:
    """Rows of recorded interactions: raw ids and the rating (``IMPLICIT_RATINGS`` for events without one)."""
    return Ratings(
        np.asarray([r.user_id for r in records], dtype=np.int64),
        np.asarray([r.recipe_id for r in records], dtype=np.int64),
        np.asarray(
            [r.rating if r.rating is not None else IMPLICIT_RATINGS[r.interaction_type] for r in records],
            dtype=np.int8,
        ),
    )


def read_live(redis_url: str | None) -> LiveData:
    """Every interaction recorded in the store of ``redis_url``; none (saying why) when unset, empty or unreachable.

    Without ``REDIS_URL`` the interactions live in the API process's memory,
    out of a trainer's reach, so there is nothing to read.
    """
    url = check_redis_url(redis_url)
    if url is None:
        return no_live_data("no live interactions: REDIS_URL is not set; training on the shipped data only")
    store = open_interaction_store(url)
    try:
        records = store.interactions()
    except store.unavailable as exc:
        return no_live_data(
            f"no live interactions: the interaction store is unreachable ({type(exc).__name__}: {exc}); "
            "training on the shipped data only"
        )
    if not records:
        return no_live_data("no live interactions: the interaction store is empty; training on the shipped data only")
    users = len({r.user_id for r in records})
    return LiveData(live_ratings(records), f"live: {len(records):,} interactions of {users:,} users from Redis")


@dataclass(frozen=True)
class Snapshot:
    """One retrain's data: what the stored version is fitted on, what the measured fit sees, the held-out part."""

    full: Interactions
    """Shipped train + validation + live: what the stored version is fitted on."""
    measured: Interactions
    """Shipped train + live, without held-out pairs: what the version measured on ``held_out`` is fitted on."""
    held_out: Interactions
    rows: dict[str, int]
    """Rows per part (``train``, ``validation``, ``live``), users, recipes, and those seen only live."""
    fingerprint: str
    """sha256 of every row of every part and of the health scores."""
    held_out_fingerprint: str
    """sha256 of the held-out rows: versions whose figures share it were measured on the same data."""


def take_snapshot(data_dir: Path, live: Ratings, *, n_sample_users: int | None = None, seed: int = 0) -> Snapshot:
    """The shipped splits (a seeded user sample of them, if asked) plus every live row, over shared id maps."""
    shipped = load_splits(data_dir, ("train", HELD_OUT))
    if n_sample_users is not None:
        shipped = sample_users(shipped, n_sample_users, seed)
    health_path = data_dir / HEALTH_FILE
    health = load_health(health_path) if health_path.is_file() else None
    raw = {"train": ratings_of(shipped["train"]), HELD_OUT: ratings_of(shipped[HELD_OUT]), "live": live}
    parts = splits_of(raw, health)
    train, held_out, live_part = parts["train"], parts[HELD_OUT], parts["live"]
    n_items = len(train.items)
    held_pairs = held_out.user_index * n_items + held_out.item_index
    live_kept = ~np.isin(live_part.user_index * n_items + live_part.item_index, held_pairs)
    shipped_users = np.union1d(raw["train"].user_id, raw[HELD_OUT].user_id)
    shipped_items = np.union1d(raw["train"].recipe_id, raw[HELD_OUT].recipe_id)
    rows = {
        "train": len(train),
        HELD_OUT: len(held_out),
        "live": len(live_part),
        "users": len(train.users),
        "recipes": n_items,
        "live_only_users": int(np.setdiff1d(live.user_id, shipped_users).size),
        "live_only_recipes": int(np.setdiff1d(live.recipe_id, shipped_items).size),
    }
    return Snapshot(
        full=concat([train, held_out, live_part]),
        measured=concat([train, _rows(live_part, live_kept)]),
        held_out=held_out,
        rows=rows,
        fingerprint=fingerprint(raw, health),
        held_out_fingerprint=fingerprint({HELD_OUT: raw[HELD_OUT]}, None),
    )


def _rows(part: Interactions, keep: np.ndarray) -> Interactions:
    return Interactions(
        part.users, part.items, part.user_index[keep], part.item_index[keep], part.rating[keep], part.health
    )


def code_version(root: Path = REPO_ROOT) -> str:
    """``git describe`` of the checkout at ``root``, else the Bento it runs in, else the package version, else unknown.

    In the Bento image there is no git: the Bento's tag (``$BENTO_PATH/bento.yaml``) names the code.
    """
    try:
        described = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return f"git {described.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    bento = Path(os.environ.get("BENTO_PATH", "/nonexistent")) / "bento.yaml"
    if bento.is_file():
        fields = dict(_BENTO_FIELD.findall(bento.read_text()))
        return f"bento {fields.get('name', '?')}:{fields.get('version', '?')}"
    try:
        return f"recipe-ml-backend {importlib.metadata.version('recipe-ml-backend')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
