"""Programs outside Python the harness drives (kubectl, checkov, wrk): where they are."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def find_tool(name: str) -> str | None:
    """``name`` in this virtualenv's bin (what ``make install`` pins there), else on PATH, else None."""
    return shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
