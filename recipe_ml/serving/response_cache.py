"""The engine's response cache: what a key is made of, how a hit is read back, which answers are kept.

A key names the model versions the chain serves when the request arrives
(``resp:<versions>:<endpoint>:<request>``: they change when a promoted
version swaps in), the endpoint and the request, so a new model version
never serves old answers. Only answers of the preferred model's version the
key names are kept: a fallback answer must not outlive the outage it covered
for a whole TTL, nor an answer of a version swapped in since be kept under
the old version's key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from recipe_ml.config import Settings
from recipe_ml.events.schema import new_recommendation_id
from recipe_ml.serving.backends import Backend
from recipe_ml.serving.schemas import Body, RecipeResponse, SimilarRecipesResponse, SimilarUsersResponse
from recipe_ml.serving.telemetry import CACHE
from recipe_ml.storage.base import ResponseCache
from recipe_ml.storage.offload import StorageCalls

R = TypeVar("R", bound=Body)


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (``time.perf_counter``), as responses report them."""
    return round((time.perf_counter() - started) * 1000.0, 3)


@dataclass(frozen=True)
class Serving:
    """The versions one request is keyed on: all of the chain (``key``), the preferred model's (``head``)."""

    key: str
    head: str


class CachedResponses:
    """The response cache as the engine uses it, through ``offload`` (never on the event loop when remote)."""

    def __init__(
        self, cache: ResponseCache, offload: StorageCalls, chain: Sequence[Backend], settings: Settings
    ) -> None:
        self._cache = cache
        self._offload = offload
        self._settings = settings
        self._chain = list(chain)

    def serving(self, catalogue_version: int | None) -> Serving:
        """The versions serving now, as this process last heard (a swap changes them): take it once per request.

        ``catalogue_version`` is the catalogue's an answer was filtered with (None: an answer of users, which
        no catalogue change touches): an answer cached before a recipe was hidden or retagged is never read.
        """
        versions = "|".join(f"{b.name}={b.version}" for b in self._chain) + f"|catalogue={catalogue_version}"
        return Serving(hashlib.sha1(versions.encode()).hexdigest()[:12], self._chain[0].version)

    @staticmethod
    def key(endpoint: str, request: str, serving: Serving) -> str:
        """The key of one answer: ``request`` is what the answer depends on, encoded (JSON)."""
        return f"resp:{serving.key}:{endpoint}:{request}"

    async def read(self, endpoint: str, key: str, response_type: type[R], started: float) -> R | None:
        """The cached answer of ``key``, marked cached, or None (a miss)."""
        return self._hit(endpoint, await self._offload(self._cache.get, key), response_type, started)

    async def read_many(
        self, endpoint: str, keys: Sequence[str], response_type: type[R], started: float
    ) -> list[R | None]:
        """``read`` of each key, in one round trip."""
        raws = await self._offload(self._cache.get_many, keys)
        return [self._hit(endpoint, raw, response_type, started) for raw in raws]

    @staticmethod
    def _hit(endpoint: str, raw: bytes | None, response_type: type[R], started: float) -> R | None:
        """The answer a lookup found, marked cached, with an id of its own (counted as a hit or a miss)."""
        CACHE.labels(endpoint, "miss" if raw is None else "hit").inc()
        if raw is None:
            return None
        return response_type.model_validate_json(raw).model_copy(
            update={"cached": True, "latency_ms": elapsed_ms(started), "recommendation_id": new_recommendation_id()}
        )

    async def keep(
        self,
        key: str,
        response: RecipeResponse | SimilarUsersResponse | SimilarRecipesResponse,
        serving: Serving,
        user_id: int | None,
    ) -> None:
        """Cache ``response`` (its encoding, which the client is sent too) if the version the key names answered.

        That version is the preferred model's (``serving.head``), so a fallback answer is never kept.
        ``user_id`` ties the entry to the user whose interactions invalidate it.
        """
        ttl = self._settings.cache_ttl_seconds
        if response.model_version == serving.head and ttl > 0:
            await self._offload(self._cache.set, key, response.encoded, ttl, user_id=user_id)
