"""The recipe recommendation API: ``bentoml serve service:RecipeService``.

Thin on purpose: the routes live in ``edge.http`` (mounted under ``/api``),
the domain logic in ``recipe_ml.serving``. The two model runners are separate
services composed with ``bentoml.depends``; the popularity model is small and
scored in this process, so it is the fallback that cannot fail. This process
never imports torch.
"""

from __future__ import annotations

import logging

import bentoml

from edge.compat import cache_mime_types, release_request_timers
from edge.heap import freeze_after_load
from edge.http import app
from edge.model_store import check_models, load_from_store, store_entry
from edge.remote import RemoteBackend
from recipe_ml.config import get_settings
from recipe_ml.events.applier import EventApplier
from recipe_ml.serving.engine import Backend, LocalBackend, RecommendationEngine
from recipe_ml.storage import open_cache, open_interaction_store
from runners.als import ALSRunner
from runners.two_tower import TwoTowerRunner

_settings = get_settings()
check_models(
    {
        "TWO_TOWER_MODEL": _settings.two_tower_model,
        "ALS_MODEL": _settings.als_model,
        "POPULARITY_MODEL": _settings.popularity_model,
    }
)
release_request_timers()
cache_mime_types()


@bentoml.service(
    name="recipe_ml_service",
    workers=_settings.workers,
    # A request may wait RUNNER_TIMEOUT_SECONDS on each runner in turn, then
    # score popularity here: past three of them it is stuck, not slow.
    traffic={"timeout": 3 * _settings.runner_timeout_seconds},
    http={"port": _settings.port},  # PORT (8000) unless `bentoml serve --port` says otherwise
)
@bentoml.asgi_app(app, path="/api")
class RecipeService:
    """Composes the runners and holds the engine (the fallback chain, cache, live store)."""

    two_tower = bentoml.depends(TwoTowerRunner)
    als = bentoml.depends(ALSRunner)

    def __init__(self) -> None:
        from recipe_ml.serving.ranker import ModelRanker  # numpy: in the worker, not the supervisor

        settings = get_settings()
        logging.getLogger("recipe_ml").setLevel("DEBUG" if settings.debug else settings.log_level)
        popularity, popularity_tag = load_from_store(settings.popularity_model)
        chain: list[Backend] = [
            RemoteBackend("two_tower", self.two_tower, str(store_entry(settings.two_tower_model).tag)),
            RemoteBackend("als", self.als, str(store_entry(settings.als_model).tag)),
            LocalBackend(ModelRanker(popularity, popularity_tag, precompute=settings.precompute_embeddings)),
        ]
        cache = open_cache(settings.redis_url)
        store = open_interaction_store(settings.redis_url, settings.popularity_half_life_hours)
        self.engine = RecommendationEngine(chain, cache=cache, store=store, settings=settings)
        self.applier = EventApplier(store=store, cache=cache)
        freeze_after_load()
