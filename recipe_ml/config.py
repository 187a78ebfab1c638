"""Service configuration, read once from the environment and ``.env``.

Every setting has the default of the embedded mode: no Redis and no Kafka
configured means an in-process cache and HTTP ingestion of interactions.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recipe_ml.experiments import Experiment, experiment_of

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "training_artifacts" / "data"
REPORTS_DIR = REPO_ROOT / "training_artifacts" / "reports"
MIN_API_KEY_LENGTH = 16
"""Shorter keys are guessable; the service refuses to start with one."""
REDIS_SCHEMES = ("redis", "rediss")
DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(text: str | float) -> float:
    """Seconds of ``90``, ``90s``, ``30m``, ``24h`` or ``7d``; ``ValueError`` for anything else or zero."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a duration: a number of seconds, or with a unit s, m, h or d (24h)")
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError("a duration must be more than 0 seconds")
    return seconds


EXAMPLE_SECRET_PREFIX = "change-me"
"""How every value of deploy/secrets.env.example starts: a placeholder, refused as a secret at start-up."""


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

    # Errors never echo the input: it holds API keys and passwords.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    debug: bool = False
    host: str = "127.0.0.1"
    """The interface the API (and the consumer's metrics) listen on: loopback unless told otherwise."""
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    device: Literal["cpu", "cuda"] = "cpu"
    torch_threads: int = Field(default=2, ge=1)
    """Threads torch uses to train the Two-Tower (a CPU share, not a model property; serving folds in with numpy)."""

    redis_url: str | None = None
    """``redis://host:port/db`` shares cache and interaction state; unset = in-process."""
    kafka_bootstrap_servers: str | None = None
    """Comma-separated brokers; unset = interactions arrive over HTTP only."""
    kafka_topic: str = "interactions"
    kafka_dlq_topic: str = "interactions.dlq"
    kafka_group_id: str = "recipe-ml-consumer"
    consumer_metrics_port: int = Field(default=9101, ge=1, le=65535)
    """Prometheus ``/metrics`` port of the Kafka consumer process."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    """CA bundle that signed the brokers' certificates (SSL, SASL_SSL); unset = the system's CAs."""

    precompute_embeddings: bool = True
    max_batch_size: int = Field(default=100, ge=1)
    max_top_k: int = Field(default=100, ge=1)
    mmr_diversity_weight: float = Field(default=0.3, ge=0.0, le=1.0)
    cache_ttl_seconds: int = Field(default=300, ge=0)
    runner_timeout_seconds: float = Field(default=2.0, gt=0)
    ann_min_recipes: int = Field(default=50_000, ge=1)
    """From this many recipes on, the runners score the recipe index's candidates instead of every recipe."""

    api_keys: SecretStr | None = None
    """Comma-separated keys; set = every /api route but health needs ``Authorization: Bearer`` or ``X-API-Key``."""
    metrics_require_api_key: bool = False
    """With API_KEYS: /api/metrics and the root /metrics need a key too (Prometheus sends it as a bearer token)."""
    cors_allow_origins: str | None = None
    """Comma-separated origins allowed to call the API from a browser; unset = no CORS headers."""
    cors_allow_credentials: bool = False
    ssl_certfile: Path | None = None
    """PEM certificate (chain): set with SSL_KEYFILE, the API serves HTTPS only."""
    ssl_keyfile: Path | None = None
    max_request_bytes: int = Field(default=1024 * 1024, ge=1)
    """Larger request bodies are refused with 413 before they are read."""
    request_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection whose request headers are not complete this long after it opened (or after the
    previous answer on it) is answered 408 and closed: a slow client cannot hold a connection."""

    popularity_half_life_hours: float = Field(default=24.0, gt=0)
    """Half-life of a live interaction's weight in trending popularity."""
    memory_max_users: int = Field(default=10_000, ge=1)
    """In-process store only (no REDIS_URL): users whose recent interactions are kept, least recently active
    forgotten first."""
    memory_max_recipes: int = Field(default=50_000, ge=1)
    """In-process store only: recipes with a trending counter, least recently interacted with forgotten first."""

    kafka_recipes_topic: str = "recipes"
    """Catalogue changes the platform publishes (``recipe_ml.catalogue.records``), applied by ``recipe-ml consume``
    beside the interactions; invalid records go to KAFKA_DLQ_TOPIC."""
    catalogue_max_recipes: int = Field(default=1_000_000, ge=1)
    """Most recipes the catalogue holds: past it a new recipe is refused (409, or the DLQ), so no stream of
    new ids grows it without end. Existing recipes can always be updated."""
    fold_in_min_users: int = Field(default=3, ge=1)
    """A recipe the models were not trained on is folded into the Two-Tower and ALS (personal lists, similar
    recipes) once this many users the models know interacted with it; before, it is served by trending alone."""
    fresh_recipe_slots: int = Field(default=1, ge=0, le=1)
    """Positions of the top 10 (the 10th) given to a recently published recipe the models do not know and too few
    users have tried yet (FOLD_IN_MIN_USERS), so that a new recipe is ever shown at all; 0 turns it off."""
    fresh_recipe_days: float = Field(default=14.0, gt=0)
    """How recent (by the catalogue's ``published_at``) a recipe must be to take the fresh slot."""
    catalogue_bulk_limit: int = Field(default=1000, ge=1)
    """Most records one ``POST /api/recipes/bulk`` takes (applied all or none)."""

    experiments: Path | None = None
    """A YAML or JSON file declaring the running experiment (``recipe_ml.experiments``); unset = none."""
    kafka_recommendations_topic: str = "recommendations"
    """Where the impression log goes when KAFKA_BOOTSTRAP_SERVERS is set."""
    kafka_attributions_topic: str = "attributions"
    """Where the attributed interactions go when KAFKA_BOOTSTRAP_SERVERS is set (without Kafka: the impression log)."""
    attribution_window_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    """How long after an answer an interaction carrying its ``recommendationId`` is attributed to it."""
    impression_log_enabled: bool = True
    """False: no impression records and no shown lists kept, for a deployment that must not record what each
    user was shown, or that runs no experiment and wants no per-answer logging work. Nothing is attributed
    then: an interaction carrying a ``recommendationId`` is applied and counted unattributed, ``unknown``
    (a consumer with it false publishes no attribution records either: set it alike for both). Answers keep
    their ``recommendation_id`` and ``variant``."""
    impression_log_path: Path | None = None
    """Without Kafka: the rotating JSONL file of the impression log; unset = an in-process buffer only."""
    impression_log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Size at which the JSONL impression log rotates (five older files are kept)."""
    impression_queue_size: int = Field(default=10_000, ge=1)
    """Impressions waiting to be published; past it an impression is dropped (and counted), never waited for."""

    @field_validator("host")
    @classmethod
    def _host_is_an_address(cls, host: str) -> str:
        """BentoML binds an IP address, not a name: a host name here would stop it later, less clearly."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"HOST must be an IP address (127.0.0.1, 0.0.0.0, ::1), got {host!r}") from None
        return host

    model_watch_seconds: float = Field(default=10.0, ge=0)
    """How often the API and each runner look for a newly promoted version in the model store; 0 = never."""
    gate_ndcg_tolerance: float = Field(default=0.02, ge=0, lt=1)
    """How far below the serving version's nDCG@20 (a share of it) a candidate may be and still be promoted."""
    gate_min_coverage: float = Field(default=0.15, ge=0, le=1)
    """Lowest coverage@10 of a promoted model with a personal scorer."""
    gate_min_personalisation: float = Field(default=0.5, ge=0, le=1)
    """Lowest personalisation@10 of a promoted model with a personal scorer."""
    retrain_interval: float = 24 * 3600.0
    """Seconds between two runs of ``recipe-ml trainer`` (written ``24h``, ``30m``, ``7d`` or seconds)."""

    @field_validator("retrain_interval", mode="before")
    @classmethod
    def _duration(cls, value: str | float) -> float:
        return parse_duration(value)

    @field_validator("experiments")
    @classmethod
    def _experiment_loads(cls, path: Path | None) -> Path | None:
        """A malformed file stops the start-up, its problem named (``ExperimentError`` is a ``ValueError``)."""
        experiment_of(path)
        return path

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        return check_redis_url(url)

    # One per row of ``recipe_ml.models.REGISTRY`` (a test holds them together):
    # the model store name to serve, ``name`` (the promoted version, else the
    # latest) or ``name:version`` (that version, pinned).
    two_tower_model: str = "recipe_two_tower"
    als_model: str = "recipe_als"
    popularity_model: str = "recipe_popularity"

    def experiment(self) -> Experiment:
        """The running experiment (read once), ``NO_EXPERIMENT`` without ``EXPERIMENTS``."""
        return experiment_of(self.experiments)

    def model_name(self, kind: str) -> str:
        """The stored model to serve for a model kind (its ``<kind>_model`` setting)."""
        name: str = getattr(self, f"{kind}_model")
        return name

    @model_validator(mode="after")
    def _security_settings_fit_together(self) -> Self:
        """A bad security setting stops the process at start-up, naming the variable (never its secret value)."""
        if self.api_keys is not None and any(len(key) < MIN_API_KEY_LENGTH for key in self.api_key_list()):
            raise ValueError(f"API_KEYS: every key must be at least {MIN_API_KEY_LENGTH} characters")
        self._check_no_example_secret()
        self._check_tls()
        self._check_kafka_security()
        return self

    @model_validator(mode="after")
    def _workers_share_their_state(self) -> Self:
        """Workers are processes: without Redis each would keep a catalogue, live interactions and a cache of its
        own, and a client's next request could meet another worker that never heard of its last one."""
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                f"WORKERS={self.workers} needs REDIS_URL: without it each worker keeps its own catalogue, "
                "live interactions and cache (one worker, or Redis shared by all)"
            )
        return self

    def api_key_list(self) -> list[str]:
        """The configured API keys; empty = no authentication."""
        raw = "" if self.api_keys is None else self.api_keys.get_secret_value()
        return [key.strip() for key in raw.split(",") if key.strip()]

    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in (self.cors_allow_origins or "").split(",") if origin.strip()]

    def _check_no_example_secret(self) -> None:
        """A secret copied from deploy/secrets.env.example as it is would be public: refuse it, naming the variable."""
        redis_password = urlsplit(self.redis_url).password if self.redis_url else None
        sasl_password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        examples = [
            name
            for name, values in (
                ("API_KEYS", self.api_key_list()),
                ("REDIS_URL", [redis_password or ""]),
                ("KAFKA_SASL_PASSWORD", [sasl_password or ""]),
            )
            if any(value.startswith(EXAMPLE_SECRET_PREFIX) for value in values)
        ]
        if examples:
            raise ValueError(
                f"{', '.join(examples)}: still the {EXAMPLE_SECRET_PREFIX}-... placeholder of "
                "deploy/secrets.env.example; set a real secret (make compose-secrets writes random ones)"
            )

    def _check_tls(self) -> None:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("SSL_CERTFILE and SSL_KEYFILE must be set together")
        if self.ssl_certfile is None or self.ssl_keyfile is None:
            return
        for name, path in (("SSL_CERTFILE", self.ssl_certfile), ("SSL_KEYFILE", self.ssl_keyfile)):
            if not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"SSL_CERTFILE={self.ssl_certfile} / SSL_KEYFILE={self.ssl_keyfile}: "
                f"not a certificate and its key ({exc})"
            ) from exc

    def _check_kafka_security(self) -> None:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl:
            missing = [
                name
                for name, value in (
                    ("KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                    ("KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs {', '.join(missing)}")
        elif self.kafka_sasl_mechanism or self.kafka_sasl_username or self.kafka_sasl_password:
            raise ValueError(
                "KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD need "
                f"KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL (it is {self.kafka_security_protocol})"
            )
        if self.kafka_ssl_cafile is not None:
            if not self.kafka_security_protocol.endswith("SSL"):
                raise ValueError(
                    "KAFKA_SSL_CAFILE needs KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL "
                    f"(it is {self.kafka_security_protocol})"
                )
            if not self.kafka_ssl_cafile.is_file():
                raise ValueError(f"KAFKA_SSL_CAFILE={self.kafka_ssl_cafile}: no such file")


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
            # A check across settings has no variable of its own: its message names them.
            f"{where}: {error['msg']}"
            if (where := ".".join(str(part) for part in error["loc"]).upper())
            else error["msg"]
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise SettingsError(f"invalid settings: {problems}") from None
