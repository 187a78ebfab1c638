"""The interaction event as the Spring Boot backend publishes it.

camelCase is the Java producer's form; snake_case is accepted too.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class InteractionType(StrEnum):
    VIEW = "view"
    LIKE = "like"
    SAVE = "save"
    COOK = "cook"
    RATE = "rate"


class InteractionEvent(BaseModel):
    """One user × recipe interaction."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    user_id: int = Field(ge=0)
    recipe_id: int = Field(ge=0)
    interaction_type: InteractionType
    rating: int | None = Field(default=None, ge=1, le=5)
    timestamp: datetime | None = None
    event_id: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _rating_only_for_rate(self) -> InteractionEvent:
        if self.interaction_type is InteractionType.RATE and self.rating is None:
            raise ValueError("rating is required when interactionType is 'rate'")
        if self.interaction_type is not InteractionType.RATE and self.rating is not None:
            raise ValueError("rating is only allowed when interactionType is 'rate'")
        return self
