"""Experiment files and the hashed assignment (``recipe_ml.experiments``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy.stats import chisquare

from recipe_ml.config import REPO_ROOT, Settings
from recipe_ml.experiments import DEFAULT_VARIANT, NO_EXPERIMENT, Experiment, ExperimentError, load_experiment

NINETY_TEN = {
    "name": "shipped-vs-popularity",
    "salt": "2026-12",
    "variants": [
        {"name": "shipped", "weight": 90},
        {"name": "popularity", "weight": 10, "overrides": {"first_model": "popularity", "diversity": 0.0}},
    ],
}


def write(tmp_path: Path, content: object, name: str = "experiments.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_a_yaml_and_a_json_file_declare_the_same_experiment(tmp_path: Path) -> None:
    yaml_file = write(
        tmp_path,
        "name: shipped-vs-popularity\nsalt: '2026-12'\nvariants:\n"
        "  - {name: shipped, weight: 90}\n"
        "  - name: popularity\n    weight: 10\n    overrides: {first_model: popularity, diversity: 0.0}\n",
    )
    json_file = write(tmp_path, NINETY_TEN, "experiments.json")

    assert load_experiment(yaml_file) == load_experiment(json_file) == Experiment.model_validate(NINETY_TEN)


def test_weights_ninety_ten_split_users_ninety_ten() -> None:
    experiment = Experiment.model_validate(NINETY_TEN)
    users = 20_000

    counts = [0, 0]
    for user_id in range(users):
        counts[experiment.names().index(experiment.assign(user_id).name)] += 1

    # A chi-square test of the counts against the weights' proportions: a biased hash fails it.
    assert chisquare(counts, [0.9 * users, 0.1 * users]).pvalue > 0.001, counts


def test_the_salt_reshuffles_users_and_an_id_keeps_its_variant() -> None:
    experiment = Experiment.model_validate(NINETY_TEN)
    other = Experiment.model_validate({**NINETY_TEN, "salt": "another"})

    assignments = [experiment.assign(user_id).name for user_id in range(2000)]

    assert assignments == [experiment.assign(user_id).name for user_id in range(2000)]
    assert assignments != [other.assign(user_id).name for user_id in range(2000)]


@pytest.mark.integration
def test_another_process_assigns_every_user_the_same_variant(tmp_path: Path) -> None:
    """Nothing of the process (its hash seed, its start time) enters the assignment: replicas and restarts agree."""
    path = write(tmp_path, NINETY_TEN, "experiments.json")
    script = (
        "import sys; from pathlib import Path; from recipe_ml.experiments import load_experiment; "
        "e = load_experiment(Path(sys.argv[1])); print(','.join(e.assign(u).name for u in range(500)))"
    )

    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=REPO_ROOT,
        ).stdout.strip()
        for seed in ("1", "2")
    ]

    expected = ",".join(load_experiment(path).assign(user_id).name for user_id in range(500))
    assert runs == [expected, expected]


def test_an_answer_without_a_user_is_the_controls() -> None:
    experiment = Experiment.model_validate(NINETY_TEN)

    assert experiment.assign(None).name == "shipped"


def test_without_a_file_every_user_is_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.experiment() is NO_EXPERIMENT
    assert {NO_EXPERIMENT.assign(user_id).name for user_id in range(100)} == {DEFAULT_VARIANT}
    assert NO_EXPERIMENT.variants[0].overrides.model_dump(exclude_none=True) == {}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"variants": [{"name": "a", "weight": 0}]}, "variants.0.weight: Input should be greater than 0"),
        ({"variants": [{"name": "a", "weight": -1}]}, "variants.0.weight: Input should be greater than 0"),
        (
            {"variants": [{"name": "a", "weight": 1, "overrides": {"temperature": 2}}]},
            "variants.0.overrides.temperature: Extra inputs are not permitted",
        ),
        (
            {"variants": [{"name": "a", "weight": 1, "overrides": {"first_model": "gpt"}}]},
            "variants.0.overrides.first_model: Input should be 'two_tower', 'als' or 'popularity'",
        ),
        (
            {"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]},
            "duplicate variant name 'a'",
        ),
        ({"variants": []}, "variants: List should have at least 1 item"),
        ({"salt": None}, "salt: Input should be a valid string"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_problem(tmp_path: Path, change: dict[str, object], named: str) -> None:
    path = write(tmp_path, {**NINETY_TEN, **change}, "bad.json")

    with pytest.raises(ExperimentError, match="EXPERIMENTS=") as refused:
        load_experiment(path)

    assert named in str(refused.value)
    assert str(path) in str(refused.value)


def test_a_file_that_does_not_parse_or_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_experiment(write(tmp_path, "name: [unclosed"))
    with pytest.raises(ExperimentError, match="cannot read it"):
        load_experiment(tmp_path / "missing.yaml")


def test_the_setting_refuses_a_malformed_file_naming_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, {**NINETY_TEN, "variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]})

    with pytest.raises(ValueError, match="duplicate variant name 'a'") as refused:
        Settings(_env_file=None, experiments=path)  # type: ignore[call-arg]

    assert "EXPERIMENTS" in str(refused.value)
