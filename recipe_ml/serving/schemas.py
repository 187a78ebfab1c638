"""Request and response bodies of the HTTP API.

Requests reject unknown fields and out-of-range values, so a client's typo is
a 422 naming the field instead of a silently ignored option. Field
descriptions and examples end up in the OpenAPI document (``/docs``), which
is the contract a typed client is generated from; that is why they live on
the models and not in prose elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recipe_ml.catalogue.records import MAX_TAGS, RecipeUpsert, Tag
from recipe_ml.config import get_settings
from recipe_ml.events.schema import MAX_REQUEST_ID, RECOMMENDATION_ID
from recipe_ml.serving.options import RankOptions
from recipe_ml.storage.base import RecipeRecord

MAX_ID_LIST = 1000
"""Upper bound on client-given recipe id lists (exclusions, cold-start history)."""
MAX_CANDIDATES = 10_000
"""Upper bound on ``include_recipe_ids``: a category of the backend may hold thousands of recipes."""
MAX_ID = 2**63 - 1
"""Ids are int64 in the models: a larger id (stored before MAX_REQUEST_ID bounded every input) is
ignored, not an overflow."""
Id = Annotated[int, Field(ge=0, le=MAX_REQUEST_ID)]
MAX_LISTED_ERRORS = 20
"""Most invalid fields one problem lists; ``errors_omitted`` counts the others."""
MAX_VARIANT_NAME = 40
"""Longest variant name (``recipe_ml.experiments.VARIANT_NAME``): a longer forced one is refused before it is echoed."""
COLD_START_PATH = "/api/recommendations/cold-start"
"""Where an unknown user is sent (named in the 404 body)."""


def _diversity_default() -> float:
    return get_settings().mmr_diversity_weight


def _document_max_top_k(schema: dict[str, Any]) -> None:
    """The ``maximum`` of ``top_k`` is a setting (MAX_TOP_K), so the document shows the server's value."""
    schema["maximum"] = get_settings().max_top_k


def _document_variants(schema: dict[str, Any]) -> None:
    """The variants of the running experiment (EXPERIMENTS) are the only values the document allows."""
    schema["anyOf"] = [{"type": "string", "enum": get_settings().experiment().names()}, {"type": "null"}]


def _document_max_batch(schema: dict[str, Any]) -> None:
    schema["maxItems"] = get_settings().max_batch_size


def _document_bulk_limit(schema: dict[str, Any]) -> None:
    schema["maxItems"] = get_settings().catalogue_bulk_limit


class _Request(BaseModel):
    """Strict: ``true`` or ``1e3`` is not an id, ``"5"`` is not a ``top_k``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    top_k: int = Field(
        default=10,
        ge=1,
        description="How many results to return, at most MAX_TOP_K (100 by default).",
        json_schema_extra=_document_max_top_k,
    )

    variant: str | None = Field(
        default=None,
        description=(
            "Force this variant of the running experiment (QA); absent = the user's assigned variant. "
            'Without an experiment the only variant is "default".'
        ),
        examples=["default"],
        max_length=MAX_VARIANT_NAME,
        json_schema_extra=_document_variants,
    )

    @field_validator("variant")
    @classmethod
    def _variant_exists(cls, value: str | None) -> str | None:
        experiment = get_settings().experiment()
        if value is not None and experiment.variant(value) is None:
            raise ValueError(f"no variant {value!r} in the experiment; it has {', '.join(experiment.names())}")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k_bounded(cls, value: int) -> int:
        limit = get_settings().max_top_k
        if value > limit:
            raise ValueError(f"top_k must be at most {limit}")
        return value


class _RankingOptions(_Request):
    exclude_recipe_ids: list[Id] = Field(
        default_factory=list,
        max_length=MAX_ID_LIST,
        description="Recipes never to return (the user's own interactions are always excluded).",
    )
    include_recipe_ids: list[Id] | None = Field(
        default=None,
        max_length=MAX_CANDIDATES,
        description=(
            "Rank only among these recipes (e.g. one category of the backend's catalogue); "
            "absent or null = every recipe. Unknown ids are ignored."
        ),
    )
    diversity: float = Field(
        default_factory=_diversity_default,
        ge=0.0,
        le=1.0,
        description="MMR weight: 0 = pure relevance, 1 = pure novelty; default MMR_DIVERSITY_WEIGHT (0.3).",
    )
    max_fsa_score: float | None = Field(
        default=None,
        ge=4.0,
        le=12.0,
        description="Only recipes with a known FSA health score at most this (4 = healthiest, 12 = least).",
    )
    require_tags: list[Tag] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description=(
            "Only recipes carrying every one of these catalogue tags (PUT /api/recipes/{recipe_id}). A recipe "
            'without a catalogue record carries none, so `["nut-free"]` is the safe way to honour an allergy. '
            "Never broken, by any model or cached answer; a tag no recipe has matches nothing."
        ),
        examples=[["vegetarian"]],
    )
    exclude_tags: list[Tag] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description="Never a recipe carrying any of these catalogue tags (e.g. `contains:peanut`).",
        examples=[["contains:peanut"]],
    )

    def rank_options(self) -> RankOptions:
        """The request's ranking options, read once for the cache key and the model's queries.

        A request without ``personalization`` (similar recipes: no user) has none.
        """
        values: dict[str, Any] = {option.name: getattr(self, option.name, None) for option in fields(RankOptions)}
        return RankOptions(**values)


class _RecommendationOptions(_RankingOptions):
    """Options of the requests that recommend to a user (not of similar recipes: no user to personalise for)."""

    personalization: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "Share of the top 10 given to the user's personal picks: 0 = none (the popularity-led ranking), "
            "1 = all ten. Absent or null = the model's adaptive policy (more personal positions for users "
            "with more recipes)."
        ),
    )


class RecipeRequest(_RecommendationOptions):
    """Personal recommendations for one user."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": 880574, "top_k": 3}]})

    user_id: Id = Field(description="A user of the app (known to the models, or with live interactions).")


