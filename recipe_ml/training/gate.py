"""The promotion gate: a retrained candidate replaces the serving version only if it is not worse.

Each kind's candidate is measured with the project's one protocol
(``recipe_ml.evaluation.protocol.evaluate``) on the shipped held-out split,
the data every version's figures were measured on (``held_out_fingerprint``
in its metadata says so). It passes when its nDCG@20 is no more than
``GATE_NDCG_TOLERANCE`` (relative) below the serving version's, and, for a
model with a personal scorer (the one users see first), when coverage@10 and
personalisation@10 stay at or above ``GATE_MIN_COVERAGE`` and
``GATE_MIN_PERSONALISATION``. Training is deterministic for a seed, so the
stored figures of the serving version are what measuring it again would
give. The decision is all or nothing: one refused kind refuses the run, so
the chain always serves models fitted on the same data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recipe_ml.config import Settings

NDCG = "ndcg@20"
COVERAGE = "coverage@10"
PERSONALISATION = "personalisation@10"


@dataclass(frozen=True)
class GatePolicy:
    """The gate's thresholds (``GATE_*`` settings)."""

    ndcg_tolerance: float
    """How far (a share of the serving version's nDCG@20) a candidate may fall below it."""
    min_coverage: float
    min_personalisation: float

    @classmethod
    def from_settings(cls, settings: Settings) -> GatePolicy:
        return cls(settings.gate_ndcg_tolerance, settings.gate_min_coverage, settings.gate_min_personalisation)


@dataclass(frozen=True)
class Candidate:
    """A freshly trained model as the gate sees it: its held-out figures."""

    kind: str
    figures: Mapping[str, float]
    personal: bool
    """True for a model with a personal scorer: the coverage and personalisation floors apply."""


@dataclass(frozen=True)
class Serving:
    """The version now serving a kind, as its store metadata describes it."""

    tag: str
    figures: Mapping[str, float]
    held_out_fingerprint: str
    """Empty when the version has no figures (trained before the gate existed)."""


@dataclass(frozen=True)
class Verdict:
    kind: str
    passed: bool
    reasons: tuple[str, ...]

    def line(self) -> str:
        return f"{self.kind}: {'passed' if self.passed else 'REFUSED'}: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one run: a verdict per kind."""

    verdicts: tuple[Verdict, ...]

    @property
    def promote(self) -> bool:
        return all(v.passed for v in self.verdicts)

    def summary(self) -> str:
        head = "gate: promote" if self.promote else "gate: REFUSED, nothing changes"
        return "\n".join([head, *(f"  {v.line()}" for v in self.verdicts)])

    def verdict(self, kind: str) -> Verdict:
        return next(v for v in self.verdicts if v.kind == kind)


def judge(candidate: Candidate, serving: Serving | None, held_out_fingerprint: str, policy: GatePolicy) -> Verdict:
    """One kind's verdict: nDCG@20 against the serving version, then the floors."""
    figures = candidate.figures
    reasons: list[str] = []
    passed = True
    ndcg = figures[NDCG]
    if serving is None:
        reasons.append(f"{NDCG} {ndcg:.4f}; no version serving yet, nothing to compare with")
    elif serving.held_out_fingerprint != held_out_fingerprint or NDCG not in serving.figures:
        reasons.append(
            f"{NDCG} {ndcg:.4f}; the serving {serving.tag} has no figures on this held-out data, not compared"
        )
    else:
        before = serving.figures[NDCG]
        change = (ndcg - before) / before if before > 0 else 0.0
        within = ndcg >= before * (1.0 - policy.ndcg_tolerance)
        passed &= within
        reasons.append(
            f"{NDCG} {ndcg:.4f} vs {before:.4f} of the serving {serving.tag} ({change:+.1%}, "
            f"{'within' if within else 'beyond'} the tolerance of -{policy.ndcg_tolerance:.1%})"
        )
    if candidate.personal:
        for name, floor in ((COVERAGE, policy.min_coverage), (PERSONALISATION, policy.min_personalisation)):
            value = figures[name]
            above = value >= floor
            passed &= above
            reasons.append(f"{name} {value:.4f} {'>=' if above else 'below'} the floor {floor:g}")
    return Verdict(candidate.kind, passed, tuple(reasons))


def decide(
    candidates: Sequence[Candidate],
    held_out_fingerprint: str,
    serving: Mapping[str, Serving | None],
    policy: GatePolicy,
) -> Decision:
    """The verdict of every candidate against the version serving its kind (``serving``; None: none yet)."""
    return Decision(tuple(judge(c, serving.get(c.kind), held_out_fingerprint, policy) for c in candidates))
