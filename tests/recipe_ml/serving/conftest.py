"""The trained models as in-process links of the chain, shared by the engine's test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.model_store import load_from_store
from recipe_ml.serving.backends import LocalBackend
from recipe_ml.serving.ranker import ModelRanker
from recipe_ml.serving.slot import ModelSlot


def local(kind: str, home: Path) -> LocalBackend:
    model, tag = load_from_store(f"recipe_{kind}", home=home)
    return LocalBackend(ModelSlot(ModelRanker(model, tag)))


@pytest.fixture(scope="module")
def als(model_store: Path) -> LocalBackend:
    return local("als", model_store)


@pytest.fixture(scope="module")
def popularity(model_store: Path) -> LocalBackend:
    return local("popularity", model_store)