class BatchRequest(_RecommendationOptions):
    """The same options for several users, answered in one request."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_ids": [880574, 999999999], "top_k": 2}]})

    user_ids: list[Id] = Field(
        min_length=1,
        description="Users to recommend for, at most MAX_BATCH_SIZE (100 by default).",
        json_schema_extra=_document_max_batch,
    )

    @field_validator("user_ids")
    @classmethod
    def _batch_bounded(cls, value: list[int]) -> list[int]:
        limit = get_settings().max_batch_size
        if len(value) > limit:
            raise ValueError(f"at most {limit} user_ids per batch (MAX_BATCH_SIZE)")
        return value


class ColdStartRequest(_RecommendationOptions):
    """Recommendations without a known user: trending, or folded in from first recipes."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"top_k": 3, "recent_recipe_ids": [10813, 8493]}]})

    recent_recipe_ids: list[Id] = Field(
        default_factory=list,
        max_length=MAX_ID_LIST,
        description="A new user's first recipes: recommendations are folded in from them; empty = trending.",
    )


class SimilarUsersRequest(_Request):
    """Users with a taste similar to this user's."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": 880574, "top_k": 3}]})

    user_id: Id = Field(description="A user of the app (known to the models, or with live interactions).")


class SimilarRecipesRequest(_RankingOptions):
    """More like this: the recipes closest to one recipe in the models' recipe space."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"recipe_id": 10813, "top_k": 3}]})

    recipe_id: Id = Field(description="The recipe on the page (a recipe the models were trained on).")


class Recommendation(BaseModel):
    recipe_id: int = Field(description="Allrecipes recipe id.")
    score: float = Field(description="The model's score (cosine similarity for similar recipes).")
    rank: int = Field(ge=1, description="1 = best; with diversity the order is MMR's, not the score's.")


class SimilarUser(BaseModel):
    user_id: int
    score: float = Field(description="Cosine similarity of the two users' vectors.")
    rank: int = Field(ge=1)


class Body(BaseModel):
    """A response body, encoded to JSON once: on a cache miss the cache keeps the bytes the client is sent.

    Frozen, so the encoding cannot go stale; a copy (``model_copy``, how a
    cache hit is marked) encodes itself afresh.
    """

    model_config = ConfigDict(frozen=True)

    @cached_property
    def encoded(self) -> bytes:
        """The JSON the client is sent (and a cache keeps)."""
        return self.model_dump_json().encode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("encoded", None)  # the encoding of this body, not of the copy
        return copied


ModelUsed = Literal["two_tower", "als", "popularity"]
"""The published values of ``model_used``: the links of the fallback chain. Never extended with what else
shaped a list (that is ``personalized_by``): clients map this to an enum."""


