"""Ports on 127.0.0.1 for the processes the harness starts (servers, brokers, private Redis), and their readiness."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until 127.0.0.1:``port`` accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.05)


class ProcessExitedError(RuntimeError):
    """The process exited while something waited for it to answer."""


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
