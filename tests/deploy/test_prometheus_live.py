"""Every dashboard query and every alert, evaluated by a real Prometheus scraping the real service.

Debian's ``prometheus`` scrapes a live ``bentoml serve`` (on a private Redis)
and a ``recipe-ml consume`` process (on a tansu broker), with the shipped
configuration (its jobs pointed at these two) and the shipped rules. The test
makes the service do what the expressions count (traffic on every endpoint,
cache hits, a runner frozen into a fallback, a Redis outage with its 503s and
retried events, a message for the DLQ, interactions naming the answer that
showed their recipe, through the API and the consumer, so that they are
attributed), then asks Prometheus's HTTP API, until a generous deadline, for:

- every dashboard query: at least one number (NaN is no data: a panel shows nothing);
- every alert: each of its signals (what it compares with its threshold, see
  ``deploy/prometheus/alerts.yml``) gives a number, and each series selector in
  it a series;
- every rule evaluated by Prometheus itself without error, and both targets up.

Two series exist only after something this test cannot or should not cause;
``ALLOWED_ABSENT`` says why, and for those the metric's name is checked instead.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kafka import KafkaProducer

from edge.model_store import load_from_store
from harness.redis_server import RedisServer
from harness.server import LocalServer
from recipe_ml.config import REPO_ROOT
from recipe_ml.models.base import Recommender
from tests.fixtures.kafka import TansuBroker, free_port, wait_for_port, wait_until
from tests.fixtures.prometheus import (
    ALERT_RULES,
    DASHBOARDS,
    PROMETHEUS_CONFIG,
    Expression,
    Prometheus,
    PromQLError,
    StartPrometheus,
    alert_names,
    expressions,
    selectors,
    signals,
)
from tests.fixtures.server import StartServer

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 240.0
"""Until every expression has data; the longest wait is the lag's deriv() (two 30 s subquery steps)."""

ALLOWED_ABSENT = {
    'recipe_api_fallbacks_total{reason="overloaded"}': (
        "BentoML sheds requests only under more load than this test can make on a small machine; "
        "the frozen runner gives the metric (reason timeout), the unit tests make RecipeRunnerOverloaded fire"
    ),
    'recipe_consumer_errors_total{stage="lag"}': (
        "needs the broker unreachable, which would take every lag series away from the rest of this test; "
        "tests/recipe_ml/events/test_consumer.py causes it against the real broker"
    ),
}
"""Selectors legitimately without series here (why), and so the signals reading them."""
INTERACTION = {"recipeId": 1, "interactionType": "view"}


def live_config(api: str, consumer: str) -> dict[str, Any]:
    """The shipped configuration, its jobs pointed at the live targets, scraping and evaluating every second."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {"recipe-ml-api": api, "recipe-ml-consumer": consumer}
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == set(targets), f"jobs {sorted(jobs)}: point each one at a live target in this test"
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs")
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / path) for path in config["rule_files"]]
    return config


class Traffic:
    """Requests to every endpoint and events to the topic, until stopped: every rate window needs samples."""

    def __init__(self, base_url: str, users: list[int], recipe: int, producer: KafkaProducer, topic: str) -> None:
        self._base_url = base_url
        self._users = users
        self._recipe = recipe
        self._producer = producer
        self._topic = topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.failures: list[BaseException] = []

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the traffic did not stop"
        assert self.failures == [], self.failures

    def _run(self) -> None:
        round_ = 0
        try:
            with httpx.Client(base_url=self._base_url, timeout=30) as api:
                while not self._stop.wait(0.2):  # a pace, not a wait for a condition
                    user = self._users[round_ % 5]  # a few users: the cache answers most requests
                    answer = api.post("/api/recommendations/recipes", json={"user_id": user, "top_k": 5})
                    api.post("/api/recommendations/batch", json={"user_ids": self._users[:3], "top_k": 5})
                    api.post("/api/recommendations/users", json={"user_id": user, "top_k": 3})
                    api.post("/api/recommendations/similar-recipes", json={"recipe_id": self._recipe, "top_k": 3})
                    api.post("/api/recommendations/cold-start", json={"top_k": 5})
                    event = {**INTERACTION, "userId": user, **self._attributed(answer)}
                    api.post("/api/interactions", json=event)  # 503 while Redis is out: counted, not checked
                    self._producer.send(self._topic, json.dumps({**event, "interactionType": "cook"}).encode())
                    round_ += 1
        except Exception as exc:  # reported by running(): a failed request is a failed test
            self.failures.append(exc)

    def _attributed(self, answer: httpx.Response) -> dict[str, Any]:
        """The answer's first recipe and its id, so the events are attributed to it; no answer: the fixed recipe."""
        body = answer.json() if answer.status_code == 200 else {}
        if not body.get("recommendations"):
            return {"recipeId": self._recipe}
        return {"recipeId": body["recommendations"][0]["recipe_id"], "recommendationId": body["recommendation_id"]}


def metric_text(url: str) -> str:
    return httpx.get(url, timeout=30).text


def dashboard_problems(prometheus: Prometheus, expression: Expression) -> list[str]:
    try:
        result = prometheus.query(expression.text)
    except PromQLError as exc:
        return [f"{expression.where()}: {expression.text!r} refused: {exc}"]
    if not any(_number(sample) for sample in result):
        return [f"{expression.where()}: {expression.text!r} returns no data ({result})"]
    return []


