"""The BentoML model store: the one place models are saved to, promoted in and loaded from.

A model is a plain directory (``Recommender.save``); the store adds a
versioned tag, labels and metadata around it. The store lives under
``<home>/models``: the ``home`` argument, else ``$BENTOML_HOME`` as it is at
call time (BentoML itself reads it once, at import), else BentoML's default.

Which version of a name is served: the one promoted last (``promote``,
``recipe-ml promote``), else the latest. Promotions are kept in a small
record beside the versions (``promotions.json``; why not labels:
``edge.compat.versions_directory``), newest last, so rolling back is
promoting the previous version again. A full tag ``name:version`` always
means that version (a pinned ``*_MODEL`` setting).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bentoml
from bentoml.exceptions import NotFound

from edge.compat import model_store_at, versions_directory

if TYPE_CHECKING:
    from recipe_ml.models.base import Recommender


PROMOTIONS_FILE = "promotions.json"
PROMOTIONS_KEPT = 200
"""Promotions remembered per name: far more than any rollback reaches back."""


class ModelNotFoundError(LookupError):
    """The requested model is not in the store; the message lists what is."""


class PromotionError(ValueError):
    """A version cannot be promoted (not in the store, or not of the kind its name serves); the message says why."""


@dataclass(frozen=True)
class Promotion:
    """One line of a name's promotion record."""

    tag: str
    at: str
    """When, ISO 8601 in UTC."""


def _store_kwargs(home: Path | None) -> dict[str, Any]:
    """``_model_store`` for ``home`` or the current ``$BENTOML_HOME``, else BentoML's default."""
    if home is None and os.environ.get("BENTOML_HOME"):
        home = Path(os.environ["BENTOML_HOME"])
    return {} if home is None else model_store_at(home)


def save_to_store(
    model: Recommender,
    name: str,
    metadata: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    home: Path | None = None,
) -> str:
    """Save ``model`` as a new version of ``name``; returns the tag (``name:version``)."""
    with bentoml.models.create(
        name,
        labels={"kind": model.kind, **(labels or {})},
        metadata={"kind": model.kind, **(metadata or {})},
        **_store_kwargs(home),
    ) as bento_model:
        model.save(Path(bento_model.path))
    return str(bento_model.tag)


def list_store(home: Path | None = None) -> list[str]:
    """Tags of every model in the store, sorted."""
    return sorted(str(m.tag) for m in bentoml.models.list(**_store_kwargs(home)))


def store_entry(name_or_tag: str, home: Path | None = None) -> bentoml.Model:
    """The store entry of ``name`` (latest version) or ``name:version``."""
    try:
        return bentoml.models.get(name_or_tag, **_store_kwargs(home))
    except NotFound:
        present = list_store(home) or ["(none)"]
        raise ModelNotFoundError(
            f"model {name_or_tag!r} is not in the BentoML model store; present: {', '.join(present)}"
        ) from None


def _versions(name: str, home: Path | None) -> list[str]:
    """Tags of every version of ``name``, oldest first."""
    try:
        entries = bentoml.models.list(name, **_store_kwargs(home))
    except NotFound:
        return []
    return [str(e.tag) for e in sorted(entries, key=lambda e: e.creation_time)]


def _kind(entry: bentoml.Model) -> str:
    """The model kind a stored version says it is (its ``kind`` label, which ``save_to_store`` always sets)."""
    return str(entry.info.labels.get("kind", "unknown"))


def _record_path(entry: bentoml.Model) -> Path:
    return versions_directory(entry) / PROMOTIONS_FILE


def promotions(name: str, home: Path | None = None) -> list[Promotion]:
    """The promotions of ``name``, oldest first (versions deleted since included); none when never promoted."""
    try:
        entry = bentoml.models.get(name, **_store_kwargs(home))
    except NotFound:
        return []
    path = _record_path(entry)
    if not path.is_file():
        return []
    return [Promotion(**line) for line in json.loads(path.read_text())["promotions"]]


def promoted_tag(name: str, home: Path | None = None) -> str | None:
    """The version of ``name`` promoted last that is still in the store, or None.

    Every serving process asks this every MODEL_WATCH_SECONDS, so it reads
    the record and one version, not every version of the name.
    """
    for promotion in reversed(promotions(name, home)):
        try:
            return str(bentoml.models.get(promotion.tag, **_store_kwargs(home)).tag)
        except NotFound:
            continue  # deleted since it was promoted
    return None


def serving_entry(name_or_tag: str, home: Path | None = None) -> bentoml.Model:
    """The version a ``*_MODEL`` setting means: ``name:version`` itself; a bare ``name``: promoted, else latest."""
    if ":" in name_or_tag:
        return store_entry(name_or_tag, home)
    return store_entry(promoted_tag(name_or_tag, home) or name_or_tag, home)


def serving_tag(name_or_tag: str, home: Path | None = None) -> str:
    """The full tag of ``serving_entry``."""
    return str(serving_entry(name_or_tag, home).tag)


