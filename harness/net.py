"""Ports on 127.0.0.1 for the processes the harness starts (servers, brokers, private Redis), and their readiness."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


class ProcessExitedError(RuntimeError):
    """The process that was to answer (listen on a port, serve a URL) exited first (a bad option...)."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until 127.0.0.1:``port`` accepts connections.

    With ``process`` (the one that is to listen), its exit ends the wait at
    once with ``ProcessExitedError``: a process that cannot start is told
    apart from a slow one, which only a timeout ends.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process is not None and process.poll() is not None:
                raise ProcessExitedError(f"{process.args!r} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.05)


def wait_for_200(url: str, process: subprocess.Popen[bytes], timeout_seconds: float, *, verify: bool = True) -> bool:
    """True once ``GET url`` answers 200, False after ``timeout_seconds``; raises if ``process`` ends first."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProcessExitedError(f"exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=3, verify=verify).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False
