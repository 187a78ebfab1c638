"""A catalogue record as the platform sends it: over HTTP (snake_case) or on the ``recipes`` topic (camelCase).

The HTTP bodies reject unknown fields (a typo is a 422 naming it); the Kafka
record ignores them, as the interaction event does, so a producer that adds
a field does not send every record to the DLQ. Both give the same stored
``RecipeRecord``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel

from recipe_ml.events.schema import MAX_REQUEST_ID, MAX_UNIX_MILLISECONDS, MIN_UNIX_MILLISECONDS, parse_record
from recipe_ml.storage.base import RecipeRecord

TAG_PATTERN = r"^[a-z0-9][a-z0-9:._-]*$"
"""A tag: lower-case letters, digits and ``: . _ -``, starting with a letter or digit (``contains:peanut``)."""
MAX_TAG_LENGTH = 64
MAX_TAGS = 32
"""Most tags one recipe carries."""
MAX_TITLE_LENGTH = 300

Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN, min_length=1, max_length=MAX_TAG_LENGTH)]
RecipeId = Annotated[int, Field(ge=0, le=MAX_REQUEST_ID, strict=True)]

_EXAMPLE: dict[str, Any] = {
    "tags": ["vegetarian", "course:dessert", "contains:peanut"],
    "available": True,
    "published_at": "2026-11-30T08:00:00Z",
    "title": "Peanut butter brownies",
    "updated_at": "2026-12-01T09:30:00Z",
}


def _utc(value: datetime | None) -> datetime | None:
    """A naive time is UTC (Java's ``Instant`` is)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


RECORD_FIELDS = ("tags", "available", "published_at", "title", "updated_at")
_SOME_FIELD: dict[str, Any] = {"anyOf": [{"required": [name]} for name in RECORD_FIELDS]}
"""A record names at least one of its fields: an empty body (a client's bug) never wipes a recipe's tags."""

_TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "number", "minimum": MIN_UNIX_MILLISECONDS, "maximum": MAX_UNIX_MILLISECONDS},
        {"type": "null"},
    ]
}
"""As parsed: ISO 8601 (naive = UTC), or Unix time in seconds (or milliseconds), as Jackson writes an ``Instant``."""


class RecipeFields(BaseModel):
    """What the platform says of one recipe: the body of ``PUT /api/recipes/{recipe_id}``."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, json_schema_extra={"examples": [_EXAMPLE], **_SOME_FIELD}
    )

    tags: list[Tag] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description=(
            f"At most {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters, lower-case letters, digits and "
            "`: . _ -` (`vegetarian`, `gluten-free`, `contains:peanut`, `course:dessert`). A repeated tag is kept once."
        ),
    )
    available: bool = Field(default=True, description="false = never recommend it (withdrawn, out of season).")
    published_at: datetime | None = Field(
        default=None,
        strict=False,
        description="When the platform published it (ISO 8601, naive = UTC; or Unix time).",
        json_schema_extra=_TIME_SCHEMA,
    )
    title: str | None = Field(default=None, min_length=1, max_length=MAX_TITLE_LENGTH)
    updated_at: datetime | None = Field(
        default=None,
        strict=False,
        description=(
            "When the platform changed the record (ISO 8601, naive = UTC; or Unix time); absent = when the service "
            "receives it. The last write by updated_at wins, whatever order writes arrive in."
        ),
        json_schema_extra=_TIME_SCHEMA,
    )

    @field_validator("published_at", "updated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _names_a_field(self) -> Self:
        if not self.model_fields_set & set(RECORD_FIELDS):
            raise ValueError(f"a record names at least one of {', '.join(RECORD_FIELDS)} (an empty one would wipe it)")
        return self

    def record(self, recipe_id: int, received_at: datetime) -> RecipeRecord:
        """The stored form; ``received_at`` stands in for a missing ``updated_at``."""
        updated = self.updated_at or received_at
        return RecipeRecord(
            recipe_id=recipe_id,
            tags=tuple(sorted(set(self.tags))),
            available=self.available,
            published_at=None if self.published_at is None else self.published_at.timestamp(),
            title=self.title,
            updated_at=updated.timestamp(),
        )


class RecipeUpsert(RecipeFields):
    """One record of ``POST /api/recipes/bulk``: the fields and the recipe they describe."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"recipe_id": 10813, **_EXAMPLE}], **_SOME_FIELD})

    recipe_id: RecipeId = Field(description="The recipe (any id: one the models do not know yet is published).")


class RecipeEvent(RecipeUpsert):
    """A record of the ``recipes`` topic: camelCase (``recipeId``, ``publishedAt``), snake_case accepted."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def parse_recipe_event(raw: bytes, received_at: datetime) -> RecipeRecord:
    """The record in ``raw`` (JSON); ``InvalidEvent`` with a readable reason (for the DLQ) otherwise."""
    event = parse_record(RecipeEvent, raw)
    return event.record(event.recipe_id, received_at)


def records_of(upserts: Sequence[RecipeUpsert], received_at: datetime) -> list[RecipeRecord]:
    return [upsert.record(upsert.recipe_id, received_at) for upsert in upserts]
