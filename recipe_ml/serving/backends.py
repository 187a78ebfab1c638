"""The links of the fallback chain: the ``Backend`` interface and the in-process ``LocalBackend``.

A runner service is a ``Backend`` too (``edge.remote.RemoteBackend``); the
engine sees only this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult

if TYPE_CHECKING:  # the API's supervisor process imports this module and needs no numpy
    from recipe_ml.serving.slot import ModelSlot, Refusal


class Backend(Protocol):
    """One model of the fallback chain: a runner service or in-process."""

    name: str
    supports_similarity: bool
    personalization: str
    """How the model picks personal positions (``Recommender.personalization``), as of the last ping."""

    @property
    def version(self) -> str:
        """The store tag of the version serving, as of the last answer or ping (part of every cache key)."""
        ...

    @property
    def refused(self) -> Refusal | None:
        """A promoted version this model's process refused to serve, as of the last ping."""
        ...

    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        """Ranked recipes for each query, in order (``found`` False where the model cannot place the user)."""
        ...

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]: ...

    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]: ...

    async def ping(self) -> bool: ...


class LocalBackend:
    """A model scored in the API process (popularity: small, cannot fail), from a slot a watcher may swap."""

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot
        model = slot.ranker.model
        self.name = model.kind
        self.supports_similarity = model.supports_similarity
        self.personalization = model.personalization

    @property
    def version(self) -> str:
        return self.slot.version

    @property
    def refused(self) -> Refusal | None:
        return self.slot.refused

    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        return self.slot.ranker.rank(queries)

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]:
        return self.slot.ranker.similar_users(queries)

    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]:
        return self.slot.ranker.similar_recipes(queries)

    async def ping(self) -> bool:
        return True
