"""The recipe recommendation API: ``bentoml serve service:RecipeService``.

Thin on purpose: the /api app is ``edge.app`` (routes in ``edge.routes``,
documented at ``/docs``),
the domain logic in ``recipe_ml.serving``. The two model runners are separate
services composed with ``bentoml.depends``; the popularity model is small and
scored in this process, so it is the fallback that cannot fail. This process
never imports torch.
"""

from __future__ import annotations

import asyncio
import logging

import bentoml

from edge.app import app, docs_app, service_config
from edge.compat import cache_mime_types, release_request_timers
from edge.heap import freeze_after_load
from edge.hotswap import served_slot, start_watching
from edge.middleware import CorsRefusalAsProblem
from edge.model_store import check_models, serving_tag
from edge.remote import RemoteBackend
from recipe_ml.config import get_settings
from recipe_ml.models import CHAIN, KINDS, REGISTRY
from recipe_ml.serving.backends import Backend, LocalBackend
from recipe_ml.serving.engine import RecommendationEngine
from recipe_ml.serving.slot import SlotWatcher
from recipe_ml.storage import open_cache, open_interaction_store
from runners.als import ALSRunner
from runners.two_tower import TwoTowerRunner

_settings = get_settings()
check_models({REGISTRY[kind].setting.upper(): _settings.model_name(kind) for kind in KINDS})
release_request_timers()
cache_mime_types()


# http: PORT (8000) unless `bentoml serve --port` says otherwise, and CORS_ALLOW_ORIGINS;
# ssl: SSL_CERTFILE / SSL_KEYFILE.
@bentoml.service(
    name="recipe_ml_service",
    workers=_settings.workers,
    # A request may wait RUNNER_TIMEOUT_SECONDS on each runner in turn, then
    # score popularity here: past three of them it is stuck, not slow.
    traffic={"timeout": 3 * _settings.runner_timeout_seconds},
    **service_config(_settings),
)
@bentoml.asgi_app(docs_app, path="/")
@bentoml.asgi_app(app, path="/api")
class RecipeService:
    """Composes the runners and holds the engine (the fallback chain, cache, live store).

    It follows promotions every MODEL_WATCH_SECONDS: popularity, scored here,
    is swapped in its slot; the runners swap on their own, and a ping tells
    the engine (its cache keys, its health) which versions they serve.
    """

    two_tower = bentoml.depends(TwoTowerRunner)
    als = bentoml.depends(ALSRunner)

    def __init__(self) -> None:
        settings = get_settings()
        logging.getLogger("recipe_ml").setLevel("DEBUG" if settings.debug else settings.log_level)
        runners = {"two_tower": self.two_tower, "als": self.als}
        chain: list[Backend] = []
        self._watchers: list[SlotWatcher] = []
        for kind in CHAIN:
            if REGISTRY[kind].runner is None:
                slot, watcher = served_slot(kind, settings)
                chain.append(LocalBackend(slot))
                self._watchers.append(watcher)
            else:
                chain.append(RemoteBackend(kind, runners[kind], serving_tag(settings.model_name(kind))))
        cache = open_cache(settings.redis_url)
        store = open_interaction_store(settings.redis_url, settings.popularity_half_life_hours)
        self.engine = RecommendationEngine(chain, cache=cache, store=store, settings=settings)
        self._watch: asyncio.Task[None] | None = None
        freeze_after_load()

    async def _follow_promotions(self) -> None:
        for watcher in self._watchers:
            await watcher.check()
        await self.engine.refresh()

    @bentoml.on_startup  # type: ignore[untyped-decorator]
    async def watch_the_store(self) -> None:
        """Follow promotions from now on (on the worker's event loop)."""
        self._watch = start_watching(get_settings(), self._follow_promotions)

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    async def stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.cancel()


if _settings.cors_origin_list():
    # Outside BentoML's CORS middleware: a refused preflight becomes a problem+json 400.
    assert isinstance(RecipeService, bentoml.Service)  # what @bentoml.service made of the class
    RecipeService.add_asgi_middleware(CorsRefusalAsProblem)
