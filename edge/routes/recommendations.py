"""Recommendation routes: personal, similar users, similar recipes, batch, cold-start."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from starlette.responses import Response

from edge.problems import COMMON_ERRORS, UNKNOWN_RECIPE, UNKNOWN_USER
from edge.routes.deps import EngineDep, JSONBodyRoute, respond
from recipe_ml.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ColdStartRequest,
    ColdStartResponse,
    RecipeRequest,
    RecipeResponse,
    SimilarRecipesRequest,
    SimilarRecipesResponse,
    SimilarUsersRequest,
    SimilarUsersResponse,
)

router = APIRouter(route_class=JSONBodyRoute)
"""Behind the API key (when API_KEYS is set)."""


@router.post(
    "/recommendations/recipes",
    name="recipes",
    operation_id="recommendRecipes",
    summary="Personal recommendations of a user",
    response_model=RecipeResponse,
    responses={**COMMON_ERRORS, **UNKNOWN_USER},
)
async def recipes(body: RecipeRequest, request: Request, engine: EngineDep) -> Response:
    """Recipes for one user, never one they already interacted with; from the cache when asked again
    within CACHE_TTL_SECONDS. `model_used` names the model that answered (two_tower, else als, else popularity);
    `personalized_by` the personal scorer of the personal positions (ease)."""
    response = await engine.recommend(body)
    return respond(request, response, response.model_used, response.model_version)


@router.post(
    "/recommendations/users",
    name="users",
    operation_id="similarUsers",
    summary="Users with a similar taste",
    response_model=SimilarUsersResponse,
    responses={**COMMON_ERRORS, **UNKNOWN_USER},
)
async def users(body: SimilarUsersRequest, request: Request, engine: EngineDep) -> Response:
    """The training users closest to this user (cosine of user vectors); 503 when only popularity is up."""
    response = await engine.similar_users(body)
    return respond(request, response, response.model_used, response.model_version)


@router.post(
    "/recommendations/similar-recipes",
    name="similar_recipes",
    operation_id="similarRecipes",
    summary='Recipes like a recipe ("more like this")',
    response_model=SimilarRecipesResponse,
    responses={**COMMON_ERRORS, **UNKNOWN_RECIPE},
)
async def similar_recipes(body: SimilarRecipesRequest, request: Request, engine: EngineDep) -> Response:
    """The recipes closest to `recipe_id` in the models' recipe space (cosine), with the same filters as
    recommendations; the same for every user, so cached across users."""
    response = await engine.similar_recipes(body)
    return respond(request, response, response.model_used, response.model_version)


@router.post(
    "/recommendations/batch",
    name="batch",
    operation_id="recommendBatch",
    summary="Recommendations for several users",
    response_model=BatchResponse,
    responses=COMMON_ERRORS,
)
async def batch(body: BatchRequest, request: Request, engine: EngineDep) -> Response:
    """One entry per user id, in order; `status` says which kind: `ok` (recommendations) or `error` (a
    problem, e.g. an unknown user). An unknown user fails its entry, not the batch (HTTP 200)."""
    response = await engine.recommend_batch(body)
    answered = [result for result in response.results if result.status == "ok"]
    return respond(request, response, _one({r.model_used for r in answered}), _one({r.model_version for r in answered}))


def _one(values: set[str]) -> str:
    """The metric label of a batch: the one value all its entries share, else "mixed" (or "none")."""
    return values.pop() if len(values) == 1 else ("mixed" if values else "none")


@router.post(
    "/recommendations/cold-start",
    name="cold_start",
    operation_id="coldStart",
    summary="Trending recipes, or recommendations from a new user's first recipes",
    response_model=ColdStartResponse,
    responses=COMMON_ERRORS,
)
async def cold_start(
    request: Request, engine: EngineDep, body: Annotated[ColdStartRequest | None, Body()] = None
) -> Response:
    """Without `recent_recipe_ids`: popularity with recency (live interactions weigh more). With them: the
    recipes are folded into a user vector. The body may be left out (every field has a default)."""
    response = await engine.cold_start(body or ColdStartRequest())
    return respond(request, response, response.model_used, response.model_version)
