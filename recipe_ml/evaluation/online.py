"""The online experiment's figures: per variant, how many answers led to a cook, or to any interaction.

The unit is the answer (one ``recommendationId``): an answer *converts* when
at least one cook was attributed to it, and is *clicked* when any attributed
interaction was. Rates are proportions of answers, with Wilson score 95%
intervals (sound at the small rates and counts of an experiment's first
days, where the normal approximation is not), and each variant is compared
with the reference variant by a two-proportion z-test on the pooled rate.
Answers of one user are not independent; with many users and a few answers
each, the test is the usual practical approximation, and the report shows the
users beside the answers so that a reader can judge it.

The records are the impression log's (``recipe_ml.serving.impressions``):
``kind`` ``"impression"`` and ``"attribution"``, camelCase keys.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Z_95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials``; (0, 1) with no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    denominator = 1 + z * z / trials
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def two_proportion_test(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> tuple[float, float]:
    """(z, two-sided p) of the difference ``b - a`` under the pooled null; (0, 1) when it is undefined."""
    if trials_a == 0 or trials_b == 0:
        return 0.0, 1.0
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    error = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if error == 0:
        return 0.0, 1.0
    z = (successes_b / trials_b - successes_a / trials_a) / error
    return z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Rate:
    """A proportion of answers with its 95% interval, and its test against the reference variant."""

    successes: int
    trials: int
    low: float
    high: float
    difference: float
    """This rate minus the reference variant's (0 for the reference itself)."""
    p_value: float

    @property
    def value(self) -> float:
        return self.successes / self.trials if self.trials else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "successes": self.successes,
            "trials": self.trials,
            "rate": self.value,
            "low": self.low,
            "high": self.high,
            "difference": self.difference,
            "p_value": self.p_value,
        }


