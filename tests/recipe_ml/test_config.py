"""Settings that the service cannot run with are refused when read, naming the variable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from recipe_ml.config import REPO_ROOT, Settings, SettingsError, check_redis_url, get_settings, parse_duration


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """``get_settings`` reads the environment again (it is cached per process)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RUNNER_TIMEOUT_SECONDS", "0", "RUNNER_TIMEOUT_SECONDS: Input should be greater than 0"),
        ("REDIS_URL", "http://user:secret@x", "REDIS_URL: Value error, REDIS_URL must start with redis://"),
        ("PORT", "70000", "PORT: Input should be less than or equal to 65535"),
        ("ANN_MIN_RECIPES", "a million", "ANN_MIN_RECIPES: Input should be a valid integer"),
        ("ANN_MIN_RECIPES", "0", "ANN_MIN_RECIPES: Input should be greater than or equal to 1"),
        ("HOST", "api.example", "HOST: Value error, HOST must be an IP address"),
        ("REQUEST_HEADER_TIMEOUT_SECONDS", "0", "REQUEST_HEADER_TIMEOUT_SECONDS: Input should be greater than 0"),
        ("MEMORY_MAX_USERS", "0", "MEMORY_MAX_USERS: Input should be greater than or equal to 1"),
        ("RETRAIN_INTERVAL", "weekly", "RETRAIN_INTERVAL: Value error, 'weekly' is not a duration"),
        ("MODEL_WATCH_SECONDS", "-1", "MODEL_WATCH_SECONDS: Input should be greater than or equal to 0"),
        ("GATE_NDCG_TOLERANCE", "1", "GATE_NDCG_TOLERANCE: Input should be less than 1"),
        ("IMPRESSION_LOG_ENABLED", "sometimes", "IMPRESSION_LOG_ENABLED: Input should be a valid boolean"),
    ],
)
def test_a_bad_setting_is_an_error_naming_the_variable(
    variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match="invalid settings") as error:
        get_settings()

    assert message in str(error.value)
    assert "secret" not in str(error.value)


def test_workers_above_one_need_redis_to_share_their_state(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("WORKERS", "2")

    with pytest.raises(SettingsError) as error:
        get_settings()

    assert str(error.value).startswith("invalid settings: Value error, WORKERS=2 needs REDIS_URL")

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    get_settings.cache_clear()
    assert get_settings().workers == 2


def test_redis_urls_are_checked_by_scheme_only() -> None:
    assert check_redis_url(None) is None and check_redis_url(" ") is None
    assert check_redis_url("rediss://:pw@host:6380/2") == "rediss://:pw@host:6380/2"
    with pytest.raises(ValueError, match="got scheme 'http'") as error:
        check_redis_url("http://user:secret@x")
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("API_KEYS", "change-me-api-key-0123456789"),
        ("API_KEYS", "a-real-key-0123456789abcdef,change-me-second-key-0123"),
        ("REDIS_URL", "redis://:change-me-redis-password@redis:6379/0"),
        ("REDIS_URL", "rediss://app:change-me-redis-password@redis:6380/0"),
        ("KAFKA_SASL_PASSWORD", "change-me-kafka-password"),
    ],
)
def test_an_example_secret_is_refused_naming_the_variable_not_the_value(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError, match="invalid settings") as error:
        get_settings()

    assert f"{variable}: still the change-me-... placeholder of deploy/secrets.env.example" in str(error.value)
    assert "password" not in str(error.value) and "-key-" not in str(error.value)


def test_the_example_secrets_file_as_it_is_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `cp deploy/secrets.env.example deploy/secrets.env` without editing would start the API with."""
    for name in ("API_KEYS", "REDIS_URL", "KAFKA_SASL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ValidationError) as error:
        Settings(_env_file=REPO_ROOT / "deploy/secrets.env.example")  # type: ignore[call-arg]

    assert "API_KEYS, REDIS_URL: still the change-me-... placeholder" in str(error.value)


def test_real_secrets_pass(monkeypatch: pytest.MonkeyPatch, fresh_settings: None) -> None:
    monkeypatch.setenv("API_KEYS", "0f3a9c2e7b1d4a6c8e0f2a4c6e8a0c2e")
    monkeypatch.setenv("REDIS_URL", "redis://:9d8c7b6a5f4e3d2c1b0a@redis:6379/0")

    assert get_settings().api_key_list() == ["0f3a9c2e7b1d4a6c8e0f2a4c6e8a0c2e"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("24h", 86400.0), ("7d", 604800.0), ("1.5h", 5400.0)],
)
def test_durations_are_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("false", False), ("0", False), ("true", True)])
def test_the_impression_log_is_on_unless_turned_off(
    value: str | None, enabled: bool, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    if value is None:
        monkeypatch.delenv("IMPRESSION_LOG_ENABLED", raising=False)
    else:
        monkeypatch.setenv("IMPRESSION_LOG_ENABLED", value)

    assert get_settings().impression_log_enabled is enabled
