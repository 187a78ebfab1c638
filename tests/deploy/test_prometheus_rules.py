"""The shipped Prometheus configuration, alerting rules and dashboard, checked without a running service.

``promtool`` (Debian's ``prometheus`` package) checks the configuration and
the rules and runs the rules' unit tests (``deploy/prometheus/tests/``); the
metric names of every expression are checked against the code. Each check
is also run on a broken file, to show that it fails naming the file and line.
The same expressions against the live service: ``test_prometheus_live.py``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from recipe_ml.config import REPO_ROOT
from tests.fixtures.prometheus import (
    ALERT_RULES,
    DASHBOARDS,
    PROMETHEUS_CONFIG,
    PROMETHEUS_INSTALL,
    RULE_TESTS,
    alert_names,
    expressions,
)
from tests.fixtures.tools import require_tool

pytestmark = pytest.mark.integration  # every test here runs kubectl, checkov or promtool

SEVERITIES = {"critical", "warning"}
DECLARED_METRIC = re.compile(r"[\"'](recipe_[a-z_]+)[\"']")
METRIC = re.compile(r"(?<![\w:\"'-])recipe_[a-z_]+")
SUFFIX = re.compile(r"_(bucket|total|sum|count)$")


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool", PROMETHEUS_INSTALL)


def run_promtool(promtool: str, *args: str | Path) -> str:
    """promtool's output; fails the test with it when promtool does (it names the file and line)."""
    result = subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"promtool {' '.join(map(str, args))} failed:\n{output}")
    return output


def exported_metrics() -> set[str]:
    """Names of the metrics the code declares (``recipe_ml/``), without the ``_total`` of counters."""
    source = "\n".join(path.read_text() for path in (REPO_ROOT / "recipe_ml").rglob("*.py"))
    return {name.removesuffix("_total") for name in DECLARED_METRIC.findall(source)}


def unexported_metrics(path: Path) -> list[str]:
    """``file:line: ...`` for each metric an expression of ``path`` names and no code exports."""
    declared = exported_metrics()
    return [
        f"{expression.where(metric)}: {metric} is not exported by any code in recipe_ml/"
        for expression in expressions(path)
        for metric in dict.fromkeys(METRIC.findall(expression.text))
        if SUFFIX.sub("", metric) not in declared
    ]


def shipped_expression_files() -> list[Path]:
    return [ALERT_RULES, *sorted(DASHBOARDS.glob("*.json"))]


# promtool ------------------------------------------------------------------------


def test_the_configuration_and_its_rules_pass_promtool_check(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG)
    assert "1 rule files found" in output, output  # the config loads the shipped rules
    assert f"{len(alert_names())} rules found" in run_promtool(promtool, "check", "rules", ALERT_RULES)


def test_every_alert_fires_and_keeps_quiet_in_its_unit_tests(promtool: str) -> None:
    files = sorted(RULE_TESTS.glob("*.yml"))
    assert files, f"no promtool unit tests in {RULE_TESTS}"
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", *files)

    fires: set[str] = set()
    quiet: set[str] = set()
    for path in files:
        suite = yaml.safe_load(path.read_text())
        assert [str((path.parent / f).resolve()) for f in suite["rule_files"]] == [str(ALERT_RULES)], path
        for case in suite["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(alert_names())
    assert alerts - fires == set(), "alerts no unit test makes fire"
    assert alerts - quiet == set(), "alerts no unit test shows quiet"


def test_a_rule_with_a_syntax_error_fails_naming_the_file_and_line(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "groups:\n"
        "  - name: broken\n"
        "    rules:\n"
        "      - alert: Broken\n"
        "        expr: sum(rate(recipe_api_requests_total[5m]) > 0\n"
    )
    with pytest.raises(pytest.fail.Exception) as failure:
        run_promtool(promtool, "check", "rules", broken)
    assert f"{broken}: 5:" in str(failure.value), str(failure.value)


# Metric names -----------------------------------------------------------------------


def test_every_alert_has_a_summary_a_description_and_a_severity() -> None:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for rule in (rule for group in rules["groups"] for rule in group["rules"]):
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert "Likely cause" in rule["annotations"]["description"], rule["alert"]
        assert "First action" in rule["annotations"]["description"], rule["alert"]


def test_rules_and_dashboards_name_only_metrics_the_code_exports() -> None:
    """A renamed metric must not leave a silently empty panel or a silent alert behind."""
    files = shipped_expression_files()
    assert all(expressions(path) for path in files), "a file without expressions"
    problems = [problem for path in files for problem in unexported_metrics(path)]
    assert problems == [], "\n".join(problems)


def test_an_unexported_metric_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n"
        "  - name: g\n"
        "    rules:\n"
        "      - alert: Typo\n"
        "        expr: |\n"
        "          sum(rate(recipe_api_requests_total[5m]))\n"
        "          / sum(rate(recipe_api_request_totl[5m])) > 0\n"
    )
    dashboard = tmp_path / "dashboard.json"
    dashboard.write_text('{"panels": [\n  {"targets": [\n    {"expr": "rate(recipe_consumer_gone_total[1m])"}]}]}')
    assert unexported_metrics(rules) == [
        f"{rules}:7: recipe_api_request_totl is not exported by any code in recipe_ml/"
    ]
    assert unexported_metrics(dashboard) == [
        f"{dashboard}:3: recipe_consumer_gone_total is not exported by any code in recipe_ml/"
    ]