def alert_problems(prometheus: Prometheus, expression: Expression) -> list[str]:
    problems: list[str] = []
    try:
        prometheus.query(expression.text)
    except PromQLError as exc:
        return [f"{expression.where()}: alert expression refused: {exc}"]
    for selector in selectors(expression.text):
        if selector in ALLOWED_ABSENT:
            name = selector.split("{")[0]
            if not prometheus.query(f'count({{__name__="{name}"}})'):
                problems.append(f"{expression.where(selector)}: no series named {name} at all")
        elif not prometheus.query(selector):
            problems.append(f"{expression.where(selector)}: {selector} has no series")
    for signal in signals(expression.text):
        if any(allowed in signal for allowed in ALLOWED_ABSENT):
            continue
        if not any(_number(sample) for sample in prometheus.query(signal)):
            problems.append(
                f"{expression.where(selectors(signal)[0])}: signal {' '.join(signal.split())!r} has no data"
            )
    return problems


def rule_problems(prometheus: Prometheus) -> list[str]:
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    problems = [f"rule {rule['name']}: {rule.get('lastError')}" for rule in rules if rule["health"] != "ok"]
    loaded = sorted(rule["name"] for rule in rules if rule["type"] == "alerting")
    if loaded != sorted(alert_names()):
        problems.append(f"alerts loaded {loaded}, expected {sorted(alert_names())}")
    targets = prometheus.api("targets")["activeTargets"]
    problems += [
        f"target {t['labels']['job']} {t['scrapeUrl']}: {t['health']} {t['lastError']}"
        for t in targets
        if t["health"] != "up"
    ]
    return problems


def _number(sample: dict[str, Any]) -> bool:
    return not math.isnan(float(sample["value"][1]))


def wait_for_no_problems(check: Callable[[], list[str]], timeout: float) -> None:
    """Poll ``check`` until it reports nothing; fail with what it still reports after ``timeout``."""
    deadline = time.monotonic() + timeout
    while problems := check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s:\n" + "\n".join(problems))
        time.sleep(1.0)


@pytest.fixture
def consumer_process(
    kafka_broker: TansuBroker, private_redis: RedisServer, unique_name: Callable[[str], str]
) -> Iterator[tuple[str, str]]:
    """``recipe-ml consume`` on its own topic and group; yields (topic, metrics address)."""
    topic, dlq, attributions = unique_name("interactions"), unique_name("dlq"), unique_name("attributions")
    kafka_broker.create_topic(topic, partitions=2)
    kafka_broker.create_topic(dlq)
    kafka_broker.create_topic(attributions)
    port = free_port()
    env = {key: val for key, val in os.environ.items() if key not in {"REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap,
        KAFKA_TOPIC=topic,
        KAFKA_DLQ_TOPIC=dlq,
        KAFKA_ATTRIBUTIONS_TOPIC=attributions,
        KAFKA_GROUP_ID=unique_name("group"),
        REDIS_URL=private_redis.url(),
        CONSUMER_METRICS_PORT=str(port),
    )
    process = subprocess.Popen([sys.executable, "-m", "scripts.cli", "consume"], cwd=REPO_ROOT, env=env)
    try:
        wait_for_port(port)
        yield topic, f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def cause_every_counted_event(
    api: httpx.Client,
    server: LocalServer,
    redis_server: RedisServer,
    producer: KafkaProducer,
    topic: str,
    consumer: str,
    user: int,
) -> None:
    """What some series need before they exist: a dead letter, a fallback, a Redis outage (503s, retried events)."""
    producer.send(topic, b"{not json")
    runner = server.runner_process("two_tower")
    runner.suspend()  # its calls time out: ALS answers, a fallback is counted
    try:
        fallback = api.post("/api/recommendations/recipes", json={"user_id": user, "top_k": 9}).json()
    finally:
        runner.resume()
    assert fallback["model_used"] == "als"

    redis_server.stop()  # the API answers 503 to interactions, the consumer retries its event
    try:
        wait_until(
            lambda: api.post("/api/interactions", json={**INTERACTION, "userId": user}).status_code == 503,
            60,
            "POST /api/interactions answered 503 while Redis is out",
        )
        wait_until(
            lambda: 'recipe_consumer_errors_total{stage="apply"}' in metric_text(f"http://{consumer}/metrics"),
            60,
            "the consumer counted a failed apply",
        )
    finally:
        redis_server.start()


def test_every_dashboard_query_and_alert_has_data_from_the_live_service(
    start_server: StartServer,
    private_redis: RedisServer,
    kafka_broker: TansuBroker,
    consumer_process: tuple[str, str],
    start_prometheus: StartPrometheus,
    model_store: Path,
) -> None:
    topic, consumer = consumer_process
    server = start_server({"REDIS_URL": private_redis.url()})
    model: Recommender = load_from_store("recipe_popularity", home=model_store)[0]
    users = [int(user) for user in model.users.ids[:8]]
    prometheus = start_prometheus(live_config(server.base_url.removeprefix("http://"), consumer))
    checks: list[Callable[[], list[str]]] = [
        *(lambda e=e: dashboard_problems(prometheus, e) for p in DASHBOARDS.glob("*.json") for e in expressions(p)),
        *(lambda e=e: alert_problems(prometheus, e) for e in expressions(ALERT_RULES)),
        lambda: rule_problems(prometheus),
    ]
    producer = kafka_broker.producer()

    with httpx.Client(base_url=server.base_url, timeout=30) as api:
        answer = api.post("/api/recommendations/recipes", json={"user_id": users[0]}).json()
        traffic = Traffic(server.base_url, users[:5], answer["recommendations"][0]["recipe_id"], producer, topic)
        with traffic.running():
            cause_every_counted_event(api, server, private_redis, producer, topic, consumer, users[7])
            wait_for_no_problems(lambda: [problem for check in checks for problem in check()], DEADLINE_SECONDS)
