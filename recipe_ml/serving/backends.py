"""The links of the fallback chain: the ``Backend`` interface and the in-process ``LocalBackend``.

A runner service is a ``Backend`` too (``edge.remote.RemoteBackend``); the
engine sees only this interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from recipe_ml.serving.wire import RankQuery, RankResult, SimilarQuery, SimilarRecipeQuery, SimilarResult

if TYPE_CHECKING:  # the API's supervisor process imports this module and needs no numpy
    from recipe_ml.serving.ranker import ModelRanker


class Backend(Protocol):
    """One model of the fallback chain: a runner service or in-process."""

    name: str
    version: str
    supports_similarity: bool
    personalization: str
    """How the model picks personal positions (``Recommender.personalization``), as of the last ping."""

    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        """Ranked recipes for each query, in order (``found`` False where the model cannot place the user)."""
        ...

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]: ...

    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]: ...

    async def ping(self) -> bool: ...


class LocalBackend:
    """A model scored in the API process (popularity: small, cannot fail)."""

    def __init__(self, ranker: ModelRanker) -> None:
        self.ranker = ranker
        self.name = ranker.model.kind
        self.version = ranker.version
        self.supports_similarity = ranker.model.supports_similarity
        self.personalization = ranker.model.personalization

    async def rank(self, queries: list[RankQuery]) -> list[RankResult]:
        return self.ranker.rank(queries)

    async def similar_users(self, queries: list[SimilarQuery]) -> list[SimilarResult]:
        return self.ranker.similar_users(queries)

    async def similar_recipes(self, queries: list[SimilarRecipeQuery]) -> list[RankResult]:
        return self.ranker.similar_recipes(queries)

    async def ping(self) -> bool:
        return True
