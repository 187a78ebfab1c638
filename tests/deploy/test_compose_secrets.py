"""``deploy/compose_secrets.py``: random values in place of the example's placeholders, written once."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from dotenv import dotenv_values

from deploy.compose_secrets import EXAMPLE, fill, main, write_secrets
from recipe_ml.config import EXAMPLE_SECRET_PREFIX, Settings


def test_each_placeholder_gets_one_value_wherever_it_appears() -> None:
    counter = itertools.count()

    filled = fill(
        "A=change-me-a\nURL=redis://:change-me-a@redis:6379/0\n#B=change-me-b\nC=plain\n", lambda: f"s{next(counter)}"
    )

    assert filled.endswith("A=s0\nURL=redis://:s0@redis:6379/0\n#B=s1\nC=plain\n")
    assert filled.startswith("# Written by `make compose-secrets`")


def test_the_example_becomes_secrets_the_services_accept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "secrets.env"

    names = write_secrets(EXAMPLE, target)

    example, written = dotenv_values(EXAMPLE), dotenv_values(target)
    assert names is not None and set(written) == set(example) <= set(names)
    assert "KAFKA_SASL_PASSWORD" in names, "a commented variable gets a value too, ready to uncomment"
    assert all(not str(value).startswith(EXAMPLE_SECRET_PREFIX) and len(str(value)) >= 16 for value in written.values())
    assert written["REDIS_URL"] == f"redis://:{written['REDIS_PASSWORD']}@redis:6379/0"
    assert target.stat().st_mode & 0o777 == 0o600
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=target)  # type: ignore[call-arg]
    assert settings.api_key_list() == [written["API_KEYS"]]


def test_two_runs_give_different_secrets(tmp_path: Path) -> None:
    write_secrets(EXAMPLE, tmp_path / "one.env")
    write_secrets(EXAMPLE, tmp_path / "two.env")

    assert dotenv_values(tmp_path / "one.env")["API_KEYS"] != dotenv_values(tmp_path / "two.env")["API_KEYS"]


def test_an_existing_secrets_file_is_left_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "secrets.env"
    target.write_text("API_KEYS=mine-0123456789abcdef\n")

    assert main(["--target", str(target)]) == 0

    assert target.read_text() == "API_KEYS=mine-0123456789abcdef\n"
    assert capsys.readouterr().out == f"{target} exists: left as it is\n"


def test_main_names_the_variables_it_wrote_never_their_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "secrets.env"

    assert main(["--target", str(target)]) == 0

    out = capsys.readouterr().out
    assert out.startswith(f"wrote {target} (mode 600) with random values for REDIS_PASSWORD, REDIS_URL, API_KEYS")
    assert not any(str(value) in out for value in dotenv_values(target).values())
