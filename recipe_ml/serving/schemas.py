"""Request and response bodies of the HTTP API, and the queries the runners score.

Requests reject unknown fields and out-of-range values, so a client's typo is
a 422 naming the field instead of a silently ignored option.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recipe_ml.config import get_settings

MAX_ID_LIST = 1000
"""Upper bound on client-given recipe id lists (exclusions, cold-start history)."""
MAX_ID = 2**63 - 1
"""Ids are int64 in the models; a larger one is a 422, not an overflow."""
Id = Annotated[int, Field(ge=0, le=MAX_ID)]


def _diversity_default() -> float:
    return get_settings().mmr_diversity_weight


class _Request(BaseModel):
    """Strict: ``true`` or ``1e3`` is not an id, ``"5"`` is not a ``top_k``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    top_k: int = Field(default=10, ge=1)

    @field_validator("top_k")
    @classmethod
    def _top_k_bounded(cls, value: int) -> int:
        limit = get_settings().max_top_k
        if value > limit:
            raise ValueError(f"top_k must be at most {limit}")
        return value


class _RankingOptions(_Request):
    exclude_recipe_ids: list[Id] = Field(default_factory=list, max_length=MAX_ID_LIST)
    diversity: float = Field(default_factory=_diversity_default, ge=0.0, le=1.0)
    """MMR weight: 0 = pure relevance, 1 = pure novelty among the candidates."""
    max_fsa_score: float | None = Field(default=None, ge=4.0, le=12.0)
    """Only recipes with a known FSA score at most this (4 = healthiest)."""
    personalization: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of the top 10 given to the user's personal picks (0: none, 1: all ten).
    Unset: the model's adaptive policy (more personal positions for users with longer histories)."""

    def ranking_options(self) -> dict[str, object]:
        """The options every ranking request shares, as keyword arguments of another request or a ``RankQuery``."""
        return {name: getattr(self, name) for name in _RankingOptions.model_fields}


class RecipeRequest(_RankingOptions):
    user_id: Id


class BatchRequest(_RankingOptions):
    user_ids: list[Id] = Field(min_length=1)

    @field_validator("user_ids")
    @classmethod
    def _batch_bounded(cls, value: list[int]) -> list[int]:
        limit = get_settings().max_batch_size
        if len(value) > limit:
            raise ValueError(f"at most {limit} user_ids per batch (MAX_BATCH_SIZE)")
        return value


class ColdStartRequest(_RankingOptions):
    recent_recipe_ids: list[Id] = Field(default_factory=list, max_length=MAX_ID_LIST)
    """A new user's first recipes: recommendations are folded in from them."""


class SimilarUsersRequest(_Request):
    user_id: Id


class Recommendation(BaseModel):
    recipe_id: int
    score: float
    rank: int


class SimilarUser(BaseModel):
    user_id: int
    score: float
    rank: int


class _Timed(BaseModel):
    model_used: str
    latency_ms: float = 0.0
    cached: bool = False


class RecipeResponse(_Timed):
    user_id: int
    recommendations: list[Recommendation]


class ColdStartResponse(_Timed):
    recommendations: list[Recommendation]


class SimilarUsersResponse(_Timed):
    user_id: int
    similar_users: list[SimilarUser]


class BatchError(BaseModel):
    user_id: int
    error: str
    status: int


class BatchResponse(BaseModel):
    results: list[RecipeResponse | BatchError]
    latency_ms: float = 0.0


# What the API sends to a model (runner or in-process) and gets back.
class RankQuery(BaseModel):
    """One user to rank recipes for; raw ids, the model maps them."""

    user_id: int | None = None
    """A user of the training data, or None for a cold-start query (then the
    live ids are the whole history; none at all = the population's ranking)."""
    live_recipe_ids: list[int] = Field(default_factory=list)
    """Interactions since training: folded into the user vector and excluded."""
    exclude_recipe_ids: list[int] = Field(default_factory=list)
    max_fsa_score: float | None = None
    top_k: int = 10
    diversity: float = 0.0
    personalization: float | None = None
    """Share of the top 10 that is personal; None: the model's adaptive policy."""
    boost: dict[int, float] = Field(default_factory=dict)
    """Added to recipes' scores before ranking (trending recency in cold-start)."""


class RankResult(BaseModel):
    """Ranked recipes; ``found`` is False when the model cannot place the user."""

    found: bool
    recipe_ids: list[int] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    model_used: str | None = None
    """What ranked: the model kind, ``+`` its personal scorer when it has one (e.g. ``two_tower+ease``)."""

    def recommendations(self) -> list[Recommendation]:
        return [
            Recommendation(recipe_id=rid, score=score, rank=pos)
            for pos, (rid, score) in enumerate(zip(self.recipe_ids, self.scores, strict=True), start=1)
        ]


class SimilarQuery(BaseModel):
    user_id: int
    live_recipe_ids: list[int] = Field(default_factory=list)
    top_k: int = 10


class SimilarResult(BaseModel):
    found: bool
    user_ids: list[int] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)

    def similar_users(self) -> list[SimilarUser]:
        return [
            SimilarUser(user_id=uid, score=score, rank=pos)
            for pos, (uid, score) in enumerate(zip(self.user_ids, self.scores, strict=True), start=1)
        ]
