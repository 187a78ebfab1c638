"""The BentoML model store: the one place models are saved to and loaded from.

A model is a plain directory (``Recommender.save``); the store adds a
versioned tag, labels and metadata around it. The store lives under
``<home>/models``: the ``home`` argument, else ``$BENTOML_HOME`` as it is at
call time (BentoML itself reads it once, at import), else BentoML's default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bentoml
from bentoml.exceptions import NotFound

from edge.compat import model_store_at

if TYPE_CHECKING:
    from recipe_ml.models.base import Recommender


class ModelNotFoundError(LookupError):
    """The requested model is not in the store; the message lists what is."""


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


def load_from_store(name_or_tag: str, home: Path | None = None) -> tuple[Recommender, str]:
    """The model stored under ``name`` (latest version) or ``name:version``, and its full tag."""
    from recipe_ml.models.base import Recommender  # numpy and scipy: only where a model is loaded

    entry = store_entry(name_or_tag, home)
    return Recommender.load(Path(entry.path)), str(entry.tag)


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
            store_entry(name, home)
        except ModelNotFoundError as exc:
            missing.append(f"{setting}: {exc}")
    if missing:
        raise ModelNotFoundError("; ".join(missing))
