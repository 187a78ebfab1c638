"""Catalogue routes: the records the platform owns (tags, availability), one recipe or many at once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.responses import Response

from edge.problems import CATALOGUE_FULL, COMMON_ERRORS, problem_doc
from edge.routes.deps import EngineDep, JSONBodyRoute, respond
from recipe_ml.catalogue.records import RecipeFields
from recipe_ml.events.schema import MAX_REQUEST_ID
from recipe_ml.serving.schemas import BulkRecipesRequest, BulkRecipesWritten, RecipeDetails, RecipeWritten

router = APIRouter(route_class=JSONBodyRoute)
"""Behind the API key (when API_KEYS is set)."""


class _RecipeSegment(StringConvertor):
    """A path segment that is a recipe id's place: any segment but ``bulk``, so ``GET /recipes/bulk`` is a 405
    (that path is the bulk route's) while ``/recipes/abc`` is still read, and refused as a 422 naming
    ``recipe_id``."""

    regex = r"(?!bulk$)[^/]+"


register_url_convertor("recipe", _RecipeSegment())

RecipeIdPath = Annotated[int, Path(ge=0, le=MAX_REQUEST_ID, description="The recipe (any id up to 2^53 - 1).")]
STORE_DOWN: dict[int | str, dict[str, Any]] = {503: problem_doc("The catalogue store is down; retry.")}


@router.put(
    "/recipes/{recipe_id:recipe}",
    name="put_recipe",
    operation_id="putRecipe",
    summary="Create or replace a recipe's catalogue record",
    response_model=RecipeWritten,
    responses={**COMMON_ERRORS, **CATALOGUE_FULL, **STORE_DOWN},
)
async def put_recipe(recipe_id: RecipeIdPath, body: RecipeFields, request: Request, engine: EngineDep) -> Response:
    """Idempotent: the same record with its `updated_at` again changes nothing (`applied: false`; without
    `updated_at` each write is stamped when received, so a repeat is applied again, to the same effect). The
    last write by `updated_at` wins, so a retried or late older write never undoes a newer one. A body names at
    least one field: an empty one (a client's bug) is a 422, never a record wiped of its tags. A recipe made
    `available: false` leaves every answer at once, cached ones included; its tags take effect on the next
    request."""
    return respond(request, await engine.recipes.put(recipe_id, body))


@router.get(
    "/recipes/{recipe_id:recipe}",
    name="get_recipe",
    operation_id="getRecipe",
    summary="A recipe's catalogue record, whether the models know it, and its live interactions",
    response_model=RecipeDetails,
    responses={
        **COMMON_ERRORS,
        404: problem_doc("No catalogue record and unknown to the models."),
        **STORE_DOWN,
    },
)
async def get_recipe(recipe_id: RecipeIdPath, request: Request, engine: EngineDep) -> Response:
    """A recipe the models know but the catalogue does not is answered with `in_catalogue: false`."""
    return respond(request, await engine.recipes.describe(recipe_id))


@router.post(
    "/recipes/bulk",
    name="bulk_recipes",
    operation_id="putRecipes",
    summary="Create or replace many catalogue records at once, all or none",
    response_model=BulkRecipesWritten,
    responses={**COMMON_ERRORS, **CATALOGUE_FULL, **STORE_DOWN},
)
async def bulk_recipes(body: BulkRecipesRequest, request: Request, engine: EngineDep) -> Response:
    """Up to CATALOGUE_BULK_LIMIT records (1000 by default), validated together: one invalid record is a 422
    naming it (`recipes.3.tags.0`) and nothing is applied. Each record follows PUT's rules."""
    return respond(request, await engine.recipes.bulk(body))
