"""The simulated experiment end to end, small: a live server, both variants, every cook attributed and reported."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from edge.model_store import save_to_store
from harness.simulate_experiment import VARIANTS, simulate
from recipe_ml.config import DATA_DIR
from recipe_ml.training.trainer import train_all

pytestmark = pytest.mark.integration

USERS = 300


@pytest.fixture(scope="module")
def eval_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models fitted on the train split only (``recipe-ml train --eval``) of a seeded slice of users."""
    home = tmp_path_factory.mktemp("simulation_home")
    train_all(
        functools.partial(save_to_store, home=home),
        eval_mode=True,
        n_sample_users=USERS,
        epochs=1,
        seed=0,
        show_progress=False,
        log=lambda _: None,
    )
    return home


def test_the_simulation_reports_both_variants_with_every_posted_cook_attributed(
    eval_store: Path, tmp_path: Path
) -> None:
    report, cooks = simulate(eval_store, DATA_DIR, n_users=None, seed=0, concurrency=4, out_dir=tmp_path)

    assert [v.variant for v in report.variants] == list(VARIANTS)
    assert sum(v.impressions for v in report.variants) == sum(v.users for v in report.variants) == USERS
    assert {model for v in report.variants if v.variant == "popularity" for model in v.models} == {"popularity"}
    assert cooks > 0, "some recommended recipe is among a user's held-out ratings"
    assert 0 < sum(v.cook_rate.successes for v in report.variants) <= cooks
    assert all(v.click_through.successes == v.cook_rate.successes for v in report.variants), "only cooks simulated"
    written = json.loads((tmp_path / "experiment.json").read_text())
    assert [v["variant"] for v in written["variants"]] == list(VARIANTS)
    assert (tmp_path / "experiment.png").stat().st_size > 0
