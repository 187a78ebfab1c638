"""The table of model kinds and what must agree with it."""

from __future__ import annotations

import inspect

import pytest
import yaml

from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.models import CHAIN, KINDS, PERSONAL_SCORERS, REGISTRY, model_class, model_kind, personal_scorer_class
from recipe_ml.models.base import Recommender


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_its_class_and_a_setting_defaulting_to_its_store_name(kind: str) -> None:
    row = REGISTRY[kind]
    assert model_class(kind).kind == kind
    assert Settings.model_fields[row.setting].default == row.store_name
    assert Settings().model_name(kind) == row.store_name


@pytest.mark.parametrize("kind", KINDS)
def test_what_a_row_says_of_training_is_what_the_class_takes(kind: str) -> None:
    row, cls = REGISTRY[kind], model_class(kind)
    arguments = inspect.signature(cls).parameters
    assert row.seeded == ("seed" in arguments)
    assert row.trains_in_epochs == ("epochs" in arguments) == (cls.fit_epochs is not Recommender.fit_epochs)


def test_the_chain_ends_with_the_in_process_model() -> None:
    assert sorted(CHAIN) == sorted(KINDS)
    assert [REGISTRY[kind].runner is None for kind in CHAIN] == [False] * (len(CHAIN) - 1) + [True]


def test_the_bento_ships_every_registered_model() -> None:
    bentofile = yaml.safe_load((REPO_ROOT / "bentofile.yaml").read_text())
    assert set(bentofile["models"]) == {row.store_name for row in REGISTRY.values()}


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown model kind 'svd'; known kinds: popularity, als, two_tower"):
        model_kind("svd")


@pytest.mark.parametrize("name", PERSONAL_SCORERS)
def test_every_personal_scorer_has_its_class(name: str) -> None:
    assert personal_scorer_class(name).kind == name


def test_an_unknown_personal_scorer_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown personal scorer 'slim'; known scorers: ease"):
        personal_scorer_class("slim")
