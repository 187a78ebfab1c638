"""``freeze_after_load``: what is alive is frozen, the thresholds are the server's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from recipe_ml.config import REPO_ROOT


@pytest.mark.integration
def test_freeze_after_load_freezes_the_heap_and_sets_the_thresholds() -> None:
    """In a process of its own: freezing the test runner's heap would change every later test's GC."""
    code = (
        "import gc\n"
        "from edge.heap import THRESHOLDS, freeze_after_load\n"
        "assert gc.get_freeze_count() == 0\n"
        "freeze_after_load()\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == THRESHOLDS\n"
        "garbage = []; garbage.append(garbage); del garbage\n"
        "assert gc.collect() >= 1, 'a cycle made after the freeze is still collected'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO_ROOT))
