"""recipe_ml.training.trainer end to end on a small user slice, into a temporary store."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.model_store import list_store, load_from_store, save_to_store, store_entry
from recipe_ml.config import DATA_DIR
from recipe_ml.data import Ratings
from recipe_ml.evaluation.protocol import METRICS
from recipe_ml.training.gate import Candidate, Decision, Verdict
from recipe_ml.training.snapshot import LiveData
from recipe_ml.training.trainer import train_all
from scripts.cli import main as cli
from scripts.train import main

QUIET: dict[str, Any] = {"show_progress": False, "log": lambda _: None}


@pytest.mark.integration  # stores versions: their code version runs git
def test_main_trains_all_three_models_into_bentoml_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    assert main(["--eval", "--sample-users", "200", "--epochs", "1", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "live interactions: not read (no --live)" in out and "200 users" in out and "total training time:" in out
    tags = list_store(tmp_path)
    assert [t.split(":")[0] for t in tags] == ["recipe_als", "recipe_popularity", "recipe_two_tower"]
    entry = store_entry("recipe_two_tower", home=tmp_path)
    meta: dict[str, Any] = dict(entry.info.metadata)
    assert meta["trained_on"] == "train" and meta["n_users"] == 200 and meta["seed"] == 5
    assert meta["hyper_parameters"]["epochs"] == 1
    assert set(meta["metrics"]) == set(METRICS)
    assert meta["personalization"].startswith("ease scorer, adaptive positions")
    assert "two_tower+ease: fitted without the held-out split in" in out and "held-out ndcg@10 " in out
    assert "two_tower+ease: trained on train in" in out
    assert len(meta["data_fingerprint"]) == len(meta["held_out_fingerprint"]) == 64
    assert meta["rows"]["live"] == 0 and meta["rows"]["users"] == 200
    assert meta["code_version"].startswith("git ")
    assert entry.info.labels == {"kind": "two_tower"}


@pytest.mark.integration  # stores versions: their code version runs git
def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    """Same data and seed: the same models and the same held-out figures."""
    for home in ("a", "b"):
        train_all(
            functools.partial(save_to_store, home=tmp_path / home),
            n_sample_users=150,
            epochs=1,
            seed=1,
            kinds=["als", "two_tower"],
            **QUIET,
        )
    for name in ("recipe_als", "recipe_two_tower"):
        a, a_tag = load_from_store(name, home=tmp_path / "a")
        b, b_tag = load_from_store(name, home=tmp_path / "b")
        np.testing.assert_array_equal(a.score(a.user_vectors), b.score(b.user_vectors))
        a_meta, b_meta = (store_entry(tag, home=tmp_path / h).info.metadata for tag, h in ((a_tag, "a"), (b_tag, "b")))
        assert a_meta["metrics"] == b_meta["metrics"] and a_meta["data_fingerprint"] == b_meta["data_fingerprint"]


def test_a_refusing_gate_stores_nothing(tmp_path: Path) -> None:
    seen: list[tuple[list[str], str]] = []

    def refuse(candidates: Sequence[Candidate], held_out: str) -> Decision:
        seen.append(([c.kind for c in candidates], held_out))
        return Decision(tuple(Verdict(c.kind, c.kind != "als", ("test",)) for c in candidates))

    run = train_all(
        functools.partial(save_to_store, home=tmp_path),
        n_sample_users=150,
        kinds=["popularity", "als"],
        gate=refuse,
        **QUIET,
    )
    assert run.refused and run.models == [] and [c.kind for c in run.candidates] == ["popularity", "als"]
    assert seen[0][0] == ["popularity", "als"] and len(seen[0][1]) == 64
    assert list_store(tmp_path) == []


@pytest.mark.integration  # stores versions: their code version runs git
def test_live_users_and_recipes_get_vectors_of_their_own(tmp_path: Path) -> None:
    new_user, new_recipe = 900_000_001, 900_000_002
    known = [10813, 162760, 9023]  # the most rated recipes of the shipped data
    rows = [(new_user, new_recipe), *((new_user, r) for r in known), *((u, new_recipe) for u in range(1, 6))]
    ratings = Ratings(
        np.array([u for u, _ in rows], dtype=np.int64),
        np.array([r for _, r in rows], dtype=np.int64),
        np.full(len(rows), 5, dtype=np.int8),
    )
    run = train_all(
        functools.partial(save_to_store, home=tmp_path),
        live=LiveData(ratings, "test"),
        n_sample_users=150,
        epochs=1,
        kinds=["als"],
        **QUIET,
    )
    model, _ = load_from_store("recipe_als", home=tmp_path)
    user = model.users.index_of(new_user)  # ids 1-5 and 900,000,001 are no Allrecipes user
    assert user is not None and model.items.index_of(new_recipe) is not None
    assert set(model.items.ids[model.history(user)].tolist()) == {new_recipe, *known}
    assert run.rows["live"] == len(rows) and run.rows["live_only_users"] == 6 and run.rows["live_only_recipes"] == 1
    meta = store_entry(run.models[0].tag, home=tmp_path).info.metadata
    assert meta["trained_on"] == "train+validation+live"


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
