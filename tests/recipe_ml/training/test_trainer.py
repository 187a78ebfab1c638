"""recipe_ml.training.trainer end to end on a small user slice, into a temporary store."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.model_store import list_store, load_from_store, save_to_store, store_entry
from recipe_ml.config import DATA_DIR
from recipe_ml.evaluation.protocol import METRICS
from recipe_ml.training.trainer import train_all
from scripts.cli import main as cli
from scripts.train import main


def test_main_trains_all_three_models_into_bentoml_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    assert main(["--eval", "--sample-users", "200", "--epochs", "1", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "200 users" in out and "(train)" in out and "total training time:" in out
    tags = list_store(tmp_path)
    assert [t.split(":")[0] for t in tags] == ["recipe_als", "recipe_popularity", "recipe_two_tower"]
    entry = store_entry("recipe_two_tower", home=tmp_path)
    meta: dict[str, Any] = dict(entry.info.metadata)
    assert meta["trained_on"] == "train" and meta["n_users"] == 200 and meta["seed"] == 5
    assert meta["hyper_parameters"]["epochs"] == 1
    assert set(meta["metrics"]) == set(METRICS)
    assert meta["personalization"].startswith("ease scorer, adaptive positions")
    assert "two_tower+ease: trained in" in out
    assert len(meta["data_fingerprint"]) == 64
    assert entry.info.labels == {"kind": "two_tower", "stage": "evaluation"}


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    for home in ("a", "b"):
        train_all(
            functools.partial(save_to_store, home=tmp_path / home),
            n_sample_users=150,
            epochs=1,
            seed=1,
            kinds=["als", "two_tower"],
            show_progress=False,
            log=lambda _: None,
        )
    for name in ("recipe_als", "recipe_two_tower"):
        a, _ = load_from_store(name, home=tmp_path / "a")
        b, _ = load_from_store(name, home=tmp_path / "b")
        np.testing.assert_array_equal(a.score(a.user_vectors), b.score(b.user_vectors))


def test_a_malformed_data_file_fails_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(DATA_DIR, data_dir)
    with (data_dir / "validation.csv").open("a") as handle:
        handle.write("12,34\n")
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "home"))
    assert cli(["train", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert f"error: {data_dir / 'validation.csv'}:24246: expected 3 fields, got 2" in err
    assert list_store(tmp_path / "home") == []


@pytest.mark.parametrize("args", [["--sample-users", "0"], ["--epochs", "0"], ["--kinds", "svd"]])
def test_bad_options_are_rejected(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert args[0] in capsys.readouterr().err
