"""BentoML model store round trips (save → load gives the same model) and promotions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.model_store import (
    ModelNotFoundError,
    PromotionError,
    check_models,
    list_store,
    load_from_store,
    promote,
    promoted_tag,
    promotions,
    prune,
    save_to_store,
    serving_tag,
    store_entry,
    stored_versions,
)
from recipe_ml.config import get_settings
from recipe_ml.data import Interactions
from recipe_ml.models import KINDS, REGISTRY, model_class
from recipe_ml.models.base import Recommender

SMALL = {"popularity": {}, "als": {"factors": 8, "iterations": 3}, "two_tower": {"epochs": 1}}


def small_model(kind: str, data: Interactions) -> Recommender:
    model = model_class(kind)(**SMALL[kind])
    model.fit(data)
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_save_then_load_gives_identical_scores(
    kind: str, small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    model = small_model(kind, small_splits["train"])
    tag = save_to_store(model, f"test_{kind}", {"note": "x"}, {"stage": "test"}, home=tmp_path)
    loaded, loaded_tag = load_from_store(f"test_{kind}", home=tmp_path)
    assert loaded_tag == tag and tag.startswith(f"test_{kind}:")
    assert type(loaded) is type(model) and loaded.hyper_parameters() == model.hyper_parameters()
    np.testing.assert_array_equal(loaded.users.ids, model.users.ids)
    np.testing.assert_array_equal(loaded.items.ids, model.items.ids)
    np.testing.assert_array_equal(loaded.item_fsa, model.item_fsa)
    assert (loaded.seen != model.seen).nnz == 0
    np.testing.assert_allclose(loaded.score(loaded.user_vectors), model.score(model.user_vectors))
    histories = [model.history(3), np.array([0, 5, 9])]
    np.testing.assert_allclose(loaded.fold_in(histories), model.fold_in(histories), rtol=1e-6)
    entry = store_entry(tag, home=tmp_path)
    assert entry.info.labels == {"kind": kind, "stage": "test"}
    assert entry.info.metadata == {"kind": kind, "note": "x"}


def test_a_new_save_becomes_the_latest_version(small_splits: dict[str, Interactions], tmp_path: Path) -> None:
    model = small_model("popularity", small_splits["train"])
    first = save_to_store(model, "pop", home=tmp_path)
    second = save_to_store(model, "pop", home=tmp_path)
    assert load_from_store("pop", home=tmp_path)[1] == second
    assert load_from_store(first, home=tmp_path)[1] == first
    assert list_store(tmp_path) == sorted([first, second])


def test_missing_model_names_what_the_store_holds(small_splits: dict[str, Interactions], tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"'recipe_als' is not in the BentoML model store; present: \(none\)"):
        load_from_store("recipe_als", home=tmp_path)
    tag = save_to_store(small_model("popularity", small_splits["train"]), "recipe_popularity", home=tmp_path)
    with pytest.raises(ModelNotFoundError, match=f"'recipe_als' is not in .*; present: {tag}$"):
        load_from_store("recipe_als", home=tmp_path)
    with pytest.raises(LookupError, match=r"'recipe_popularity:nope' is not in"):
        load_from_store("recipe_popularity:nope", home=tmp_path)


def test_bentoml_home_is_read_at_call_time(
    small_splits: dict[str, Interactions], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    tag = save_to_store(small_model("popularity", small_splits["train"]), "env_model")
    assert (tmp_path / "models" / "env_model").is_dir()
    assert load_from_store("env_model")[1] == tag


@pytest.mark.integration
def test_fixture_store_holds_the_three_service_models(model_store: Path) -> None:
    settings = get_settings()
    for kind in REGISTRY:
        name = settings.model_name(kind)
        model, tag = load_from_store(name, home=model_store)
        assert model.kind == kind and tag.startswith(f"{name}:")
        entry = store_entry(tag, home=model_store)
        assert entry.info.metadata["n_users"] == len(model.users) == 1500
        assert entry.info.labels == {"kind": kind}


def test_check_models_names_the_setting_of_each_missing_model(
    small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    save_to_store(small_model("popularity", small_splits["train"]), "present_model", home=tmp_path)

    check_models({"POPULARITY_MODEL": "present_model"}, home=tmp_path)
    with pytest.raises(ModelNotFoundError) as error:
        check_models(
            {"POPULARITY_MODEL": "present_model", "ALS_MODEL": "nope", "TWO_TOWER_MODEL": "gone"}, home=tmp_path
        )

    message = str(error.value)
    assert "ALS_MODEL: model 'nope'" in message and "TWO_TOWER_MODEL: model 'gone'" in message
    assert "POPULARITY_MODEL" not in message and "present: present_model:" in message


def test_a_bare_name_serves_the_promoted_version_else_the_latest(
    small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    model = small_model("popularity", small_splits["train"])
    first, second, third = (save_to_store(model, "pop", home=tmp_path) for _ in range(3))
    assert promoted_tag("pop", home=tmp_path) is None and promotions("pop", home=tmp_path) == []
    assert serving_tag("pop", home=tmp_path) == third  # nothing promoted: the latest

    promote(first, "popularity", home=tmp_path)
    assert serving_tag("pop", home=tmp_path) == first == load_from_store("pop", home=tmp_path)[1]
    assert serving_tag(second, home=tmp_path) == second  # a full tag pins its version

    promote(second, "popularity", home=tmp_path)
    promote(first, "popularity", home=tmp_path)  # the rollback
    assert [p.tag for p in promotions("pop", home=tmp_path)] == [first, second, first]
    assert serving_tag("pop", home=tmp_path) == first
    stages = {v.tag: v.stage for v in stored_versions(tmp_path)}
    assert stages == {first: "production", second: "previous", third: "candidate"}


def test_a_deleted_promoted_version_falls_back_to_the_one_promoted_before(
    small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    import bentoml

    from edge.compat import model_store_at

    model = small_model("popularity", small_splits["train"])
    first, second = (save_to_store(model, "pop", home=tmp_path) for _ in range(2))
    promote(first, "popularity", home=tmp_path)
    promote(second, "popularity", home=tmp_path)
    bentoml.models.delete(second, **model_store_at(tmp_path))
    assert serving_tag("pop", home=tmp_path) == first
    assert [v.stage for v in stored_versions(tmp_path)] == ["production"]


def test_promoting_what_the_store_lacks_or_of_another_kind_is_refused_naming_the_tags_present(
    small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    popularity = save_to_store(small_model("popularity", small_splits["train"]), "pop", home=tmp_path)
    intruder = save_to_store(small_model("als", small_splits["train"]), "pop", home=tmp_path)
    present = f"pop versions present: {popularity}, {intruder}"

    with pytest.raises(PromotionError, match=f"'pop:nope' is not in the model store; {present}$"):
        promote("pop:nope", "popularity", home=tmp_path)
    with pytest.raises(PromotionError, match=f"'pop' names no version: give name:version; {present}$"):
        promote("pop", "popularity", home=tmp_path)
    with pytest.raises(PromotionError, match=f"{intruder} is an als model, and pop serves popularity; {present}$"):
        promote(intruder, "popularity", home=tmp_path)
    with pytest.raises(PromotionError, match=r"'gone:v1' is not in the model store; gone versions present: \(none\)"):
        promote("gone:v1", "popularity", home=tmp_path)
    assert promotions("pop", home=tmp_path) == []


def test_prune_keeps_the_newest_and_never_the_serving_or_rollback_version(
    small_splits: dict[str, Interactions], tmp_path: Path
) -> None:
    model = small_model("popularity", small_splits["train"])
    v1, v2, v3, v4, v5 = (save_to_store(model, "pop", home=tmp_path) for _ in range(5))
    promote(v2, "popularity", home=tmp_path)
    promote(v4, "popularity", home=tmp_path)

    assert prune("pop", 1, home=tmp_path, protect=frozenset({v1})) == [v3]

    assert list_store(tmp_path) == sorted([v1, v2, v4, v5])
    assert serving_tag("pop", home=tmp_path) == v4
    assert prune("pop", 10, home=tmp_path) == []
