"""``recipe-ml promote`` and ``recipe-ml models``: serving a stored version, rolling back, and what is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.model_store import promotions, save_to_store, serving_tag, store_entry
from recipe_ml.data import Interactions
from recipe_ml.models import model_class
from scripts.cli import main as cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    return tmp_path


def save(kind: str, name: str, data: Interactions, home: Path) -> str:
    model = model_class(kind)(**({"factors": 8, "iterations": 2} if kind == "als" else {}))
    model.fit(data)
    return save_to_store(model, name, {"metrics": {"ndcg@20": 0.0123}}, home=home)


def truncate(tag: str, array: str, home: Path) -> None:
    """Cut a stored array in half: what a copy interrupted mid-file leaves."""
    path = Path(store_entry(tag, home=home).path) / array
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_promote_then_roll_back_by_promoting_the_previous_version(
    small_splits: dict[str, Interactions], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = (save("popularity", "recipe_popularity", small_splits["train"], home) for _ in range(2))

    assert cli(["promote", first]) == 0
    assert f"promoted {first} (serving before: {second})" in capsys.readouterr().out
    assert cli(["promote", second]) == 0 and cli(["promote", first]) == 0
    capsys.readouterr()

    assert serving_tag("recipe_popularity", home=home) == first
    assert cli(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["TAG", "STAGE", "AGE"]
    listed = {tag: next(line for line in lines if tag in line) for tag in (first, second)}
    assert listed[first].startswith("*") and " production " in listed[first] and "0.0123" in listed[first]
    assert " previous " in listed[second] and not listed[second].startswith("*")


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (
            "recipe_popularity:nope",
            "'recipe_popularity:nope' is not in the model store; recipe_popularity versions present: ",
        ),
        ("recipe_popularity", "'recipe_popularity' names no version: give name:version;"),
        (
            "recipe_ml_service:abc",
            "'recipe_ml_service:abc' is not a model the service serves; "
            "it serves recipe_popularity, recipe_als, recipe_two_tower",
        ),
    ],
)
def test_a_tag_not_in_the_store_or_not_served_is_refused_naming_it_and_the_tags_present(
    tag: str, message: str, small_splits: dict[str, Interactions], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    present = save("popularity", "recipe_popularity", small_splits["train"], home)

    assert cli(["promote", tag]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}")
    assert present in err
    assert promotions("recipe_popularity", home=home) == []


def test_a_version_of_another_kind_is_refused(
    small_splits: dict[str, Interactions], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = save("popularity", "recipe_popularity", small_splits["train"], home)
    intruder = save("als", "recipe_popularity", small_splits["train"], home)

    assert cli(["promote", intruder]) == 2

    assert capsys.readouterr().err == (
        f"error: {intruder} is an als model, and recipe_popularity serves popularity; "
        f"recipe_popularity versions present: {good}, {intruder}\n"
    )


def test_a_version_that_does_not_load_is_refused_and_nothing_is_promoted(
    small_splits: dict[str, Interactions], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = save("popularity", "recipe_popularity", small_splits["train"], home)
    broken = save("popularity", "recipe_popularity", small_splits["train"], home)
    truncate(broken, "item_vectors.npy", home)

    assert cli(["promote", good, broken]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"error: {broken} does not load (ValueError: ") and err.endswith("; not promoted\n")
    assert promotions("recipe_popularity", home=home) == []  # the good one neither: all or nothing
    with pytest.raises(ValueError):
        np.load(Path(store_entry(broken, home=home).path) / "item_vectors.npy")


def test_models_on_an_empty_store_says_how_to_fill_it(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["models"]) == 0
    assert capsys.readouterr().out == "the model store is empty: `recipe-ml train` fills it\n"
