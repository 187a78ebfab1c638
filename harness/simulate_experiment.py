"""A simulated A/B experiment through the live API: the shipped policy against popularity only.

    python -m harness.simulate_experiment                     # make simulate-experiment
    python -m harness.simulate_experiment --users 200 --bentoml-home ./some_home   # a sample

Serves models fitted on the train split only (``recipe-ml train --eval``, in
``--bentoml-home``) with an ``EXPERIMENTS`` file of two variants, 50/50:
``shipped`` (the whole chain) and ``popularity`` (``first_model:
popularity``), the impression log in a JSONL file. Replayed users of the
validation split that the models know each ask for their top 10
(``POST /api/recommendations/recipes``); a user *cooks* a recommended recipe
when it is among their held-out validation ratings, and posts it with the
answer's ``recommendationId`` (``POST /api/interactions``). Then the
experiment report (``recipe-ml experiment report``) reads the log: each
variant's cook rate with its interval and the test between them, and the
chart in ``--out-dir``. Only cooks are simulated, so click-through equals
the cook rate here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from edge.model_store import load_from_store
from harness.server import start_local_server
from recipe_ml.config import DATA_DIR, REPORTS_DIR
from recipe_ml.data import load_ratings, split_path
from recipe_ml.evaluation.online import ExperimentReport
from scripts.experiment import read_jsonl, report

VARIANTS = ("shipped", "popularity")
EXPERIMENT = (
    "name: shipped-vs-popularity\n"
    "salt: simulation\n"
    "variants:\n"
    "  - {name: shipped, weight: 1}\n"
    "  - {name: popularity, weight: 1, overrides: {first_model: popularity}}\n"
)
TOP_K = 10
DEADLINE_SECONDS = 120.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bentoml-home", type=Path, default=Path("training_artifacts/simulation_home"))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--users", type=int, default=None, help="replay a seeded sample of N users (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out-dir", type=Path, default=REPORTS_DIR)
    args = parser.parse_args(argv)
    result, _ = simulate(args.bentoml_home, args.data_dir, args.users, args.seed, args.concurrency, args.out_dir)
    return 0 if len(result.variants) == len(VARIANTS) else 1


def simulate(
    bentoml_home: Path, data_dir: Path, n_users: int | None, seed: int, concurrency: int, out_dir: Path
) -> tuple[ExperimentReport, int]:
    """Run the experiment: the report it printed and wrote, and the cooks posted (each one attributed)."""
    held_out = _held_out(bentoml_home, data_dir)
    users = sorted(held_out)
    if n_users is not None and n_users < len(users):
        picked = np.random.default_rng(seed).choice(len(users), size=n_users, replace=False)
        users = [users[i] for i in sorted(picked)]
    with tempfile.TemporaryDirectory(prefix="recipe-ml-simulation-") as scratch:
        work = Path(scratch)
        (work / "experiment.yaml").write_text(EXPERIMENT)
        log = work / "impressions.jsonl"
        server = start_local_server(
            bentoml_home,
            work / "server.log",
            env={"EXPERIMENTS": str(work / "experiment.yaml"), "IMPRESSION_LOG_PATH": str(log)},
        )
        try:
            cooks = asyncio.run(_replay(server.base_url, users, held_out, concurrency))
            _wait_for_log(log, len(users), cooks)
        finally:
            server.stop()
        print(f"replayed {len(users)} validation users; {cooks} cooks of recommended held-out recipes posted")
        return report(read_jsonl(log), VARIANTS, "recipes", out_dir), cooks


def _held_out(bentoml_home: Path, data_dir: Path) -> dict[int, set[int]]:
    """Validation ratings of the users the served models know (fitted on train only), per user."""
    model, _ = load_from_store("recipe_popularity", home=bentoml_home)
    known = {int(user) for user in model.users.ids}
    ratings = load_ratings(split_path(data_dir, "validation"))
    held_out: dict[int, set[int]] = defaultdict(set)
    for user, recipe in zip(ratings.user_id.tolist(), ratings.recipe_id.tolist(), strict=True):
        if user in known:
            held_out[user].add(recipe)
    return held_out


async def _replay(base_url: str, users: list[int], held_out: dict[int, set[int]], concurrency: int) -> int:
    """Each user asks once and cooks what was recommended among their held-out recipes; the cooks posted."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)
    cooks = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal cooks
        while not queue.empty():
            user = queue.get_nowait()
            answer = await client.post("/api/recommendations/recipes", json={"user_id": user, "top_k": TOP_K})
            answer.raise_for_status()
            body = answer.json()
            for item in body["recommendations"]:
                if item["recipe_id"] in held_out[user]:
                    event = {
                        "userId": user,
                        "recipeId": item["recipe_id"],
                        "interactionType": "cook",
                        "eventId": f"simulated-{body['recommendation_id']}-{item['recipe_id']}",
                        "recommendationId": body["recommendation_id"],
                    }
                    (await client.post("/api/interactions", json=event)).raise_for_status()
                    cooks += 1

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return cooks


def _wait_for_log(log: Path, impressions: int, attributions: int) -> None:
    """Until the impression log holds every answer and every attributed cook (it is written in the background)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()] if log.exists() else []
        if kinds.count("impression") >= impressions and kinds.count("attribution") >= attributions:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the impression log has {kinds.count('impression')}/{impressions} impressions and "
                f"{kinds.count('attribution')}/{attributions} attributions after {DEADLINE_SECONDS:g} s"
            )
        time.sleep(0.2)


if __name__ == "__main__":
    raise SystemExit(main())
