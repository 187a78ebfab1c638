"""Settings that the service cannot run with are refused when read, naming the variable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recipe_ml.config import SettingsError, check_redis_url, get_settings, parse_duration


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
        ("RETRAIN_INTERVAL", "weekly", "RETRAIN_INTERVAL: Value error, 'weekly' is not a duration"),
        ("MODEL_WATCH_SECONDS", "-1", "MODEL_WATCH_SECONDS: Input should be greater than or equal to 0"),
        ("GATE_NDCG_TOLERANCE", "1", "GATE_NDCG_TOLERANCE: Input should be less than 1"),
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


def test_redis_urls_are_checked_by_scheme_only() -> None:
    assert check_redis_url(None) is None and check_redis_url(" ") is None
    assert check_redis_url("rediss://:pw@host:6380/2") == "rediss://:pw@host:6380/2"
    with pytest.raises(ValueError, match="got scheme 'http'") as error:
        check_redis_url("http://user:secret@x")
    assert "secret" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("24h", 86400.0), ("7d", 604800.0), ("1.5h", 5400.0)],
)
def test_durations_are_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
