"""``recipe-ml``: one entry point that dispatches to each command's own ``main``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.integration
def test_the_installed_console_script_runs() -> None:
    """`make install` installs the project, so `recipe-ml` sits next to the interpreter."""
    script = Path(sys.executable).parent / "recipe-ml"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "recipe-ml" in result.stdout
