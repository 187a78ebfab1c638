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
import os

import bentoml

from edge.app import create_app, create_docs_app, service_config
from edge.compat import bound_header_reads, cache_mime_types, release_request_timers
from edge.heap import freeze_after_load
from edge.hotswap import served_slot, start_watching
from edge.middleware import ErrorsAsProblems
from edge.model_store import check_models, serving_tag
from edge.remote import RemoteBackend
from edge.serve_env import check_serve_env, dependency_graph
from recipe_ml.config import get_settings
from recipe_ml.logs import escape_log_messages
from recipe_ml.models import CHAIN, KINDS, REGISTRY
from recipe_ml.serving.backends import Backend, LocalBackend
from recipe_ml.serving.engine import RecommendationEngine
from recipe_ml.serving.slot import SlotWatcher
from recipe_ml.storage import open_cache, open_catalogue, open_interaction_store
from runners.als import ALSRunner
from runners.base import batching_options
from runners.two_tower import TwoTowerRunner

DECORATION_SETTINGS = get_settings()
"""The settings as the service class is decorated, at import: BentoML takes the service's options (workers,
timeout, port, CORS, TLS) and its mounted /api app then, and ``bentoml serve`` checks the models before any
worker starts. Everything else reads the settings when it runs (``RecipeService.__init__``, ``create_app``'s
argument)."""

check_models({REGISTRY[kind].setting.upper(): DECORATION_SETTINGS.model_name(kind) for kind in KINDS})
release_request_timers()
cache_mime_types()
bound_header_reads(DECORATION_SETTINGS.request_header_timeout_seconds)
escape_log_messages()


# http: HOST (127.0.0.1) and PORT (8000) unless `bentoml serve --host/--port` say otherwise, and
# CORS_ALLOW_ORIGINS; ssl: SSL_CERTFILE / SSL_KEYFILE; BentoML's own HTTP metrics off.
@bentoml.service(
    name="recipe_ml_service",
    workers=DECORATION_SETTINGS.workers,
    # A request may wait RUNNER_TIMEOUT_SECONDS on each runner in turn, then
    # score popularity here: past three of them it is stuck, not slow.
    traffic={"timeout": 3 * DECORATION_SETTINGS.runner_timeout_seconds},
    # Ready means this process answers: with a runner out, popularity or ALS
    # does. BentoML's default also fails /readyz while a runner is out, and
    # Kubernetes would then take every API replica out of its Service.
    runner_probe={"enabled": False},
    **service_config(DECORATION_SETTINGS),
)
@bentoml.asgi_app(create_docs_app(DECORATION_SETTINGS), path="/")
@bentoml.asgi_app(create_app(DECORATION_SETTINGS), path="/api")
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
        hop_limit = batching_options(settings)["max_batch_size"]  # the most queries a runner takes at once
        chain: list[Backend] = []
        self._watchers: list[SlotWatcher] = []
        for kind in CHAIN:
            if REGISTRY[kind].runner is None:
                slot, watcher = served_slot(kind, settings)
                chain.append(LocalBackend(slot))
                self._watchers.append(watcher)
            else:
                tag = serving_tag(settings.model_name(kind))
                chain.append(RemoteBackend(kind, runners[kind], tag, hop_limit, settings.runner_timeout_seconds))
        cache = open_cache(settings.redis_url)
        store = open_interaction_store(
            settings.redis_url,
            settings.popularity_half_life_hours,
            max_users=settings.memory_max_users,
            max_recipes=settings.memory_max_recipes,
        )
        catalogue = open_catalogue(settings.redis_url, settings.catalogue_max_recipes)
        self.engine = RecommendationEngine(chain, cache=cache, store=store, settings=settings, catalogue=catalogue)
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


# Outside BentoML's router and CORS middleware: their plain-text 404, 405 and refused preflights
# become problem+json bodies.
assert isinstance(RecipeService, bentoml.Service)  # what @bentoml.service made of the class
RecipeService.add_asgi_middleware(ErrorsAsProblems)

# A service started alone (deploy/k8s/) must name itself and every dependency right.
check_serve_env(os.environ, dependency_graph(RecipeService))
