"""``freeze_after_load``: what is alive is frozen, the thresholds are the server's; ``after_swap`` trims."""

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


@pytest.mark.integration
def test_after_swap_hands_a_freed_models_memory_back() -> None:
    """A process of its own: mid-sized arrays (what a model holds) freed, then ``after_swap``.

    Freeing one larger array first raises glibc's mmap threshold, as a
    process that has freed arrays before has it: the next arrays then come
    from the heap, which glibc keeps after they are freed (all of it, here)
    unless trimmed.
    """
    code = (
        "import numpy as np, psutil\n"
        "from edge.heap import after_swap, freeze_after_load\n"
        "freeze_after_load()\n"
        "rss = lambda: psutil.Process().memory_info().rss\n"
        "earlier = np.ones(40_000); del earlier\n"
        "before = rss()\n"
        "arrays = [np.ones(20_000) for _ in range(1_000)]\n"
        "keep = np.ones(10)\n"
        "grown = rss() - before\n"
        "del arrays\n"
        "assert after_swap()\n"
        "assert rss() - before < grown / 4, (before, grown, rss())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO_ROOT))
