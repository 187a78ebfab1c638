"""The catalogue routes' logic: writing records through the counted writer, describing one recipe."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from recipe_ml.catalogue.records import RecipeFields, records_of
from recipe_ml.catalogue.writer import CatalogueWriter
from recipe_ml.serving.errors import StoreUnavailableError, UnknownRecipeError
from recipe_ml.serving.schemas import (
    BulkRecipesRequest,
    BulkRecipesWritten,
    BulkResult,
    RecipeDetails,
    RecipeWritten,
)
from recipe_ml.serving.telemetry import CATALOGUE
from recipe_ml.storage.base import CatalogueStore, InteractionStore, RecipeRecord
from recipe_ml.storage.offload import StorageCalls

D = TypeVar("D", bound=RecipeDetails)


class CatalogueEndpoints:
    """``PUT``/``GET /api/recipes/{recipe_id}`` and ``POST /api/recipes/bulk`` without a web server."""

    def __init__(
        self,
        store: CatalogueStore,
        interactions: InteractionStore,
        offload: StorageCalls,
        known: Callable[[int], bool],
    ) -> None:
        self._store = store
        self._interactions = interactions
        self._offload = offload
        self._known = known
        self._writer = CatalogueWriter(store, CATALOGUE, "api")

    async def put(self, recipe_id: int, fields: RecipeFields) -> RecipeWritten:
        """Create or replace the record (the same body again changes nothing); the record that stands after."""
        record = fields.record(recipe_id, datetime.now(UTC))
        (applied,) = await self._write([record])
        return await self._describe(recipe_id, RecipeWritten, applied=applied)

    async def bulk(self, request: BulkRecipesRequest) -> BulkRecipesWritten:
        """Every record in one write (all or none)."""
        records = records_of(request.recipes, datetime.now(UTC))
        applied = await self._write(records)
        done = sum(applied)
        results = [BulkResult(recipe_id=r.recipe_id, applied=a) for r, a in zip(records, applied, strict=True)]
        return BulkRecipesWritten(applied=done, stale=len(applied) - done, results=results)

    async def describe(self, recipe_id: int) -> RecipeDetails:
        """The recipe's record and activity; ``UnknownRecipeError`` when it has no record and no model knows it."""
        return await self._describe(recipe_id, RecipeDetails)

    async def _write(self, records: Sequence[RecipeRecord]) -> list[bool]:
        try:
            return await self._offload(self._writer.put, records)
        except self._store.unavailable as exc:
            raise StoreUnavailableError(f"catalogue store unavailable ({type(exc).__name__}); retry later") from exc

    async def _describe(self, recipe_id: int, kind: type[D], **extra: bool) -> D:
        try:
            (record,) = await self._offload(self._store.get, [recipe_id])
            (live,) = await self._offload(self._interactions.interaction_counts, [recipe_id])
        except (*self._store.unavailable, *self._interactions.unavailable) as exc:
            raise StoreUnavailableError(f"catalogue store unavailable ({type(exc).__name__}); retry later") from exc
        known = self._known(recipe_id)
        if record is None and not known and not extra:
            raise UnknownRecipeError(recipe_id)
        return kind.of(recipe_id, record, known, live, **extra)
