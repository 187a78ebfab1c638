"""recipe_ml.evaluation.rendering: what the report says, from given numbers."""

from __future__ import annotations

import numpy as np

from recipe_ml.evaluation.protocol import METRICS, Evaluation
from recipe_ml.evaluation.rendering import recommendation
from recipe_ml.evaluation.results import SHIPPED, ModelResult


def result(kind: str, ndcg20: float, coverage: float, personalisation: float, heavy_ndcg20: float) -> ModelResult:
    metrics = {m: 0.0 for m in METRICS} | {
        "ndcg@20": ndcg20,
        "coverage@10": coverage,
        "personalisation@10": personalisation,
    }
    quartiles = [dict(metrics) for _ in range(3)] + [{**metrics, "ndcg@20": heavy_ndcg20}]
    evaluation = Evaluation(metrics, quartiles, np.zeros(0), np.zeros((0, 20), dtype=np.int64))
    return ModelResult(kind, evaluation, 1.0, {})


def test_recommendation_follows_the_targets() -> None:
    baseline = result("popularity", 0.020, 0.002, 0.03, 0.020)
    met = recommendation([baseline, result(SHIPPED, 0.0201, 0.2, 0.6, 0.022)])
    assert met.count(": met") == 4 and f"Serve **{SHIPPED}** first" in met
    assert "heavy-user quartile nDCG@20 vs popularity: 1.100x (target >= 1.05x): met" in met
    not_personal = recommendation([baseline, result(SHIPPED, 0.0201, 0.2, 0.4, 0.020)])
    assert "personalisation@10: 0.400 (target >= 0.5): **not met**" in not_personal
    assert "Serve **two_tower+ease** first" not in not_personal and "misses a target above" in not_personal
    heavy_only = recommendation([baseline, result(SHIPPED, 0.0201, 0.2, 0.6, 0.0205)])
    assert f"Serve **{SHIPPED}** first" in heavy_only and heavy_only.count("**not met**") == 1
