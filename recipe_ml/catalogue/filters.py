"""The hard filters of a request (``require_tags``, ``exclude_tags``) and the hidden recipes, as recipe ids.

The API resolves a request's tags against its view of the catalogue into
the recipes the query must never return and, with ``require_tags``, the only
ones it may; they travel with the query to whichever model ranks it (a
runner, or popularity in process), which ranks among the allowed recipes
only. So no link of the fallback chain can break a filter, and a filter
never empties a finished list.

A view is one catalogue version: the engine reads the version on every
request (one ``GET`` with Redis) and loads a new snapshot only when it has
moved, so every replica filters with the catalogue as it is now. The
version is part of every cache key: an answer cached before a recipe was
hidden or retagged is never served after.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from recipe_ml.serving.options import RankOptions
from recipe_ml.storage.base import CatalogueSnapshot, CatalogueStore
from recipe_ml.storage.offload import StorageCalls

logger = logging.getLogger(__name__)

RESOLVED_FILTERS = 256
"""Distinct (require, exclude) pairs a view keeps resolved: bounded whatever tags callers send."""
NOTHING = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Resolved:
    """What a request's filters come to in one catalogue version."""

    banned: list[int]
    """Recipes never returned: the hidden ones and those with an excluded tag."""
    allowed: list[int] | None
    """With ``require_tags``: the recipes carrying all of them (and not banned); None: no such filter."""
    kept_out: dict[str, int]
    """Recipes each filter keeps out (``unavailable``, ``exclude_tags``, ``require_tags``: recorded ones without
    every required tag), for the filtered-candidates counter."""


class CatalogueView:
    """One version of the catalogue, indexed for filtering: the ids of each tag and the hidden recipes."""

    def __init__(self, snapshot: CatalogueSnapshot) -> None:
        self.version = snapshot.version
        self.size = len(snapshot.records)
        by_tag: dict[str, list[int]] = {}
        hidden: list[int] = []
        for record in snapshot.records:
            if not record.available:
                hidden.append(record.recipe_id)
            for tag in record.tags:
                by_tag.setdefault(tag, []).append(record.recipe_id)
        self._by_tag = {tag: np.unique(np.asarray(ids, dtype=np.int64)) for tag, ids in by_tag.items()}
        published = [(r.published_at, r.recipe_id) for r in snapshot.records if r.available and r.published_at]
        self.published = sorted(published, reverse=True)
        """(published_at, recipe id) of the available recipes with a publication time, newest first."""
        self._hidden = np.unique(np.asarray(hidden, dtype=np.int64))
        self._resolved: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], Resolved] = OrderedDict()

    @property
    def hidden(self) -> int:
        return int(self._hidden.size)

    def resolve(self, require: Iterable[str], exclude: Iterable[str]) -> Resolved:
        """The recipes ``require`` and ``exclude`` leave, under this version (each pair resolved once)."""
        key = (tuple(sorted(set(require))), tuple(sorted(set(exclude))))
        hit = self._resolved.get(key)
        if hit is not None:
            self._resolved.move_to_end(key)
            return hit
        resolved = self._resolve(*key)
        self._resolved[key] = resolved
        while len(self._resolved) > RESOLVED_FILTERS:
            self._resolved.popitem(last=False)
        return resolved

    def _resolve(self, require: tuple[str, ...], exclude: tuple[str, ...]) -> Resolved:
        excluded = _union(self._by_tag.get(tag, NOTHING) for tag in exclude)
        banned = np.union1d(self._hidden, excluded)
        kept_out = {"unavailable": self.hidden, "exclude_tags": int(np.setdiff1d(excluded, self._hidden).size)}
        if not require:
            return Resolved(banned.tolist(), None, kept_out)
        having = self._by_tag.get(require[0], NOTHING)
        for tag in require[1:]:
            having = np.intersect1d(having, self._by_tag.get(tag, NOTHING), assume_unique=True)
        allowed = np.setdiff1d(having, banned, assume_unique=True)
        kept_out["require_tags"] = self.size - int(having.size)
        return Resolved(banned.tolist(), allowed.tolist(), kept_out)

    def apply(self, options: RankOptions) -> tuple[RankOptions, Resolved]:
        """``options`` with the filters' recipes in its exclusions and candidates: what the model is asked."""
        resolved = self.resolve(options.require_tags, options.exclude_tags)
        include = options.include_recipe_ids
        if resolved.allowed is not None:
            allowed = resolved.allowed
            include = allowed if include is None else sorted(set(include).intersection(allowed))
        exclude = options.exclude_recipe_ids + resolved.banned if resolved.banned else options.exclude_recipe_ids
        return replace(options, exclude_recipe_ids=exclude, include_recipe_ids=include), resolved


def _union(arrays: Iterable[np.ndarray]) -> np.ndarray:
    parts = list(arrays)
    return np.unique(np.concatenate(parts)) if parts else NOTHING


class LiveCatalogue:
    """The engine's view of the catalogue store, reloaded when the store's version moves."""

    def __init__(self, store: CatalogueStore, offload: StorageCalls) -> None:
        self.store = store
        self._offload = offload
        self._view = CatalogueView(CatalogueSnapshot(-1, ()))
        """Version -1: never loaded, so the first request loads whatever the store holds."""
        self._loading = asyncio.Lock()

    async def view(self) -> CatalogueView:
        """The view of the store's current version; the last one loaded while the store is unreachable."""
        try:
            version = await self._offload(self.store.version)
            if version == self._view.version:
                return self._view
            async with self._loading:
                if version != self._view.version:
                    self._view = CatalogueView(await self._offload(self.store.snapshot))
        except self.store.unavailable as exc:
            logger.warning("catalogue store unavailable (%s); filtering with version %d", exc, self._view.version)
        return self._view


def pick_fresh(candidates: Sequence[int], user_id: int | None, shown: Sequence[int], banned: set[int]) -> int | None:
    """The fresh recipe a user's answer shows: one of ``candidates`` (newest first) not shown nor banned.

    Spread over the candidates by the user's id, so each new recipe reaches some users, not all the same one.
    """
    usable = [recipe for recipe in candidates if recipe not in banned and recipe not in shown]
    if not usable:
        return None
    return usable[(user_id or 0) % len(usable)]
