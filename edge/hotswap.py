"""Serving slots bound to the model store: what each serving process loads, and how it follows promotions.

The API process (popularity) and each runner (Two-Tower, ALS) hold their
model in a ``recipe_ml.serving.slot.ModelSlot``. Every ``MODEL_WATCH_SECONDS``
a watcher resolves the kind's ``*_MODEL`` setting in the store (the promoted
version, else the latest; a pinned tag never moves) and swaps to a new
version beside the old one. There is no admin call: promoting is writing to
the store (``recipe-ml promote``), and every process sees it by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from edge.heap import after_swap
from edge.model_store import load_from_store, serving_tag
from recipe_ml.config import Settings
from recipe_ml.serving.slot import ModelSlot, SlotWatcher, every

if TYPE_CHECKING:
    from recipe_ml.serving.ranker import ModelRanker


def load_ranker(tag: str, kind: str, settings: Settings) -> ModelRanker:
    """The stored version ``tag`` ready to serve (on ``DEVICE``, vectors precomputed); it must be a ``kind`` model."""
    from recipe_ml.serving.ranker import ModelRanker  # numpy: in the worker, not the supervisor

    model, version = load_from_store(tag)
    if model.kind != kind:
        raise ValueError(f"{version} is a {model.kind} model, not {kind}")
    model.use_device(settings.device)
    return ModelRanker(
        model,
        version,
        precompute=settings.precompute_embeddings,
        ann_min_recipes=settings.ann_min_recipes,
        fold_in_min_users=settings.fold_in_min_users,
    )


def served_slot(kind: str, settings: Settings) -> tuple[ModelSlot, SlotWatcher]:
    """The slot serving ``kind`` (its version loaded now) and the watcher that keeps it on the promoted version."""
    name = settings.model_name(kind)
    slot = ModelSlot(load_ranker(serving_tag(name), kind, settings))
    watcher = SlotWatcher(
        slot,
        resolve=lambda: serving_tag(name),
        load=lambda tag: load_ranker(tag, kind, settings),
        on_swap=after_swap,  # the new version joins the frozen heap; the old one's memory goes back
    )
    return slot, watcher


def start_watching(settings: Settings, step: Callable[[], Awaitable[object]]) -> asyncio.Task[None] | None:
    """Run ``step`` every MODEL_WATCH_SECONDS on the running event loop (None: the setting is 0, no watching)."""
    if settings.model_watch_seconds <= 0:
        return None
    return asyncio.create_task(every(settings.model_watch_seconds, step))
