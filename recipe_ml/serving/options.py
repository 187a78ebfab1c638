"""The ranking options of one request, read from it once.

A request's options become a ``RankOptions`` at the edge of the engine, and
everything the engine derives from them is built from that one object: the
cache key of each user's answer (one encoding for a whole batch) and the
model's queries (``recipe_ml.serving.wire.RankQuery.of``). So the request
never changes shape on its way down, and no option is validated twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from functools import cached_property


@dataclass(frozen=True)
class RankOptions:
    """What a ranking request asks besides whom for: every field a ``RankQuery`` takes from the request.

    The values come from a validated request (``recipe_ml.serving.schemas``),
    so nothing here checks them again.
    """

    top_k: int
    exclude_recipe_ids: list[int]
    include_recipe_ids: list[int] | None
    diversity: float
    max_fsa_score: float | None
    personalization: float | None = None
    """Similar recipes have none (no user to personalise for)."""
    require_tags: list[str] = field(default_factory=list)
    exclude_tags: list[str] = field(default_factory=list)
    """The catalogue filters, as the request names them: part of the key; ``recipe_ml.catalogue.filters``
    turns them into recipe ids (the exclusions and candidates) when the answer is ranked."""

    @cached_property
    def key(self) -> str:
        """These options as one compact JSON array (field order): the request's part of a cache key."""
        return json.dumps([getattr(self, field.name) for field in fields(self)], separators=(",", ":"))
