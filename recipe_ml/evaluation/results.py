"""What the offline evaluation measured, and the targets it is held to.

Shared by the computing (``recipe_ml.evaluation.report``) and the rendering
(``recipe_ml.evaluation.rendering``, ``recipe_ml.evaluation.charts``) of the
report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recipe_ml.evaluation.protocol import Evaluation

NDCG_TARGET = 1.00
"""The shipped default's nDCG@20 must reach this multiple of the count baseline's."""
HEAVY_NDCG_TARGET = 1.05
"""On the heaviest quartile of users, where the data allows it."""
COVERAGE_TARGET = 0.15
PERSONALISATION_TARGET = 0.5
BASELINE = "popularity"
"""Row of the issue's baseline: plain interaction-count popularity (the shipped one counts 5-star ratings)."""
SHIPPED = "two_tower+ease"
"""Row of the shipped model: the Two-Tower with the personal scorer and the fitted policy."""
ALS_GRID = {"regularization": (1.0, 10.0, 50.0, 200.0), "alpha": (1.0, 4.0, 16.0), "iterations": (5, 15)}


@dataclass(frozen=True)
class ModelResult:
    """Validation metrics (overall and per quartile) and fit time of one model and policy."""

    kind: str
    evaluation: Evaluation
    seconds: float
    hyper_parameters: dict[str, Any]
    served: dict[str, float] | None = None
    """Metrics with the serving default MMR diversity, where that changes the ranking."""

    @property
    def metrics(self) -> dict[str, float]:
        return self.evaluation.overall


@dataclass
class Sweeps:
    """Metrics per fixed number of personal positions (0..10) for each source of the personal picks."""

    sources: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def targets(results: Sequence[ModelResult]) -> list[tuple[str, float, str, bool]]:
    """The issue's targets for the shipped row: (what, measured, target, met)."""
    by_kind = {r.kind: r for r in results}
    pop, shipped = by_kind[BASELINE], by_kind[SHIPPED]
    gain = shipped.metrics["ndcg@20"] / pop.metrics["ndcg@20"] if pop.metrics["ndcg@20"] > 0 else float("inf")
    heavy_pop = pop.evaluation.quartiles[-1]["ndcg@20"]
    heavy = shipped.evaluation.quartiles[-1]["ndcg@20"] / heavy_pop if heavy_pop > 0 else float("inf")
    return [
        ("nDCG@20 vs popularity", gain, f">= {NDCG_TARGET:.2f}x", gain >= NDCG_TARGET),
        (
            "coverage@10",
            shipped.metrics["coverage@10"],
            f">= {COVERAGE_TARGET:.0%}",
            shipped.metrics["coverage@10"] >= COVERAGE_TARGET,
        ),
        (
            "personalisation@10",
            shipped.metrics["personalisation@10"],
            f">= {PERSONALISATION_TARGET}",
            shipped.metrics["personalisation@10"] >= PERSONALISATION_TARGET,
        ),
        (
            "heavy-user quartile nDCG@20 vs popularity",
            heavy,
            f">= {HEAVY_NDCG_TARGET:.2f}x",
            heavy >= HEAVY_NDCG_TARGET,
        ),
    ]
