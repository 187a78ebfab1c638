"""The engine's response cache: what a key is made of, how a hit is read back, which answers are kept.

A key names the model versions of the chain, the endpoint and the request
(``resp:<versions>:<endpoint>:<request>``), so a new model version never
serves old answers. Only the preferred model's answers are kept: a fallback
answer must not outlive the outage it covered for a whole TTL.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import TypeVar

from recipe_ml.config import Settings
from recipe_ml.serving.backends import Backend
from recipe_ml.serving.schemas import Body
from recipe_ml.serving.telemetry import CACHE
from recipe_ml.storage.base import ResponseCache
from recipe_ml.storage.offload import StorageCalls

R = TypeVar("R", bound=Body)


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (``time.perf_counter``), as responses report them."""
    return round((time.perf_counter() - started) * 1000.0, 3)


class CachedResponses:
    """The response cache as the engine uses it, through ``offload`` (never on the event loop when remote)."""

    def __init__(
        self, cache: ResponseCache, offload: StorageCalls, chain: Sequence[Backend], settings: Settings
    ) -> None:
        self._cache = cache
        self._offload = offload
        self._settings = settings
        self._preferred = chain[0].name
        versions = "|".join(f"{b.name}={b.version}" for b in chain)
        self._versions = hashlib.sha1(versions.encode()).hexdigest()[:12]

    def key(self, endpoint: str, request: str) -> str:
        """The key of one answer: ``request`` is what the answer depends on, encoded (JSON)."""
        return f"resp:{self._versions}:{endpoint}:{request}"

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
        """The answer a lookup found, marked cached (counted as a hit or a miss)."""
        CACHE.labels(endpoint, "miss" if raw is None else "hit").inc()
        if raw is None:
            return None
        return response_type.model_validate_json(raw).model_copy(
            update={"cached": True, "latency_ms": elapsed_ms(started)}
        )

    async def keep(self, key: str, response: Body, model_used: str, user_id: int | None) -> None:
        """Cache ``response`` (its encoding, which the client is sent too) if the preferred model answered.

        ``user_id`` ties the entry to the user whose interactions invalidate it.
        """
        ttl = self._settings.cache_ttl_seconds
        if model_used == self._preferred and ttl > 0:
            await self._offload(self._cache.set, key, response.encoded, ttl, user_id=user_id)
