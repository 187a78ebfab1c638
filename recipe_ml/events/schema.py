"""The interaction event as the Spring Boot backend publishes it.

camelCase is the Java producer's form; snake_case is accepted too. Errors name
the field in its camelCase form (``rating``, ``interactionType``), as the
producer wrote it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

MAX_REQUEST_ID = 2**53 - 1
"""Largest id any input may carry, an HTTP request or a Kafka event: the integers every JSON parser
(JavaScript's too) reads exactly, and a bound an OpenAPI ``maximum`` states exactly; a larger one is
refused (a 422, or the DLQ) naming the field."""
MIN_UNIX_MILLISECONDS = -62_135_596_800_000
MAX_UNIX_MILLISECONDS = 253_402_300_799_999
"""0001-01-01 to 9999-12-31T23:59:59.999Z: the instants a ``datetime`` holds (numbers beyond 2e10 in
size are read as milliseconds), so the published range is exactly what the parser accepts."""
RECOMMENDATION_ID = r"^[0-9a-f]{32}$"
"""The documented form of a recommendation id: 32 lower-case hex digits (a random 128-bit number)."""


def new_recommendation_id() -> str:
    """A fresh, unguessable recommendation id."""
    return secrets.token_hex(16)


class InteractionType(StrEnum):
    VIEW = "view"
    LIKE = "like"
    SAVE = "save"
    COOK = "cook"
    RATE = "rate"


class InvalidEvent(ValueError):
    """Raw bytes that are not an event; ``reason`` says why (it goes to the DLQ)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InteractionEvent(BaseModel):
    """One interaction of a user with a recipe."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        json_schema_extra={
            # The rule of ``_rating_only_for_rate`` in the published schema (POST /api/interactions),
            # so that a client or a fuzzer knows which events are valid without reading this code.
            "oneOf": [
                {
                    "properties": {"interactionType": {"enum": ["rate"]}, "rating": {"type": "integer"}},
                    "required": ["rating"],
                },
                {
                    "properties": {
                        "interactionType": {"enum": [kind for kind in InteractionType if kind != "rate"]},
                        "rating": {"enum": [None]},
                    }
                },
            ],
            "examples": [
                {"userId": 880574, "recipeId": 162760, "interactionType": "cook", "eventId": "demo-1"},
                {
                    "userId": 5,
                    "recipeId": 234,
                    "interactionType": "rate",
                    "rating": 4,
                    "timestamp": "2026-11-29T10:00:00Z",
                    "eventId": "5f0c2b1e-rate",
                },
            ],
        },
    )

    # Strict: ``true`` or ``"5"`` is not an id (nor a rating), as in the API's requests.
    user_id: int = Field(ge=0, le=MAX_REQUEST_ID, strict=True)
    recipe_id: int = Field(ge=0, le=MAX_REQUEST_ID, strict=True)
    interaction_type: InteractionType
    rating: int | None = Field(default=None, ge=1, le=5, strict=True, validate_default=True)
    timestamp: datetime | None = Field(
        default=None,
        # As parsed: ISO 8601 (Jackson's form for an Instant), or Unix time in seconds (or milliseconds).
        json_schema_extra={
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "number", "minimum": MIN_UNIX_MILLISECONDS, "maximum": MAX_UNIX_MILLISECONDS},
                {"type": "null"},
            ],
            "description": "When it happened: ISO 8601 (naive = UTC) or Unix time; absent = broker time or now.",
        },
    )
    """When it happened; a naive time is read as UTC. None: broker time or now."""
    event_id: str | None = Field(default=None, min_length=1, max_length=200)
    """The producer's id; redelivery of the same id changes nothing."""
    recommendation_id: str | None = Field(
        default=None,
        strict=True,
        pattern=RECOMMENDATION_ID,
        description=(
            "The `recommendation_id` of the answer that showed this recipe, when the interaction came from one: "
            "the key that joins it to that answer's record in the impression log (its variant, model and ranks)."
        ),
    )

    @field_validator("rating")
    @classmethod
    def _rating_only_for_rate(cls, rating: int | None, info: ValidationInfo) -> int | None:
        """A field validator (not a model one) so that the error names ``rating``."""
        kind = info.data.get("interaction_type")
        if kind is InteractionType.RATE and rating is None:
            raise ValueError("rating (1-5) is required when interactionType is 'rate'")
        if kind is not None and kind is not InteractionType.RATE and rating is not None:
            raise ValueError(f"rating is only allowed when interactionType is 'rate', not '{kind}'")
        return rating

    @field_validator("timestamp")
    @classmethod
    def _aware_utc(cls, timestamp: datetime | None) -> datetime | None:
        """Decay arithmetic needs an absolute time; Java's ``Instant`` is UTC."""
        if timestamp is not None and timestamp.tzinfo is None:
            return timestamp.replace(tzinfo=UTC)
        return timestamp

    def dedupe_id(self) -> str:
        """``eventId``, or a hash of the content when the producer sent none.

        The content hash makes an HTTP retry of the same event a duplicate; two
        identical events without ``eventId`` *and* without ``timestamp`` are
        therefore counted once: producers should send one of them.
        """
        if self.event_id is not None:
            return self.event_id
        when = self.timestamp.isoformat() if self.timestamp is not None else "-"
        content = f"{self.user_id}|{self.recipe_id}|{self.interaction_type}|{self.rating}|{when}"
        return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


M = TypeVar("M", bound=BaseModel)


def parse_event(raw: bytes) -> InteractionEvent:
    """The event in ``raw`` (JSON); ``InvalidEvent`` with a readable reason otherwise."""
    return parse_record(InteractionEvent, raw)


def parse_record(model: type[M], raw: bytes) -> M:
    """The ``model`` record in ``raw`` (JSON), as a Kafka topic carries it; ``InvalidEvent`` saying why otherwise."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise InvalidEvent(errors[0]["msg"]) from exc  # "Invalid JSON: …"
        raise InvalidEvent("validation failed: " + describe_errors(exc)) from exc


def describe_errors(exc: ValidationError) -> str:
    """``field: message`` pairs joined by ``; `` (fields in the producer's camelCase)."""
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "event"
        parts.append(f"{field}: {error['msg']}")
    return "; ".join(parts)
