"""What the API sends to a model (a runner or in-process) and gets back: the runner wire types.

Internal, not the published contract (that is ``schemas``): raw ids in, ids
and scores out; the engine turns answers into the published responses.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, Field

from recipe_ml.serving.options import RankOptions
from recipe_ml.serving.schemas import Recommendation, SimilarUser


class _Filtered(BaseModel):
    """The ranking filters a query takes from its request's options."""

    exclude_recipe_ids: list[int] = Field(default_factory=list)
    include_recipe_ids: list[int] | None = None
    """Rank only among these (None = every recipe)."""
    max_fsa_score: float | None = None
    top_k: int = 10
    diversity: float = 0.0

    @classmethod
    def _of(cls, options: RankOptions, **fields: Any) -> Self:
        """A query with ``options``' filters and ``fields`` (validated in the request: not checked again)."""
        filters = {name: getattr(options, name) for name in _Filtered.model_fields}
        return cls.model_construct(**filters, **fields)


class NewRecipe(BaseModel):
    """A recipe the models were not trained on, with the users who interacted with it since (newest first).

    The API sends the same list to every model with every query, so each
    process that ranks (the API's popularity, every runner replica) serves
    the same new recipes, folded in from the same users.
    """

    recipe_id: int
    user_ids: list[int] = Field(default_factory=list)


class RankQuery(_Filtered):
    """One user to rank recipes for; raw ids, the model maps them."""

    user_id: int | None = None
    """A user of the training data, or None for a cold-start query (then the
    live ids are the whole history; none at all = the population's ranking)."""
    live_recipe_ids: list[int] = Field(default_factory=list)
    """Interactions since training: folded into the user vector and excluded."""
    personalization: float | None = None
    """Share of the top 10 that is personal; None: the model's adaptive policy."""
    boost: dict[int, float] = Field(default_factory=dict)
    """Added to recipes' scores before ranking (trending recency in cold-start)."""
    new_recipes: list[NewRecipe] = Field(default_factory=list)
    """Recipes beyond the model's to rank too (``NewRecipe``)."""

    @classmethod
    def of(
        cls,
        options: RankOptions,
        user_id: int | None,
        live_recipe_ids: list[int],
        boost: dict[int, float] | None = None,
        new_recipes: list[NewRecipe] | None = None,
    ) -> RankQuery:
        """The query of one user under a request's options."""
        return cls._of(
            options,
            user_id=user_id,
            live_recipe_ids=live_recipe_ids,
            personalization=options.personalization,
            boost={} if boost is None else boost,
            new_recipes=[] if new_recipes is None else new_recipes,
        )


class RankResult(BaseModel):
    """Ranked recipes; ``found`` is False when the model cannot place the user (or the recipe)."""

    found: bool
    recipe_ids: list[int] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    personalized_by: str | None = None
    """The personal scorer that picked the personal positions (``ease``), or None."""
    model_version: str | None = None
    """The store tag of the version that ranked (a runner may have swapped since the API asked)."""

    def recommendations(self) -> list[Recommendation]:
        return [
            Recommendation(recipe_id=rid, score=score, rank=pos)
            for pos, (rid, score) in enumerate(zip(self.recipe_ids, self.scores, strict=True), start=1)
        ]


class SimilarQuery(BaseModel):
    user_id: int
    live_recipe_ids: list[int] = Field(default_factory=list)
    top_k: int = 10


class SimilarRecipeQuery(_Filtered):
    """One recipe to find neighbours of, with the ranking filters of a recommendation."""

    recipe_id: int
    new_recipes: list[NewRecipe] = Field(default_factory=list)
    """Recipes beyond the model's that may be similar too, or be the one asked about (``NewRecipe``)."""

    @classmethod
    def of(cls, options: RankOptions, recipe_id: int, new_recipes: list[NewRecipe] | None = None) -> SimilarRecipeQuery:
        """The query of one recipe under a request's options."""
        return cls._of(options, recipe_id=recipe_id, new_recipes=[] if new_recipes is None else new_recipes)


class SimilarResult(BaseModel):
    found: bool
    user_ids: list[int] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    model_version: str | None = None

    def similar_users(self) -> list[SimilarUser]:
        return [
            SimilarUser(user_id=uid, score=score, rank=pos)
            for pos, (uid, score) in enumerate(zip(self.user_ids, self.scores, strict=True), start=1)
        ]
