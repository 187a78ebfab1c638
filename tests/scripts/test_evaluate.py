"""scripts/evaluate.py on a small user slice: the report and chart are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_ml.config import DATA_DIR
from scripts.evaluate import ModelResult, main, recommendation


def result(kind: str, ndcg20: float, coverage: float, served_ndcg20: float | None = None) -> ModelResult:
    metrics = {"ndcg@10": 0.0, "ndcg@20": ndcg20, "recall@10": 0.0, "recall@20": 0.0, "coverage@10": coverage}
    served = None if served_ndcg20 is None else {**metrics, "ndcg@20": served_ndcg20}
    return ModelResult(kind, metrics, 1.0, {}, served)


def test_report_and_chart_are_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sample-users", "300", "--epochs", "1", "--out-dir", str(tmp_path), "--skip-full-timing"]) == 0
    report = (tmp_path / "evaluation.md").read_text()
    for kind in ("popularity", "popularity_5star", "als", "two_tower"):
        assert f"| {kind} | " in report
    served = report.split("### As served (MMR diversity 0.3")[1].split("##")[0]
    assert "| two_tower | " in served and "| popularity | " not in served
    slots = report.split("## Two-Tower personal slots")[1]
    assert all(f"\n| {n} | " in slots for n in (0, 1, 2, 3))
    assert "## Which model first" in report and "Sample of 300 users" in report
    assert "## The ceiling of popularity" in report
    assert "## Full training time" not in report
    assert "| 1 | " in report.split("## Two-Tower per epoch")[1]
    png = (tmp_path / "evaluation.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "two_tower: ndcg@10=" in capsys.readouterr().out


def test_als_grid_and_full_training_time_are_reported(tmp_path: Path) -> None:
    assert main(["--sample-users", "150", "--epochs", "1", "--out-dir", str(tmp_path), "--tune-als"]) == 0
    report = (tmp_path / "evaluation.md").read_text()
    assert "## ALS tuning" in report
    assert report.count("| 50.0 | 4.0 | 15 |") == 1
    assert "All three models on train + validation: **" in report


def test_recommendation_follows_the_targets() -> None:
    met = recommendation(
        [result("popularity", 0.020, 0.002), result("als", 0.01, 0.1), result("two_tower", 0.022, 0.06)]
    )
    assert "**targets met**" in met and "Serve **two_tower** first" in met
    low_coverage = recommendation(
        [result("popularity", 0.020, 0.002), result("als", 0.01, 0.1), result("two_tower", 0.022, 0.01)]
    )
    assert (
        "**targets not met**" in low_coverage and "Serve **two_tower** first: it has the best nDCG@20" in low_coverage
    )
    matches_baseline = recommendation(
        [
            result("popularity", 0.020, 0.002),
            result("popularity_5star", 0.021, 0.002),
            result("als", 0.01, 0.1),
            result("two_tower", 0.0201, 0.06, served_ndcg20=0.0199),
        ]
    )
    assert "As served (MMR diversity 0.3), Two-Tower nDCG@20 is 0.995x popularity's" in matches_baseline
    assert "**targets not met**" in matches_baseline
    assert "Serve **two_tower** first: it matches the popularity baseline" in matches_baseline
    assert "popularity_5star ranks +4.5% better on nDCG@20" in matches_baseline
    pop_best = recommendation(
        [result("popularity", 0.02, 0.002), result("als", 0.01, 0.1), result("two_tower", 0.019, 0.1)]
    )
    assert "Serve **popularity** first" in pop_best


def test_a_missing_data_file_fails_with_its_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.csv").write_bytes((DATA_DIR / "train.csv").read_bytes())
    assert main(["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 2
    assert f"error: {tmp_path / 'validation.csv'}: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
