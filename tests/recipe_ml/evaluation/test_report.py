"""recipe_ml.evaluation.report on a small user slice: the report, the chart and the frontier are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipe_ml.config import DATA_DIR
from recipe_ml.evaluation.results import SHIPPED
from scripts.cli import main as cli
from scripts.evaluate import main


def test_report_charts_and_frontier_are_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sample-users", "300", "--epochs", "1", "--out-dir", str(tmp_path), "--skip-full-timing"]) == 0
    report = (tmp_path / "evaluation.md").read_text()
    for kind in ("popularity", "popularity_5star", "als", "two_tower", SHIPPED):
        assert f"| {kind} | " in report
    assert "personal.@10" in report and "novelty@10" in report
    quartiles = report.split("## Per user-activity quartile")[1].split("###")[0]
    assert all(f"| {SHIPPED} | Q{q} (" in quartiles for q in (1, 2, 3, 4))
    served = report.split("### As served (MMR diversity 0.3")[1].split("##")[0]
    assert f"| {SHIPPED} | " in served and "| popularity | " not in served
    sources = report.split("## Personal scorers compared")[1].split("## Personal policy")[0]
    for source in ("towers' dot product", "ALS", "EASE, blend weight 500"):
        assert f"| {source} | 0 | " in sources and f"| {source} | 10 | " in sources
    policy = report.split("## Personal policy (fitted on validation)")[1].split("##")[0]
    assert "- Fitted: blend weight **" in policy and "Two-fold check" in policy
    assert "## Targets (shipped default, validation)" in report and "Sample of 300 users" in report
    assert "## Full training time" not in report
    assert "| 1 | " in report.split("## Two-Tower per epoch")[1]
    for name in ("evaluation.png", "frontier.png"):
        png = (tmp_path / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    out = capsys.readouterr().out
    assert f"{SHIPPED}: ndcg@10=" in out and "fitted personal policy:" in out


def test_als_grid_and_full_training_time_are_reported(tmp_path: Path) -> None:
    assert main(["--sample-users", "150", "--epochs", "1", "--out-dir", str(tmp_path), "--tune-als"]) == 0
    report = (tmp_path / "evaluation.md").read_text()
    assert "## ALS tuning" in report
    assert report.count("| 50.0 | 4.0 | 15 |") == 1
    assert "All models on train + validation: **" in report and "personal scorer (ease)" in report


def test_a_missing_data_file_fails_with_its_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "train.csv").write_bytes((DATA_DIR / "train.csv").read_bytes())
    assert cli(["evaluate", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 2
    assert f"error: {tmp_path / 'validation.csv'}: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
