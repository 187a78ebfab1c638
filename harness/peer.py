"""The one-process peer the benchmark measures the API against.

A plain FastAPI app under uvicorn, one process, serving the same stored
Two-Tower with the same ranking work as the API's first model: its scores
and personal scorer (``Recommender.rank_inputs``), the user's training
recipes and ``exclude_recipe_ids`` excluded (``recipe_ml.ranking.exclude_recipes``),
``rank_rows`` with MMR (diversity 0.3) and the model's personal positions,
``top_k`` (10) returned. No cache, no fallback chain, no live interactions,
no runner hop: the floor of what serving these vectors costs
in Python, so the API's overhead shows as a ratio. With ``--plain`` it ranks
by the vectors alone (the dot product plus bias, the user's recipes and the
exclusions kept out, MMR over the best 50; no personal scorer), so the price
of the personal scorer shows beside it.

    python -m harness.peer --bentoml-home ./bentoml_home --port 8100 [--thread-pool] [--plain]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from edge.model_store import load_from_store
from recipe_ml.models.base import Recommender
from recipe_ml.ranking import RankInputs, exclude_recipes, normalize_rows, rank_rows

DIVERSITY = 0.3


class PeerRequest(BaseModel):
    user_id: int
    top_k: int = Field(default=10, ge=1, le=100)
    exclude_recipe_ids: list[int] = []


class Recommendation(BaseModel):
    recipe_id: int
    score: float
    rank: int


class PeerResponse(BaseModel):
    user_id: int
    recommendations: list[Recommendation]


def rank_users(
    model: Recommender,
    unit_items: np.ndarray,
    indices: np.ndarray,
    exclude_recipe_ids: list[int],
    top_k: int,
    *,
    plain: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The peer's ranking work for the training users at ``indices``, as one batch: (n, top_k) recipe indices
    shown (-1 pads), (n, n_recipes) scores.

    ``rank_inputs`` (scores and the personal scorer), each user's training recipes and the exclusions kept
    out, ``rank_rows`` with MMR and the personal positions: what ``make bench`` times alone, in process.
    ``plain``: the model's scores only, no personal scorer nor personal positions (the plain-vector peer).
    """
    histories = [model.history(int(index)) for index in indices]
    if plain:
        scores = model.score(model.user_vectors[indices])
        inputs = RankInputs(scores, scores.copy(), None, np.zeros(len(indices), dtype=np.int64))
    else:
        inputs = model.rank_inputs(model.user_vectors[indices], model.history_rows(histories))
    excluded = model.items.indices(np.asarray(exclude_recipe_ids, dtype=np.int64))
    for row, history in enumerate(histories):
        exclude_recipes(inputs, row, np.concatenate([history, excluded[excluded >= 0]]))
    top = rank_rows(
        inputs.ranking,
        top_k,
        diversity=DIVERSITY,
        unit_item_vectors=unit_items,
        personal=inputs.personal,
        positions=inputs.positions,
    )
    return top, inputs.scores


def create_app(
    bentoml_home: Path | None,
    model_name: str = "recipe_two_tower",
    *,
    in_thread_pool: bool = False,
    plain: bool = False,
) -> FastAPI:
    """The peer app on the store's Two-Tower model (vectors loaded once).

    The handler runs on the event loop (an ``async def``, as the runners'
    are): ranking one user is a few milliseconds of numpy with nothing to
    await, so it needs no hand-off. With ``in_thread_pool`` it is a plain
    ``def`` that Starlette runs in its thread pool: a hand-off per request,
    but numpy may overlap requests where it releases the GIL. Which form is
    faster depends on the machine and the concurrency, so ``make bench``
    measures both and compares the API with the faster in each phase.
    ``plain``: rank by the vectors alone (``rank_users``).
    """
    model, _ = load_from_store(model_name, home=bentoml_home)
    unit_items = normalize_rows(model.item_vectors)
    item_ids = model.items.ids
    app = FastAPI()

    def recommend(request: PeerRequest) -> PeerResponse:
        index = model.users.index_of(request.user_id)
        if index is None:
            raise HTTPException(404, f"user {request.user_id} is unknown")
        (top,), (scores,) = rank_users(
            model, unit_items, np.asarray([index]), request.exclude_recipe_ids, request.top_k, plain=plain
        )
        picked = top[top >= 0]
        return PeerResponse(
            user_id=request.user_id,
            recommendations=[
                Recommendation(recipe_id=int(item_ids[i]), score=float(scores[i]), rank=rank)
                for rank, i in enumerate(picked, start=1)
            ],
        )

    async def recommend_on_the_loop(request: PeerRequest) -> PeerResponse:
        return recommend(request)

    app.post("/api/recommendations/recipes")(recommend if in_thread_pool else recommend_on_the_loop)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bentoml-home", type=Path, default=None, help="model store home (default: $BENTOML_HOME)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--thread-pool", action="store_true", help="a plain def handler, in Starlette's thread pool")
    parser.add_argument("--plain", action="store_true", help="rank by the vectors alone, no personal scorer")
    args = parser.parse_args()
    app = create_app(args.bentoml_home, in_thread_pool=args.thread_pool, plain=args.plain)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
