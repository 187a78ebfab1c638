"""Service configuration, read once from the environment and ``.env``.

Every setting has the default of the embedded mode: no Redis and no Kafka
configured means an in-process cache and HTTP ingestion of interactions.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "training_artifacts" / "data"
REPORTS_DIR = REPO_ROOT / "training_artifacts" / "reports"


class Settings(BaseSettings):
    """Environment variables of the API, the runners and the consumer."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    debug: bool = False
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    device: Literal["cpu", "cuda"] = "cpu"
    torch_threads: int = Field(default=2, ge=1)
    """Threads torch uses to train and fold in the Two-Tower (a CPU share, not a model property)."""

    redis_url: str | None = None
    """``redis://host:port/db`` shares cache and interaction state; unset = in-process."""
    kafka_bootstrap_servers: str | None = None
    """Comma-separated brokers; unset = interactions arrive over HTTP only."""
    kafka_topic: str = "interactions"
    kafka_dlq_topic: str = "interactions.dlq"
    kafka_group_id: str = "recipe-ml-consumer"
    consumer_metrics_port: int = Field(default=9101, ge=1, le=65535)
    """Prometheus ``/metrics`` port of the Kafka consumer process."""

    precompute_embeddings: bool = True
    max_batch_size: int = Field(default=100, ge=1)
    max_top_k: int = Field(default=100, ge=1)
    mmr_diversity_weight: float = Field(default=0.3, ge=0.0, le=1.0)
    cache_ttl_seconds: int = Field(default=300, ge=0)
    runner_timeout_seconds: float = Field(default=2.0, gt=0)

    popularity_half_life_hours: float = Field(default=24.0, gt=0)
    """Half-life of a live interaction's weight in trending popularity."""

    # One per row of ``recipe_ml.models.REGISTRY`` (a test holds them together):
    # the model store name to serve, ``name`` (latest version) or ``name:version``.
    two_tower_model: str = "recipe_two_tower"
    als_model: str = "recipe_als"
    popularity_model: str = "recipe_popularity"

    def model_name(self, kind: str) -> str:
        """The stored model to serve for a model kind (its ``<kind>_model`` setting)."""
        name: str = getattr(self, f"{kind}_model")
        return name


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment is read once)."""
    return Settings()