class _Timed(Body):
    recommendation_id: str = Field(
        pattern=RECOMMENDATION_ID,
        description=(
            "This answer's id (32 lower-case hex digits), new on every answer, cached ones too: send it back "
            "as `recommendationId` with the interactions it led to."
        ),
        examples=["9f1c2b7e4d5a46b0a3c8e2f1d0b9a877"],
    )
    variant: str = Field(
        description='The experiment variant that produced the answer; "default" without an experiment.',
        examples=["default"],
    )
    model_used: ModelUsed = Field(
        description="The model that answered: two_tower, else als, else popularity (the fallback chain)."
    )
    personalized_by: str | None = Field(
        default=None,
        description=(
            "The personal scorer that picked the personal positions of the list (`ease`: the Two-Tower's EASE "
            "scorer), or null. Optional for clients: `model_used` alone names the model."
        ),
        examples=["ease"],
    )
    model_version: str = Field(
        description=(
            "The model store tag (name:version) of the version that produced this answer; it changes when a "
            "newly promoted version takes over (recipe-ml promote)."
        ),
        examples=["recipe_two_tower:dagvxsxod2uxcax4"],
    )
    latency_ms: float = Field(default=0.0, description="Time spent in the service, in milliseconds.")
    cached: bool = Field(default=False, description="True when the answer came from the response cache.")


class _Listed(_Timed):
    exhausted: bool = Field(
        default=False,
        description=(
            "True when fewer than top_k recipes were left to return (the tag filters, include_recipe_ids, the "
            "health filter or the user's history allowed no more): the list is shorter than asked, not padded."
        ),
    )


class RecipeResponse(_Listed):
    user_id: int
    recommendations: list[Recommendation]


class ColdStartResponse(_Listed):
    recommendations: list[Recommendation]


class SimilarUsersResponse(_Timed):
    user_id: int
    similar_users: list[SimilarUser]


class SimilarRecipesResponse(_Listed):
    recipe_id: int
    similar_recipes: list[Recommendation]


def _is_none(value: object) -> bool:
    """Problem members that do not apply are left out, not sent as null."""
    return value is None


class FieldError(BaseModel):
    """One invalid part of a request."""

    field: str = Field(
        description='Dotted path of the field ("top_k", "recent_recipe_ids.1"); "body" = the whole body.'
    )
    message: str
    type: str = Field(description='Machine-readable kind ("missing", "greater_than_equal", "json_invalid", ...).')


class Problem(BaseModel):
    """An error, as RFC 9457 ``application/problem+json`` (Spring's ``ProblemDetail`` reads it).

    ``errors`` lists the invalid fields of a 400/422; the other extension
    members appear only where they apply.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:recipe-ml:problem:invalid-request",
                    "title": "Invalid request",
                    "status": 422,
                    "detail": "invalid request: top_k",
                    "instance": "/api/recommendations/recipes",
                    "errors": [
                        {
                            "field": "top_k",
                            "message": "Input should be greater than or equal to 1",
                            "type": "greater_than_equal",
                        }
                    ],
                }
            ]
        }
    )

    type: str = Field(
        default="about:blank",
        description="URI naming the kind of problem (urn:recipe-ml:problem:...), about:blank for plain HTTP errors.",
    )
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for a human.")
    instance: str | None = Field(default=None, exclude_if=_is_none, description="The request path.")
    errors: list[FieldError] = Field(
        default_factory=list, description=f"The invalid fields (400 and 422), at most {MAX_LISTED_ERRORS}."
    )
    errors_omitted: int | None = Field(
        default=None,
        ge=1,
        exclude_if=_is_none,
        description=f"How many more invalid fields there were than the {MAX_LISTED_ERRORS} that `errors` lists.",
    )
    user_id: int | None = Field(default=None, exclude_if=_is_none, description="The unknown user (404 for a user).")
    recipe_id: int | None = Field(default=None, exclude_if=_is_none, description="The unknown recipe (a 404).")
    cold_start: str | None = Field(default=None, exclude_if=_is_none, description="Where to ask, for an unknown user.")


class BatchRecipes(RecipeResponse):
    """A batch entry that succeeded (``status`` is the discriminator)."""

    status: Literal["ok"] = "ok"

    @classmethod
    def of(cls, response: RecipeResponse) -> BatchRecipes:
        """The entry of a user's answer: the answer's fields as they are (validated once, when it was made)."""
        return cls.model_construct(**{name: getattr(response, name) for name in RecipeResponse.model_fields})


class BatchError(BaseModel):
    """A batch entry that failed, e.g. an unknown user; the rest of the batch is answered."""

    status: Literal["error"] = "error"
    user_id: int
    problem: Problem


BatchEntry = Annotated[BatchRecipes | BatchError, Field(discriminator="status")]


class BatchResponse(Body):
    results: list[BatchEntry] = Field(description="One entry per requested user id, in the request's order.")
    latency_ms: float = 0.0


class InteractionAccepted(Body):
    """What ``POST /api/interactions`` did with the event (202 either way)."""

    applied: bool = Field(description="True the first time this event is seen.")
    duplicate: bool = Field(description="True when an event with this id was already applied (nothing changed).")
    event_id: str = Field(description="eventId, or a content hash when the event had none.")


class RefusedVersion(BaseModel):
    """A promoted version the running service would not serve: the one before it keeps serving."""

    version: str = Field(description="The store tag that was refused.")
    reason: str = Field(description="Why, e.g. 'failed to load: ValueError: ...'.")


Reachability = Literal["ok", "unreachable", "not configured"]
"""What health says of Redis and Kafka."""


class ExperimentVariant(BaseModel):
    name: str
    weight: float = Field(description="Its share of users is weight / the sum of the weights.")
    overrides: dict[str, float | str] = Field(description="What it changes (diversity, personalization, first_model).")


class ActiveExperiment(BaseModel):
    """The experiment of the EXPERIMENTS file."""

    name: str
    variants: list[ExperimentVariant]


class Health(Body):
    """Degraded (not down) when anything but the popularity fallback is out: requests are still answered."""

    status: Literal["ok", "degraded"]
    models: dict[str, str] = Field(description="Model kind -> the store tag serving it, or 'unavailable'.")
    refused: dict[str, RefusedVersion] = Field(
        default_factory=dict,
        description="Model kind -> the promoted version it refused (a version that failed to load); empty when none.",
    )
    personalization: dict[str, str] = Field(
        description="Model kind -> how it picks the personal positions (its personal scorer and policy, or a fallback)."
    )
    redis: Reachability
    kafka: Reachability
    experiment: ActiveExperiment | None = Field(
        default=None, description='The running experiment; null without EXPERIMENTS (every answer is "default").'
    )
    catalogue: CatalogueHealth


class BulkRecipesRequest(BaseModel):
    """Several catalogue records, applied all or none."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    recipes: list[RecipeUpsert] = Field(
        min_length=1,
        description="At most CATALOGUE_BULK_LIMIT (1000 by default) records; one invalid record refuses them all.",
        json_schema_extra=_document_bulk_limit,
    )

    @field_validator("recipes")
    @classmethod
    def _bulk_bounded(cls, value: list[RecipeUpsert]) -> list[RecipeUpsert]:
        limit = get_settings().catalogue_bulk_limit
        if len(value) > limit:
            raise ValueError(f"at most {limit} recipes per bulk request (CATALOGUE_BULK_LIMIT)")
        return value


