"""``recipe-ml experiment report``: per variant, answers, users, cook rate and click-through, and the test.

    recipe-ml experiment report                         # the log the settings name
    recipe-ml experiment report --log impressions.jsonl # that JSONL file (and its rotated files)
    recipe-ml experiment report --endpoint similar      # the answers of another endpoint

The log is the one the service writes: with ``KAFKA_BOOTSTRAP_SERVERS``, the
topics ``KAFKA_RECOMMENDATIONS_TOPIC`` and ``KAFKA_ATTRIBUTIONS_TOPIC``, read
from the start until no record has come for ``--idle-seconds``; else the JSONL
file ``IMPRESSION_LOG_PATH`` with its rotated files. The variants are ordered
as ``EXPERIMENTS`` declares them, the first (the control) the reference. The
figures are ``recipe_ml.evaluation.online``; the chart is written to
``experiment.png`` and the figures to ``experiment.json`` in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from recipe_ml.config import REPORTS_DIR, Settings, SettingsError, get_settings
from recipe_ml.data import DataError
from recipe_ml.evaluation.charts import render_experiment
from recipe_ml.evaluation.online import ExperimentReport, render_text, summarize
from recipe_ml.serving.impressions import JSONL_BACKUPS

KAFKA_READ_TIMEOUT_MS = 1000


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="recipe-ml experiment", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    report_parser = sub.add_parser("report", help="the experiment's figures from the impression log")
    report_parser.add_argument("--log", type=Path, help="a JSONL impression log (default: the settings' log)")
    report_parser.add_argument("--endpoint", default="recipes", help="whose answers: recipes, batch, similar …")
    report_parser.add_argument("--out-dir", type=Path, default=REPORTS_DIR)
    report_parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="Kafka: stop after this long without a record"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    order = [variant.name for variant in settings.experiment().variants]
    result = report(_records(settings, args.log, args.idle_seconds), order, args.endpoint, args.out_dir)
    return 0 if result.variants else 1


def report(records: Iterable[dict[str, Any]], order: Sequence[str], endpoint: str, out_dir: Path) -> ExperimentReport:
    """Print the figures, and write them with the chart to ``out_dir`` (unless there is nothing to show)."""
    result = summarize(records, endpoint=endpoint, order=order)
    sys.stdout.write(render_text(result))
    if result.variants:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "experiment.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")
        render_experiment(result, out_dir / "experiment.png")
        print(f"wrote {out_dir / 'experiment.json'} and {out_dir / 'experiment.png'}")
    return result


def _records(settings: Settings, log: Path | None, idle_seconds: float) -> Iterator[dict[str, Any]]:
    if log is not None:
        return read_jsonl(log)
    if settings.kafka_bootstrap_servers:
        return read_topics(settings, idle_seconds)
    if settings.impression_log_path is not None:
        return read_jsonl(settings.impression_log_path)
    raise SettingsError(
        "no impression log to read: set KAFKA_BOOTSTRAP_SERVERS or IMPRESSION_LOG_PATH (as the service ran), "
        "or pass --log"
    )


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of ``path`` and its rotated files, oldest first; a line cut short (a crash) is skipped."""
    files = [path.with_name(f"{path.name}.{n}") for n in range(JSONL_BACKUPS, 0, -1)] + [path]
    present = [file for file in files if file.exists()]
    if not present:
        raise DataError(path, "no impression log here (IMPRESSION_LOG_PATH, or --log)")
    for file in present:
        with file.open("rb") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    print(f"{file}:{number}: not a JSON record, skipped", file=sys.stderr)
                    continue
                if isinstance(record, dict):
                    yield record


def read_topics(settings: Settings, idle_seconds: float) -> Iterator[dict[str, Any]]:
    """Every record of the two topics, from the start, until none has come for ``idle_seconds``.

    No consumer group (nothing is committed: the report can be run again); the partitions are assigned
    directly and read from the beginning.
    """
    from kafka import KafkaConsumer, TopicPartition

    from recipe_ml.events.consumer import kafka_security_config

    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        **kafka_security_config(settings),
    )
    try:
        topics = (settings.kafka_recommendations_topic, settings.kafka_attributions_topic)
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            raise SettingsError(f"neither topic exists on KAFKA_BOOTSTRAP_SERVERS: {', '.join(topics)}")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        idle_polls = max(1, round(idle_seconds * 1000 / KAFKA_READ_TIMEOUT_MS))
        quiet = 0
        while quiet < idle_polls:
            batches = consumer.poll(timeout_ms=KAFKA_READ_TIMEOUT_MS)
            quiet = 0 if batches else quiet + 1
            for messages in batches.values():
                for message in messages:
                    try:
                        record = json.loads(message.value)
                    except (json.JSONDecodeError, TypeError):
                        continue
                    if isinstance(record, dict):
                        yield record
    finally:
        consumer.close(autocommit=False)
