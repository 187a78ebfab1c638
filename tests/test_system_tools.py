"""``require_tool``: a missing system tool skips naming its install command, or fails where tools are required."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.fixtures.tools import require_tool

HINT = "apt-get install -y some-package"


def test_a_tool_on_the_path_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "some-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert require_tool("some-tool", HINT) == str(tool)


def test_a_missing_tool_skips_with_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("REQUIRE_SYSTEM_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"some-tool is not installed: {HINT}"):
        require_tool("some-tool", HINT)


def test_a_missing_tool_fails_when_system_tools_are_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("REQUIRE_SYSTEM_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match=f"some-tool is not installed: {HINT}"):
        require_tool("some-tool", HINT)