@dataclass(frozen=True)
class VariantResult:
    """One arm of the experiment, on one endpoint."""

    variant: str
    impressions: int
    """Answers shown (impression records)."""
    users: int
    """Distinct users among them."""
    cook_rate: Rate
    click_through: Rate
    models: Mapping[str, int]
    """Answers by the model that answered (a fallback shows here)."""
    mean_cook_rank: float | None
    """Mean rank of the cooked recipes in their answers; None without a cook."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "impressions": self.impressions,
            "users": self.users,
            "cook_rate": self.cook_rate.as_dict(),
            "click_through": self.click_through.as_dict(),
            "models": dict(self.models),
            "mean_cook_rank": self.mean_cook_rank,
        }


@dataclass(frozen=True)
class ExperimentReport:
    """Every variant's result on ``endpoint``, the reference first."""

    endpoint: str
    reference: str
    variants: Sequence[VariantResult]
    unmatched_attributions: int
    """Attributions whose answer is not among the impressions read (rotated out, or another endpoint's)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "reference": self.reference,
            "variants": [v.as_dict() for v in self.variants],
            "unmatched_attributions": self.unmatched_attributions,
        }


@dataclass
class _Arm:
    answers: set[str] = field(default_factory=set)
    users: set[int] = field(default_factory=set)
    models: Counter[str] = field(default_factory=Counter)
    cooked: set[str] = field(default_factory=set)
    clicked: set[str] = field(default_factory=set)
    cook_ranks: list[int] = field(default_factory=list)


def summarize(
    records: Iterable[Mapping[str, Any]], endpoint: str = "recipes", order: Sequence[str] = ()
) -> ExperimentReport:
    """Join impressions and attributions by recommendation id, per variant of ``endpoint``.

    ``order``: the variants in their declared order (the first present is the reference); variants not in it
    follow by name. Attributions are read after the impressions they name, whatever the order of ``records``.
    """
    arms: dict[str, _Arm] = {}
    variant_of: dict[str, str] = {}
    attributions: list[Mapping[str, Any]] = []
    for record in records:
        if record.get("kind") == "attribution":
            attributions.append(record)
        elif record.get("kind", "impression") == "impression" and record.get("endpoint") == endpoint:
            recommendation_id = str(record["recommendationId"])
            arm = arms.setdefault(str(record["variant"]), _Arm())
            if recommendation_id in arm.answers:
                continue  # the same record read twice (a file and its Kafka copy, a re-read)
            arm.answers.add(recommendation_id)
            if record.get("userId") is not None:
                arm.users.add(int(record["userId"]))
            arm.models[str(record["model"])] += 1
            variant_of[recommendation_id] = str(record["variant"])
    unmatched = 0
    seen: set[tuple[str, Any, Any]] = set()
    for record in attributions:
        recommendation_id = str(record["recommendationId"])
        variant = variant_of.get(recommendation_id)
        if variant is None:
            unmatched += record.get("endpoint") == endpoint
            continue
        key = (recommendation_id, record.get("recipeId"), record.get("interactionType"))
        if key in seen:
            continue
        seen.add(key)
        arm = arms[variant]
        arm.clicked.add(recommendation_id)
        if record.get("interactionType") == "cook":
            arm.cooked.add(recommendation_id)
            arm.cook_ranks.append(int(record["rank"]))
    names = [name for name in order if name in arms] + sorted(set(arms) - set(order))
    if not names:
        return ExperimentReport(endpoint, "", [], unmatched)
    reference = arms[names[0]]
    results = [_result(name, arms[name], reference) for name in names]
    return ExperimentReport(endpoint, names[0], results, unmatched)


def _result(name: str, arm: _Arm, reference: _Arm) -> VariantResult:
    def rate(successes: set[str], reference_successes: set[str]) -> Rate:
        n, k = len(arm.answers), len(successes)
        n_ref, k_ref = len(reference.answers), len(reference_successes)
        low, high = wilson_interval(k, n)
        _, p_value = two_proportion_test(k_ref, n_ref, k, n)
        difference = (k / n if n else 0.0) - (k_ref / n_ref if n_ref else 0.0)
        return Rate(k, n, low, high, difference, p_value)

    return VariantResult(
        variant=name,
        impressions=len(arm.answers),
        users=len(arm.users),
        cook_rate=rate(arm.cooked, reference.cooked),
        click_through=rate(arm.clicked, reference.clicked),
        models=dict(arm.models.most_common()),
        mean_cook_rank=sum(arm.cook_ranks) / len(arm.cook_ranks) if arm.cook_ranks else None,
    )


def render_text(report: ExperimentReport) -> str:
    """The printed report: one line per variant, then how to read it."""
    if not report.variants:
        return f"no impressions of endpoint {report.endpoint!r} in the log\n"
    lines = [
        f"experiment report, endpoint {report.endpoint!r}; reference variant {report.reference!r}",
        f"{'variant':<16} {'answers':>8} {'users':>7}  {'cook rate [95% CI]':<26} {'vs ref (p)':<18} "
        f"{'click-through [95% CI]':<26} {'vs ref (p)':<18} models",
    ]
    for v in report.variants:
        ref = v.variant == report.reference
        models = ", ".join(f"{model} {count / v.impressions:.0%}" for model, count in v.models.items())
        lines.append(
            f"{v.variant:<16} {v.impressions:>8} {v.users:>7}  "
            f"{_rate(v.cook_rate):<26} {_versus(v.cook_rate, ref):<18} "
            f"{_rate(v.click_through):<26} {_versus(v.click_through, ref):<18} {models}"
        )
    if report.unmatched_attributions:
        lines.append(f"{report.unmatched_attributions} attributed interactions name answers not in the log read")
    lines.append(
        "an answer converts when a cook was attributed to it; intervals are Wilson 95%, "
        "p is the two-proportion z-test against the reference"
    )
    return "\n".join(lines) + "\n"


def _rate(rate: Rate) -> str:
    return f"{rate.value:.2%} [{rate.low:.2%}, {rate.high:.2%}]"


def _versus(rate: Rate, reference: bool) -> str:
    if reference:
        return "reference"
    return f"{rate.difference * 100:+.2f} pp ({rate.p_value:.3f})"