def load_from_store(name_or_tag: str, home: Path | None = None) -> tuple[Recommender, str]:
    """The model a setting means (``serving_entry``: promoted, else latest; or the version given), and its full tag."""
    from recipe_ml.models.base import Recommender  # numpy and scipy: only where a model is loaded

    entry = serving_entry(name_or_tag, home)
    return Recommender.load(Path(entry.path)), str(entry.tag)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One promoter at a time per name (readers never wait: the record is replaced atomically)."""
    with (directory / f".{PROMOTIONS_FILE}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def promotable(tag: str, kind: str, home: Path | None = None) -> bentoml.Model:
    """The store entry of ``tag`` if it may serve ``kind``; ``PromotionError`` naming it and the tags present if not.

    ``kind`` is the model kind its name serves (a store name maps to one kind
    through its ``*_MODEL`` setting): a version of another kind is refused.
    """
    name, _, version = tag.partition(":")
    present = _versions(name, home)
    listing = ", ".join(present) if present else "(none)"
    if not version:
        raise PromotionError(f"{tag!r} names no version: give name:version; {name} versions present: {listing}")
    try:
        entry = store_entry(tag, home)
    except ModelNotFoundError:
        raise PromotionError(f"{tag!r} is not in the model store; {name} versions present: {listing}") from None
    stored_kind = _kind(entry)
    if stored_kind != kind:
        article = "an" if stored_kind[:1] in "aeiou" else "a"
        raise PromotionError(
            f"{entry.tag} is {article} {stored_kind} model, and {name} serves {kind}; "
            f"{name} versions present: {listing}"
        )
    return entry


def promote(tag: str, kind: str, home: Path | None = None) -> Promotion:
    """Make ``tag`` the version its name serves (after ``promotable``'s checks); appends to the promotion record."""
    entry = promotable(tag, kind, home)
    promotion = Promotion(str(entry.tag), datetime.now(UTC).isoformat(timespec="seconds"))
    directory = versions_directory(entry)
    with _locked(directory):
        history = [*promotions(entry.tag.name, home), promotion][-PROMOTIONS_KEPT:]
        staged = directory / f".{PROMOTIONS_FILE}.{os.getpid()}"
        staged.write_text(json.dumps({"promotions": [p.__dict__ for p in history]}, indent=2))
        os.replace(staged, _record_path(entry))  # atomic: a watcher reads the old record or the new one
    return promotion


def prune(name: str, keep: int, home: Path | None = None, *, protect: frozenset[str] = frozenset()) -> list[str]:
    """Delete the versions of ``name`` beyond the newest ``keep``, except the production, previous and ``protect`` ones.

    What a scheduled retrain needs so the store does not grow without end;
    the version serving and the one a rollback would promote always stay.
    Returns the tags deleted.
    """
    stages = {v.tag: v.stage for v in stored_versions(home) if v.tag.startswith(f"{name}:")}
    newest_first = list(reversed(_versions(name, home)))
    doomed = [
        tag for tag in newest_first[keep:] if stages.get(tag) not in ("production", "previous") and tag not in protect
    ]
    for tag in doomed:
        bentoml.models.delete(tag, **_store_kwargs(home))
    return doomed


@dataclass(frozen=True)
class StoredVersion:
    """One version as ``recipe-ml models`` lists it."""

    tag: str
    kind: str
    stage: str
    """``production`` (promoted last), ``previous`` (promoted before it: the rollback), ``retired`` (promoted
    once), ``candidate`` (never promoted)."""
    created: datetime
    metadata: Mapping[str, Any]


def stored_versions(home: Path | None = None) -> list[StoredVersion]:
    """Every version in the store with its stage, by name then oldest first."""
    rows = []
    for name in sorted({e.tag.name for e in bentoml.models.list(**_store_kwargs(home))}):
        present = _versions(name, home)
        promoted = [p.tag for p in promotions(name, home) if p.tag in present]
        order = list(dict.fromkeys(reversed(promoted)))  # most recently promoted first, each once
        for tag in present:
            entry = store_entry(tag, home)
            if order and tag == order[0]:
                stage = "production"
            elif len(order) > 1 and tag == order[1]:
                stage = "previous"
            else:
                stage = "retired" if tag in order else "candidate"
            rows.append(StoredVersion(tag, _kind(entry), stage, entry.creation_time, dict(entry.info.metadata)))
    return rows


def check_models(models: Mapping[str, str], home: Path | None = None) -> None:
    """Raise ``ModelNotFoundError`` naming the setting of every model ``models`` names that the store lacks.

    ``models`` maps a setting (``TWO_TOWER_MODEL``...) to the model it names.
    The server calls it at start-up, before any worker: a typo in a setting
    then stops ``bentoml serve`` at once with this message, rather than a
    worker failing to load its model over and over.
    """
    missing = []
    for setting, name in models.items():
        try:
            serving_entry(name, home)
        except ModelNotFoundError as exc:
            missing.append(f"{setting}: {exc}")
    if missing:
        raise ModelNotFoundError("; ".join(missing))
