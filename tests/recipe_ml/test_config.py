"""Settings that the service cannot run with are refused when read, naming the variable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recipe_ml.config import SettingsError, check_redis_url, get_settings


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
