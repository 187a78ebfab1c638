"""A server with every security setting on: API keys, CORS, TLS, and a password-protected Redis over TLS.

One server for all the security and contract tests (a server start is the
slow part): ``secured`` holds its URL, the certificate a client verifies it
with, and a valid key.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.net import free_port, wait_for_port
from harness.server import LocalServer
from tests.fixtures.server import StartServer
from tests.fixtures.tls import self_signed

API_KEY = "test-key-0123456789abcdef"
SECOND_KEY = "second-key-0123456789abcdef"
REDIS_PASSWORD = "redis-pw-0123456789"
ALLOWED_ORIGIN = "https://app.example"


@dataclass(frozen=True)
class PrivateRedis:
    port: int
    password: str
    cafile: Path

    def url(self, password: str | None = None, tls: bool = True) -> str:
        scheme, query = ("rediss", f"?ssl_ca_certs={self.cafile}") if tls else ("redis", "")
        return f"{scheme}://:{password or self.password}@127.0.0.1:{self.port}/0{query}"


@dataclass(frozen=True)
class Secured:
    server: LocalServer
    cafile: Path
    redis: PrivateRedis

    @property
    def base_url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def private_redis(tls_files: tuple[Path, Path]) -> Iterator[PrivateRedis]:
    """A redis-server of our own with ``requirepass``, speaking TLS only (``rediss://``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to start a password-protected Redis")
    cert, key = tls_files
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            REDIS_PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
    except TimeoutError:
        process.kill()
        _, err = process.communicate()
        pytest.skip(f"this redis-server cannot serve TLS: {err.decode(errors='replace')[-300:]}")
    yield PrivateRedis(port, REDIS_PASSWORD, cert)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def secured(start_server: StartServer, tls_files: tuple[Path, Path], private_redis: PrivateRedis) -> Secured:
    cert, key = tls_files
    server = start_server(
        {
            "API_KEYS": f"{API_KEY},{SECOND_KEY}",
            "METRICS_REQUIRE_API_KEY": "true",
            "CORS_ALLOW_ORIGINS": ALLOWED_ORIGIN,
            "SSL_CERTFILE": str(cert),
            "SSL_KEYFILE": str(key),
            "REDIS_URL": private_redis.url(),
            "LOG_LEVEL": "DEBUG",
        }
    )
    return Secured(server, cert, private_redis)
