"""``recipe-ml experiment report``: the figures from the JSONL log (rotated files included) or the Kafka topics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recipe_ml.config import get_settings
from scripts.cli import main
from tests.fixtures.kafka import TansuBroker


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings from this test's environment only (no .env, no Kafka unless the test sets it)."""
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "IMPRESSION_LOG_PATH", "EXPERIMENTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def records(variant: str, first: int, count: int, cooked_every: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in range(first, first + count):
        rid = f"{n:032x}"
        out.append(
            {"kind": "impression", "recommendationId": rid, "endpoint": "recipes", "variant": variant}
            | {"model": "two_tower", "userId": n, "recipeIds": [7, 8]}
        )
        if n % cooked_every == 0:
            out.append(
                {"kind": "attribution", "recommendationId": rid, "endpoint": "recipes", "variant": variant}
                | {"model": "two_tower", "userId": n, "recipeId": 8, "interactionType": "cook", "rank": 2}
            )
    return out


def write(path: Path, rows: list[dict[str, Any]], tail: str = "") -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + tail)


def test_the_report_reads_the_log_and_its_rotated_files_and_writes_the_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "impressions.jsonl"
    write(log.with_name("impressions.jsonl.2"), records("control", 0, 100, cooked_every=10))
    write(log.with_name("impressions.jsonl.1"), records("treatment", 100, 100, cooked_every=4))
    write(log, records("control", 200, 100, cooked_every=10), tail='{"kind": "impres')  # a line cut by a crash
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(
        "name: e\nsalt: s\nvariants:\n  - {name: treatment, weight: 1}\n  - {name: control, weight: 1}\n"
    )
    monkeypatch.setenv("IMPRESSION_LOG_PATH", str(log))
    monkeypatch.setenv("EXPERIMENTS", str(experiment))

    assert main(["experiment", "report", "--out-dir", str(tmp_path / "reports")]) == 0

    out, err = capsys.readouterr()
    assert "reference variant 'treatment'" in out, "the first declared variant is the reference"
    control = next(line for line in out.splitlines() if line.startswith("control"))
    assert control.split()[1:3] == ["200", "200"], "answers and users of both control files"
    assert "10.00% [" in control
    assert "impressions.jsonl:111: not a JSON record, skipped" in err
    figures = json.loads((tmp_path / "reports" / "experiment.json").read_text())
    assert [v["cook_rate"]["successes"] for v in figures["variants"]] == [25, 20]
    assert (tmp_path / "reports" / "experiment.png").stat().st_size > 0


def test_without_a_log_the_report_says_what_to_set(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["experiment", "report"]) == 2
    assert "set KAFKA_BOOTSTRAP_SERVERS or IMPRESSION_LOG_PATH" in capsys.readouterr().err
    assert main(["experiment", "report", "--log", str(tmp_path / "absent.jsonl")]) == 2
    assert "absent.jsonl: no impression log here" in capsys.readouterr().err


def test_a_log_without_the_endpoints_answers_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "impressions.jsonl"
    write(log, records("control", 0, 10, cooked_every=2))
    out_dir = tmp_path / "reports"
    assert main(["experiment", "report", "--log", str(log), "--endpoint", "similar", "--out-dir", str(out_dir)]) == 1
    assert "no impressions of endpoint 'similar'" in capsys.readouterr().out
    assert not out_dir.exists()


@pytest.mark.integration
def test_the_report_reads_both_topics_from_the_start(
    kafka_broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kafka_broker.create_topic("recommendations")
    kafka_broker.create_topic("attributions")
    producer = kafka_broker.producer()
    for row in records("control", 0, 40, cooked_every=4) + records("treatment", 40, 40, cooked_every=2):
        producer.send("attributions" if row["kind"] == "attribution" else "recommendations", json.dumps(row).encode())
    producer.send("recommendations", b"not json")
    producer.flush()
    producer.close()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker.bootstrap)

    args = ["experiment", "report", "--idle-seconds", "3", "--out-dir", str(tmp_path)]
    assert main(args) == 0

    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:4]}
    assert lines["control"].split()[1] == "40" and "25.00% [" in lines["control"]
    assert lines["treatment"].split()[1] == "40" and "50.00% [" in lines["treatment"]
