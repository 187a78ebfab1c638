"""Load test: the traffic mix the Spring Boot backend sends, over real ids.

Users and recipes are drawn from the training data, so every request targets
an id the models know and any failure is the service's, not the test's.
Run headless (`make loadtest`):

    locust -f loadtests/locustfile.py --headless -u 20 -r 5 -t 60s \
        --host http://127.0.0.1:8000 --csv loadtests/reports/locust

The ``@task`` weights: personal recommendations dominate, as on a recipe
app's home page; interaction events are the next most frequent.
"""

from __future__ import annotations

import random
import uuid
from functools import lru_cache
from typing import Any

import numpy as np
from locust import FastHttpUser, between, task

from recipe_ml.config import DATA_DIR
from recipe_ml.data import load_ratings

TOP_K = 10
BATCH_SIZE = 10
INTERACTION_TYPES = ("view", "view", "view", "like", "save", "cook", "rate")
"""Views are the most common event; ``rate`` carries a rating."""


@lru_cache(maxsize=1)
def known_ids() -> tuple[list[int], list[int]]:
    """(user ids, recipe ids) of the training data, loaded once per process."""
    ratings = load_ratings(DATA_DIR / "train.csv")
    return np.unique(ratings.user_id).tolist(), np.unique(ratings.recipe_id).tolist()


class BackendClient(FastHttpUser):
    """One backend thread calling the recommendation API."""

    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.user_ids, self.recipe_ids = known_ids()

    def _user(self) -> int:
        return random.choice(self.user_ids)

    def _recipes(self, n: int) -> list[int]:
        return random.sample(self.recipe_ids, n)

    def _post(self, path: str, body: dict[str, Any]) -> None:
        self.client.post(path, json=body, name=path)

    @task(10)
    def personal_recommendations(self) -> None:
        self._post("/api/recommendations/recipes", {"user_id": self._user(), "top_k": TOP_K})

    @task(2)
    def healthy_recommendations(self) -> None:
        self._post(
            "/api/recommendations/recipes",
            {"user_id": self._user(), "top_k": TOP_K, "max_fsa_score": 8, "diversity": 0.5},
        )

    @task(3)
    def similar_users(self) -> None:
        self._post("/api/recommendations/users", {"user_id": self._user(), "top_k": TOP_K})

    @task(1)
    def batch(self) -> None:
        users = random.sample(self.user_ids, BATCH_SIZE)
        self._post("/api/recommendations/batch", {"user_ids": users, "top_k": TOP_K})

    @task(2)
    def cold_start_trending(self) -> None:
        self._post("/api/recommendations/cold-start", {"top_k": TOP_K})

    @task(2)
    def cold_start_first_recipes(self) -> None:
        self._post("/api/recommendations/cold-start", {"top_k": TOP_K, "recent_recipe_ids": self._recipes(3)})

    @task(4)
    def interaction(self) -> None:
        kind = random.choice(INTERACTION_TYPES)
        event: dict[str, Any] = {
            "userId": self._user(),
            "recipeId": random.choice(self.recipe_ids),
            "interactionType": kind,
            "eventId": str(uuid.uuid4()),
        }
        if kind == "rate":
            event["rating"] = random.randint(3, 5)
        self._post("/api/interactions", event)

    @task(1)
    def health(self) -> None:
        self.client.get("/api/health", name="/api/health")
