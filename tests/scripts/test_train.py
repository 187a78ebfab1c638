"""The lifecycle doors (train --promote-if-better, trainer): train, gate, promote; a refusal changes nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.model_store import list_store, promoted_tag, serving_tag
from recipe_ml.config import DATA_DIR, get_settings
from recipe_ml.data import HEALTH_FILE, Ratings, load_splits, ratings_of, sample_users
from scripts.cli import main as cli
from scripts.train import GATE_REFUSED

pytestmark = pytest.mark.integration

NAMES = ("recipe_popularity", "recipe_als", "recipe_two_tower")
FAST = ["--epochs", "1"]


def write_ratings(path: Path, rows: Ratings) -> None:
    lines = (f"{u},{r},{x}\n" for u, r, x in zip(rows.user_id, rows.recipe_id, rows.rating, strict=True))
    path.write_text("user_id,recipe_id,rating\n" + "".join(lines))


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 1,000-user slice of the real data, and the same with every training rating moved to a random recipe.

    The slice is written as data files (not ``--sample-users``) so that both
    directories hold the same held-out split over the same recipes.
    """
    root = tmp_path_factory.mktemp("data")
    parts = {name: ratings_of(part) for name, part in sample_users(load_splits(DATA_DIR), 1000, seed=0).items()}
    recipes = np.unique(np.concatenate([rows.recipe_id for rows in parts.values()]))
    train = parts["train"]
    shuffled = Ratings(train.user_id, np.random.default_rng(0).choice(recipes, size=len(train)), train.rating)
    dirs = root / "good", root / "corrupted"
    for directory, train_rows in zip(dirs, (train, shuffled), strict=True):
        directory.mkdir()
        shutil.copy(DATA_DIR / HEALTH_FILE, directory / HEALTH_FILE)
        write_ratings(directory / "train.csv", train_rows)
        write_ratings(directory / "validation.csv", parts["validation"])
    return dirs


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_a_candidate_trained_on_corrupted_data_is_refused_and_nothing_changes(
    data_dirs: tuple[Path, Path], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, corrupted = data_dirs
    assert cli(["train", "--promote-if-better", "--data-dir", str(good), *FAST]) == 0
    out = capsys.readouterr().out
    assert "gate: promote" in out and "no version serving yet" in out
    served = {name: serving_tag(name) for name in NAMES}
    assert all(promoted_tag(name) == served[name] and f"promoted {served[name]}" in out for name in NAMES)
    tags = list_store()

    assert cli(["train", "--promote-if-better", "--data-dir", str(corrupted), *FAST]) == GATE_REFUSED

    out = capsys.readouterr().out
    assert "gate: REFUSED, nothing changes" in out
    assert "two_tower: REFUSED: ndcg@20 " in out and f"of the serving {served['recipe_two_tower']}" in out
    assert "beyond the tolerance of -2.0%" in out
    assert out.rstrip().endswith("not promoted: the gate refused the candidates (exit 3); the serving versions stay")
    assert list_store() == tags and {name: serving_tag(name) for name in NAMES} == served


def test_a_candidate_as_good_as_the_serving_one_is_promoted(
    data_dirs: tuple[Path, Path], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, _ = data_dirs
    argv = ["train", "--promote-if-better", "--data-dir", str(good), "--kinds", "popularity", "two_tower", *FAST]
    assert cli(argv) == 0
    first = serving_tag("recipe_two_tower")
    capsys.readouterr()

    assert cli(argv) == 0

    out = capsys.readouterr().out
    assert "two_tower: passed: ndcg@20 " in out and "(+0.0%, within the tolerance of -2.0%)" in out
    assert serving_tag("recipe_two_tower") != first and len(list_store()) == 4


def test_live_training_without_a_store_says_so_and_trains_on_the_shipped_data(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["train", "--live", "--kinds", "popularity", "--sample-users", "100"]) == 0
    out = capsys.readouterr().out
    assert "no live interactions: REDIS_URL is not set; training on the shipped data only" in out
    assert "+ 0 live interactions" in out and len(list_store()) == 1


def test_eval_models_are_not_promoted(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli(["train", "--eval", "--promote-if-better"])
    assert info.value.code == 2
    assert "--eval models are fitted without the validation split" in capsys.readouterr().err


def test_the_trainer_runs_train_live_promote_if_better(
    data_dirs: tuple[Path, Path], home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, corrupted = data_dirs
    monkeypatch.setenv("RETRAIN_INTERVAL", "6h")
    assert cli(["trainer", "--once", "--data-dir", str(good), "--kinds", "popularity"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"trainer: every 6h: recipe-ml train --live --promote-if-better --data-dir {good} --kinds popularity\n"
        "trainer: run 1 at "
    )
    assert "REDIS_URL is not set" in out and "gate: promote" in out and "trainer: run 1: trained and promoted" in out

    assert cli(["trainer", "--once", "--data-dir", str(corrupted), "--kinds", "popularity"]) == GATE_REFUSED
    assert "trainer: run 1: refused by the gate, nothing changed" in capsys.readouterr().out


def test_the_trainer_deletes_versions_beyond_the_newest_it_keeps(
    data_dirs: tuple[Path, Path], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, _ = data_dirs
    argv = ["trainer", "--once", "--keep", "2", "--data-dir", str(good), "--kinds", "popularity"]
    for _ in range(3):
        assert cli(argv) == 0
    out = capsys.readouterr().out
    first = out.split("promoted ", 1)[1].split()[0]
    assert f"trainer: deleted 1 old version(s): {first}" in out
    assert len(list_store()) == 2 and first not in list_store()


def test_the_trainer_keeps_at_least_the_serving_and_the_rollback_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli(["trainer", "--keep", "1"])
    assert info.value.code == 2
    assert "--keep must be >= 2" in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["soon", "0", "-5m", "1w"])
def test_a_retrain_interval_that_does_not_parse_stops_the_trainer_naming_it(
    interval: str, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_INTERVAL", interval)
    assert cli(["trainer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid settings: RETRAIN_INTERVAL: ")
    assert list_store() == []
