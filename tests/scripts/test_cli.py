"""``recipe-ml``: one entry point that dispatches to each command's own ``main``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recipe_ml.config import get_settings
from scripts.cli import COMMANDS, main


def test_no_command_prints_the_commands_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_an_unknown_command_is_a_usage_error_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fit'" in capsys.readouterr().err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_reaches_its_own_parser(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


def test_a_consumer_with_the_example_secrets_stops_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a compose consumer started from an unedited copy of deploy/secrets.env.example does."""
    monkeypatch.setenv("REDIS_URL", "redis://:change-me-redis-password@127.0.0.1:6379/0")
    get_settings.cache_clear()
    try:
        assert main(["consume"]) == 2
    finally:
        get_settings.cache_clear()

    err = capsys.readouterr().err
    assert err.startswith("error: invalid settings:") and "REDIS_URL: still the change-me-... placeholder" in err
    assert "change-me-redis-password" not in err


@pytest.mark.integration
def test_the_installed_console_script_runs() -> None:
    """`make install` installs the project, so `recipe-ml` sits next to the interpreter."""
    script = Path(sys.executable).parent / "recipe-ml"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "recipe-ml" in result.stdout
