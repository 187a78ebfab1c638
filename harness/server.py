"""Start ``bentoml serve service:RecipeService`` as a subprocess and wait until it is healthy.

Shared by the benchmark (``harness/bench_api.py``) and the test fixture
(``tests/fixtures/server.py``), which both need the real process tree: its
URL, its runner processes (to freeze one) and its resident memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.net import ProcessExitedError, free_port, wait_for_200
from recipe_ml.config import REPO_ROOT
from recipe_ml.models import REGISTRY

UNSET_BY_DEFAULT = ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
"""Not inherited from the caller's environment: a server is embedded unless told otherwise."""


class ServerStartError(RuntimeError):
    """The server exited or never became healthy; the message ends with its log."""


@dataclass
class LocalServer:
    """A running ``bentoml serve`` process tree."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def processes(self) -> list[psutil.Process]:
        """``bentoml serve`` and every process under it."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def runner_process(self, kind: str) -> psutil.Process:
        """The worker process of the ``two_tower`` or ``als`` runner service."""
        name = REGISTRY[kind].runner
        for proc in self.processes():
            try:
                cmdline = proc.cmdline()
            except psutil.NoSuchProcess:
                continue
            if "--service-name" in cmdline and cmdline[cmdline.index("--service-name") + 1] == name:
                return proc
        raise LookupError(f"no worker process for runner {name}")

    def named_processes(self) -> dict[str, psutil.Process]:
        """Each process, named by its BentoML service (``serve`` for the arbiter; ``name:pid`` for a second one)."""
        named: dict[str, psutil.Process] = {}
        for proc in self.processes():
            try:
                cmdline = proc.cmdline()
            except psutil.NoSuchProcess:
                continue
            name = cmdline[cmdline.index("--service-name") + 1] if "--service-name" in cmdline else "serve"
            named[name if name not in named else f"{name}:{proc.pid}"] = proc
        return named

    def rss_by_process(self) -> dict[str, int]:
        """Resident memory of each process, named by its BentoML service (``serve`` for the arbiter)."""
        rss: dict[str, int] = {}
        for name, proc in self.named_processes().items():
            try:
                rss[name] = proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return rss

    def rss_bytes(self) -> int:
        """Resident memory of the whole process tree."""
        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self) -> None:
        """SIGTERM the process group (SIGKILL after 20 s)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


PORT_ATTEMPTS = 3
"""Fresh ports tried when the one picked was taken before ``bentoml serve`` bound it (a race on a busy machine)."""


def start_local_server(
    bentoml_home: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    port: int | None = None,
    timeout_seconds: float = 180.0,
) -> LocalServer:
    """Start a server on 127.0.0.1 and return once ``GET /api/health`` answers 200.

    A port given by the caller is used as it is; a free one picked here is picked again when another
    process took it first (``free_port`` cannot hold it until the server binds).
    """
    attempts = 1 if port else PORT_ATTEMPTS
    for attempt in range(attempts):
        try:
            return _start(bentoml_home, log_path, env, port or free_port(), timeout_seconds)
        except ServerStartError as exc:
            if "Could not bind" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable: the loop returns or raises")


def _start(
    bentoml_home: Path, log_path: Path, env: dict[str, str] | None, port: int, timeout_seconds: float
) -> LocalServer:
    full_env = {k: v for k, v in os.environ.items() if k not in UNSET_BY_DEFAULT}
    full_env.update(
        BENTOML_HOME=str(bentoml_home),
        BENTOML_DO_NOT_TRACK="true",
        OPENBLAS_NUM_THREADS="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    full_env.update(env or {})
    bentoml = Path(sys.executable).parent / "bentoml"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(bentoml), "serve", "service:RecipeService", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the whole tree
        )
    scheme = "https" if full_env.get("SSL_CERTFILE") else "http"  # the service serves TLS only, then
    server = LocalServer(f"{scheme}://127.0.0.1:{port}", process, log_path)
    try:
        # Readiness only; a test that speaks TLS checks the certificate itself.
        if wait_for_200(f"{server.base_url}/api/health", process, timeout_seconds, verify=False):
            return server
    except ProcessExitedError as exc:
        raise ServerStartError(f"bentoml serve {exc}:\n{server.log_tail()}") from None
    server.stop()
    raise ServerStartError(f"server not healthy after {timeout_seconds:.0f}s:\n{server.log_tail()}")
