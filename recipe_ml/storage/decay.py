"""Forward decay of trending popularity (Cormode et al., ICDE 2009).

An interaction at time ``t`` adds ``2**((t - L) / h)`` to its recipe's counter,
where ``L`` is a landmark time and ``h`` the half-life. Read at ``now``, a
counter divided by ``2**((now - L) / h)`` is ``Σ 2**(-(now - t_i) / h)``: every
interaction's weight halves every ``h`` although old counters are never
rewritten, so one write per event suffices (a Redis ``ZINCRBY``).

Overflow horizon: a double overflows past ``2**1024``, i.e. 1024 half-lives
after the landmark (2.8 years at ``h`` = 24 h). Long before that, when an event
lands more than ``RESCALE_AFTER_HALF_LIVES`` past ``L``, every counter is
multiplied by ``2**(-(t - L) / h)`` and ``L`` moves to ``t``: the same values
in smaller numbers. Addends stay below ``2**64``; what precision this loses
concerns weights under ``2**-52`` of the newest, which rank nothing anyway.
"""

from __future__ import annotations

from datetime import datetime

RESCALE_AFTER_HALF_LIVES = 64.0


def event_seconds(timestamp: datetime | None, now: float) -> float:
    """Epoch seconds of an event; no timestamp means now, and the future is clamped to now.

    Clamping keeps a producer's clock skew (or a bogus year 3000) from
    outweighing every real interaction.
    """
    if timestamp is None:
        return now
    return min(timestamp.timestamp(), now)


def decayed(score: float, landmark: float, now: float, half_life_seconds: float) -> float:
    """A forward-decay counter ``score`` as the interaction weight at ``now``."""
    return float(score * 2.0 ** (-(now - landmark) / half_life_seconds))
