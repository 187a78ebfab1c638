"""Garbage collection tuned for a long-running server, as long-running Python servers do it.

A server process builds a large heap once (imported modules, the loaded
model, the web framework) and then allocates short-lived objects per request.
CPython's default collector keeps re-scanning the large, permanent part: a
full collection walks every container object, and those pauses land on
whichever requests are in flight (the latency tail). ``gc.freeze()`` after
start-up moves everything alive into a permanent generation no collection
visits again, and a larger young-generation threshold lets per-request
garbage die by reference counting between collections instead of being
promoted and re-scanned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable

THRESHOLDS = (50_000, 50, 1000)
"""(young, middle, old) collection thresholds after the freeze.

Young: tens of thousands of allocations between young collections, several
requests' worth, so objects a request still holds are rarely promoted.
Middle and old: rare, because what survives long is now frozen; a cycle of
garbage still gets collected, only less often.
"""


def freeze_after_load() -> None:
    """Collect once, freeze what is alive (modules, models), then apply ``THRESHOLDS``.

    Call it at the end of a service's start-up, after the models are loaded:
    whatever is allocated later is still collected normally.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def after_swap() -> bool:
    """Call once a newly loaded model replaced the old one: freeze the new one, hand the old one's memory back.

    Why the trim: the arrays of a model are freed when the last request
    holding them ends, but glibc keeps much of what it freed in its heap for
    later allocations rather than returning it, so without this each swap
    left a process tens of MB larger (``make bench-swap``). ``malloc_trim(0)``
    returns the free pages to the system; it costs a few milliseconds, once
    per swap. True when the trim ran (glibc).
    """
    freeze_after_load()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
