"""The model lifecycle against the real server: promote under load, roll back, refuse a version that fails to load.

A server of its own (``bentoml serve``: the API and both runners) on a
private copy of the fixture store, watching it every second
(``MODEL_WATCH_SECONDS=1``) with the cache off, so every answer is scored by
the version serving at that moment.
"""

from __future__ import annotations

import itertools
import random
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.model_store import promote, save_to_store, serving_tag, store_entry
from harness.server import LocalServer, start_local_server
from recipe_ml.models.base import Recommender
from tests.fixtures.kafka import wait_until

pytestmark = pytest.mark.integration

LOAD_THREADS = 8
SWAP_WITHIN = 60.0
"""Generous bound on a swap seen in the answers (the documented delay is MODEL_WATCH_SECONDS plus the load)."""


@dataclass
class Lifecycle:
    server: LocalServer
    home: Path
    users: list[int]

    def health(self) -> dict[str, Any]:
        response = httpx.get(f"{self.server.base_url}/api/health", timeout=15)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def new_version(self, serving: str, kind: str) -> str:
        """A new version holding the model of ``serving``, as a retrain on the same data stores; not served yet.

        ``serving`` is promoted first, so that the new version, though the
        latest, changes nothing until it is promoted itself.
        """
        promote(serving, kind, home=self.home)
        entry = store_entry(serving, home=self.home)
        model = Recommender.load(Path(entry.path))
        new = save_to_store(model, entry.tag.name, dict(entry.info.metadata), home=self.home)
        assert serving_tag(entry.tag.name, home=self.home) == serving
        return new


@pytest.fixture(scope="module")
def lifecycle(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    home = tmp_path_factory.mktemp("lifecycle_home")
    shutil.copytree(model_store / "models", home / "models")
    env = {"MODEL_WATCH_SECONDS": "1", "CACHE_TTL_SECONDS": "0", "RUNNER_TIMEOUT_SECONDS": "2.0"}
    server = start_local_server(home, home / "server.log", env=env)
    users = [int(u) for u in Recommender.load(Path(store_entry("recipe_two_tower", home=home).path)).users.ids]
    try:
        yield Lifecycle(server, home, users)
    finally:
        server.stop()


@dataclass
class Load:
    """Threads posting uncached recommendation requests until stopped; every answer kept, per thread, in order."""

    base_url: str
    users: list[int]
    answers: list[list[tuple[int, str, str]]] = field(default_factory=list)
    """Per thread: (status, model_used, model_version) of each answer, in the order they came."""
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for n in range(LOAD_THREADS):
            self.answers.append([])
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        unique = itertools.count(10**12 + n * 10**9)
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self._stop.is_set():
                body = {"user_id": rng.choice(self.users), "exclude_recipe_ids": [next(unique)]}
                try:
                    response = client.post("/api/recommendations/recipes", json=body)
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                answer = response.json() if response.status_code == 200 else {}
                self.answers[n].append(
                    (response.status_code, answer.get("model_used", ""), answer.get("model_version", ""))
                )

    def count(self) -> int:
        return sum(len(answers) for answers in self.answers)

    def marks(self) -> list[int]:
        return [len(answers) for answers in self.answers]

    def since(self, marks: list[int], version: str) -> bool:
        """Each thread has answered from ``version`` since ``marks``."""
        return all(any(v == version for _, _, v in a[m:]) for a, m in zip(self.answers, marks, strict=True))


def runs(versions: list[str]) -> list[str]:
    """The versions in the order they served, each run of repeats once."""
    return [version for version, _ in itertools.groupby(versions)]


def test_a_promotion_and_a_rollback_under_load_drop_no_request(lifecycle: Lifecycle) -> None:
    old = lifecycle.health()["models"]["two_tower"]
    new = lifecycle.new_version(old, "two_tower")

    with Load(lifecycle.server.base_url, lifecycle.users) as load:
        wait_until(lambda: load.count() >= 4 * LOAD_THREADS, SWAP_WITHIN, "load running")
        marks = load.marks()
        promote(new, "two_tower", home=lifecycle.home)
        wait_until(lambda: load.since(marks, new), SWAP_WITHIN, f"every client answered by {new}")
        assert lifecycle.health()["models"]["two_tower"] == new
        marks = load.marks()
        promote(old, "two_tower", home=lifecycle.home)  # the rollback
        wait_until(lambda: load.since(marks, old), SWAP_WITHIN, f"every client answered by {old} again")
        wait_until(lambda: load.count() >= sum(marks) + 4 * LOAD_THREADS, SWAP_WITHIN, "more answers after")

    assert load.errors == []
    statuses = [status for answers in load.answers for status, _, _ in answers]
    assert set(statuses) == {200}, f"{len(statuses)} answers"
    for answers in load.answers:
        two_tower = [version for _, used, version in answers if used == "two_tower"]
        assert runs(two_tower) == [old, new, old], "each client saw the old version, the new one, then the old"
    assert lifecycle.health()["models"]["two_tower"] == old and lifecycle.health()["refused"] == {}


def test_a_version_that_fails_to_load_is_refused_and_the_old_one_keeps_answering(lifecycle: Lifecycle) -> None:
    serving = lifecycle.health()["models"]["two_tower"]
    broken = lifecycle.new_version(serving, "two_tower")
    vectors = Path(store_entry(broken, home=lifecycle.home).path) / "user_vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[: vectors.stat().st_size // 2])  # a copy cut off mid-array

    promote(broken, "two_tower", home=lifecycle.home)  # the store operation: `recipe-ml promote` would refuse it

    wait_until(lambda: "two_tower" in lifecycle.health()["refused"], SWAP_WITHIN, f"the runner refused {broken}")
    health = lifecycle.health()
    assert health["refused"]["two_tower"]["version"] == broken
    assert health["refused"]["two_tower"]["reason"].startswith("failed to load: ValueError: ")
    assert health["models"]["two_tower"] == serving and health["status"] == "ok"
    answer = httpx.post(
        f"{lifecycle.server.base_url}/api/recommendations/recipes", json={"user_id": lifecycle.users[0]}, timeout=15
    )
    assert answer.status_code == 200 and answer.json()["model_version"] == serving

    promote(serving, "two_tower", home=lifecycle.home)  # roll back: the refusal is over
    wait_until(lambda: lifecycle.health()["refused"] == {}, SWAP_WITHIN, "the refusal cleared by the rollback")


def cold_start_version(lifecycle: Lifecycle) -> str:
    response = httpx.post(f"{lifecycle.server.base_url}/api/recommendations/cold-start", json={}, timeout=15)
    assert response.status_code == 200, response.text
    version: str = response.json()["model_version"]
    return version


def test_the_api_process_swaps_popularity_on_its_own(lifecycle: Lifecycle) -> None:
    old = lifecycle.health()["models"]["popularity"]
    new = lifecycle.new_version(old, "popularity")
    assert cold_start_version(lifecycle) == old
    promote(new, "popularity", home=lifecycle.home)

    wait_until(lambda: cold_start_version(lifecycle) == new, SWAP_WITHIN, f"cold-start answered by {new}")
    assert lifecycle.health()["models"]["popularity"] == new
