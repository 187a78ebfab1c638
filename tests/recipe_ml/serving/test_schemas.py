"""Request validation: every bad input names its field."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from pydantic import ValidationError

from recipe_ml.config import get_settings
from recipe_ml.serving.schemas import (
    BatchRequest,
    ColdStartRequest,
    RecipeRequest,
    SimilarRecipesRequest,
    SimilarUsersRequest,
)
from recipe_ml.serving.wire import RankQuery


def error_fields(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [".".join(str(p) for p in err["loc"]) for err in exc.value.errors()]


def test_defaults_come_from_the_settings() -> None:
    request = RecipeRequest.model_validate_json(b'{"user_id": 5, "max_fsa_score": 7}')

    assert request.top_k == 10
    assert request.diversity == get_settings().mmr_diversity_weight
    assert request.exclude_recipe_ids == [] and request.max_fsa_score == 7.0  # an int is a float


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 5, "top_k": 0}, "top_k"),
        ({"user_id": 5, "top_k": -3}, "top_k"),
        ({"user_id": 5, "top_k": 10**9}, "top_k"),
        ({"user_id": 5, "top_k": "ten"}, "top_k"),
        ({"top_k": 5}, "user_id"),
        ({"user_id": -1}, "user_id"),
        ({"user_id": 5, "diversity": 1.5}, "diversity"),
        ({"user_id": 5, "personalization": 1.01}, "personalization"),
        ({"user_id": 5, "personalization": -0.5}, "personalization"),
        ({"user_id": 5, "personalization": "all"}, "personalization"),
        ({"user_id": 5, "max_fsa_score": 2}, "max_fsa_score"),
        ({"user_id": 5, "exclude_recipe_ids": ["x"]}, "exclude_recipe_ids.0"),
        ({"user_id": 5, "topk": 5}, "topk"),
        ({"user_id": True}, "user_id"),
        ({"user_id": 1e3}, "user_id"),
        ({"user_id": 2**64}, "user_id"),
        ({"user_id": 5, "exclude_recipe_ids": [2**64]}, "exclude_recipe_ids.0"),
        ({"user_id": 5, "top_k": "5"}, "top_k"),
    ],
)
def test_bad_recipe_requests_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        RecipeRequest.model_validate(body)

    assert field in error_fields(exc)


def test_batch_size_is_bounded_by_max_batch_size() -> None:
    limit = get_settings().max_batch_size
    BatchRequest(user_ids=list(range(limit)))

    with pytest.raises(ValidationError, match="MAX_BATCH_SIZE") as exc:
        BatchRequest(user_ids=list(range(limit + 1)))
    assert error_fields(exc) == ["user_ids"]
    with pytest.raises(ValidationError) as empty:
        BatchRequest(user_ids=[])
    assert error_fields(empty) == ["user_ids"]
    with pytest.raises(ValidationError) as negative:
        BatchRequest(user_ids=[1, -2])
    assert error_fields(negative) == ["user_ids.1"]


def test_cold_start_and_similar_users_validate_too() -> None:
    assert ColdStartRequest().recent_recipe_ids == [] and ColdStartRequest().personalization is None
    with pytest.raises(ValidationError) as share:
        ColdStartRequest.model_validate({"personalization": 2})
    assert error_fields(share) == ["personalization"]
    with pytest.raises(ValidationError) as exc:
        ColdStartRequest.model_validate({"recent_recipe_ids": "1,2"})
    assert error_fields(exc) == ["recent_recipe_ids"]
    with pytest.raises(ValidationError) as users:
        SimilarUsersRequest.model_validate({"user_id": 1, "diversity": 0.2})
    assert error_fields(users) == ["diversity"]


def test_every_ranking_option_reaches_the_model_query() -> None:
    """A new request option that the runners' ``RankQuery`` lacks would be dropped silently."""
    request = RecipeRequest(
        user_id=1, top_k=3, exclude_recipe_ids=[7], diversity=0.5, max_fsa_score=6.0, personalization=0.4
    )
    options = asdict(request.rank_options())
    # ``variant`` picks the variant whose overrides the engine applies to these options: not an option itself.
    assert set(options) == set(RecipeRequest.model_fields) - {"user_id", "variant"}
    assert options["exclude_recipe_ids"] == [7] and options["diversity"] == 0.5 and options["personalization"] == 0.4
    query = RankQuery.of(request.rank_options(), 1, [])
    # The tags reach the model as recipe ids (``recipe_ml.catalogue.filters``: test_filters.py), not as tags.
    tags = {"require_tags", "exclude_tags"}
    assert query.model_dump(include=set(options) - tags) == {k: v for k, v in options.items() if k not in tags}


def test_similar_recipes_have_no_personalization() -> None:
    """There is no user to personalise for: the field is refused, not ignored."""
    with pytest.raises(ValidationError) as exc:
        SimilarRecipesRequest.model_validate({"recipe_id": 1, "personalization": 0.5})
    assert error_fields(exc) == ["personalization"]


def test_the_limits_and_defaults_are_the_settings_when_a_request_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read when used, not when the module was imported: new settings apply without a re-import."""
    for variable, value in (("MAX_TOP_K", "5"), ("MAX_BATCH_SIZE", "2"), ("MMR_DIVERSITY_WEIGHT", "0.1")):
        monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    try:
        assert RecipeRequest(user_id=1).diversity == 0.1
        with pytest.raises(ValidationError, match="top_k must be at most 5"):
            RecipeRequest(user_id=1, top_k=6)
        with pytest.raises(ValidationError, match="at most 2 user_ids"):
            BatchRequest(user_ids=[1, 2, 3])
        schema = BatchRequest.model_json_schema()["properties"]
        assert schema["top_k"]["maximum"] == 5 and schema["user_ids"]["maxItems"] == 2
    finally:
        get_settings.cache_clear()  # the next reader sees the environment as it is restored


def test_a_forced_variant_must_be_one_of_the_experiment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no variant 'treatment' in the experiment; it has default") as exc:
        RecipeRequest.model_validate({"user_id": 1, "variant": "treatment"})
    assert error_fields(exc) == ["variant"]
    assert RecipeRequest(user_id=1, variant="default").variant == "default"

    experiment = tmp_path / "experiment.json"
    experiment.write_text(
        json.dumps({"name": "e", "salt": "s", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]})
    )
    monkeypatch.setenv("EXPERIMENTS", str(experiment))
    get_settings.cache_clear()
    try:
        assert SimilarRecipesRequest(recipe_id=1, variant="b").variant == "b"
        with pytest.raises(ValidationError, match="no variant 'default' in the experiment; it has a, b") as unknown:
            ColdStartRequest.model_validate({"variant": "default"})
        assert error_fields(unknown) == ["variant"]
    finally:
        get_settings.cache_clear()