def _instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class RecipeDetails(Body):
    """A recipe as the service sees it: its catalogue record (if any), whether the models know it, its activity."""

    recipe_id: int
    in_catalogue: bool = Field(description="False: no record yet (untagged, available, as every unrecorded recipe).")
    tags: list[str]
    available: bool
    published_at: datetime | None = None
    title: str | None = None
    updated_at: datetime | None = Field(default=None, description="The record's updated_at (null: no record).")
    known_to_models: bool = Field(description="True when the models were trained on this recipe.")
    live_interactions: int = Field(ge=0, description="Interactions with it applied since training (HTTP or Kafka).")

    @classmethod
    def of(cls, recipe_id: int, record: RecipeRecord | None, known: bool, live: int, **extra: Any) -> Self:
        if record is None:
            return cls(
                recipe_id=recipe_id,
                in_catalogue=False,
                tags=[],
                available=True,
                known_to_models=known,
                live_interactions=live,
                **extra,
            )
        return cls(
            recipe_id=recipe_id,
            in_catalogue=True,
            tags=list(record.tags),
            available=record.available,
            published_at=_instant(record.published_at),
            title=record.title,
            updated_at=_instant(record.updated_at),
            known_to_models=known,
            live_interactions=live,
            **extra,
        )


class RecipeWritten(RecipeDetails):
    """The recipe after a PUT."""

    applied: bool = Field(
        description="False when the stored record was written later (by updated_at) or is this same write: "
        "nothing changed, and the body shows the record that stands."
    )


class BulkResult(BaseModel):
    recipe_id: int
    applied: bool


class BulkRecipesWritten(Body):
    applied: int = Field(ge=0, description="Records that changed the catalogue.")
    stale: int = Field(ge=0, description="Records older than (or the same as) the stored ones: nothing changed.")
    results: list[BulkResult] = Field(description="One per record, in the request's order.")


class CatalogueHealth(BaseModel):
    recipes: int = Field(ge=0, description="Recipes with a catalogue record.")
    hidden: int = Field(ge=0, description="Of them, those with available: false.")
    version: int = Field(description="The catalogue version the answers are filtered with (-1: not read yet).")
    folded_in: int = Field(
        ge=0,
        description="Recipes the models were not trained on that FOLD_IN_MIN_USERS known users tried: the models fold "
        "them in (similar recipes, personal lists).",
    )
