"""Service configuration, read once from the environment and ``.env``.

Every setting has the default of the embedded mode: no Redis and no Kafka
configured means an in-process cache and HTTP ingestion of interactions.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "training_artifacts" / "data"
REPORTS_DIR = REPO_ROOT / "training_artifacts" / "reports"
REDIS_SCHEMES = ("redis", "rediss")


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""


def check_redis_url(url: str | None) -> str | None:
    """``url`` when it names Redis, None when unset (in-process storage); ``ValueError`` otherwise."""
    if url is None or not url.strip():
        return None
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES:
        # Only the scheme is echoed: the rest of the URL may hold a password.
        raise ValueError(
            f"REDIS_URL must start with redis:// or rediss:// (got scheme {scheme!r}); "
            "leave it unset for in-process storage"
        )
    return url


class Settings(BaseSettings):
    """Environment variables of the API, the runners and the consumer."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    debug: bool = False
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    device: Literal["cpu", "cuda"] = "cpu"

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

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        return check_redis_url(url)

    two_tower_model: str = "recipe_two_tower"
    als_model: str = "recipe_als"
    popularity_model: str = "recipe_popularity"
    """Model store names (``name`` or ``name:version``; bare name = latest)."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached: the environment is read once).

    Raises ``SettingsError`` naming each bad variable, so a server with a bad
    setting stops at start-up with that message instead of failing later.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise SettingsError(f"invalid settings: {problems}") from None
