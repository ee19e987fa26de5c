"""Shared helpers for fixtures that start real servers."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

from tests._require import REQUIRE_SERVICES, unavailable

__all__ = [
    "REQUIRE_SERVICES",
    "free_port",
    "port_open",
    "require_binary",
    "stop_process",
    "wait_until",
]


def require_binary(name: str, hint: str) -> str:
    """Return the path of ``name`` or skip (fail when ``PROBED_REQUIRE_SERVICES=1``)."""
    path = shutil.which(name) or (
        name if os.path.isabs(name) and os.access(name, os.X_OK) else None
    )
    if path:
        return path
    unavailable(f"{name} not found ({hint})")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def refused_port(host: str = "127.0.0.1") -> Iterator[int]:
    """A port where connecting is refused for as long as the block runs: bound, never listening,
    so no server started meanwhile (one picking a :func:`free_port`, say) can take it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        yield int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def wait_for_port_or_exit(
    process: subprocess.Popen[bytes], host: str, port: int, timeout: float, what: str
) -> bool:
    """Wait until ``host:port`` accepts connections or ``process`` exits; True if it listens.

    :raises TimeoutError: neither happened within ``timeout`` (the caller stops the process).
    """
    wait_until(lambda: port_open(host, port) or process.poll() is not None, timeout, what)
    return process.poll() is None


def port_open(host: str, port: int) -> bool:
    """True if a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM ``process`` (if any), SIGKILL it after ``timeout`` seconds, and reap it."""
    if process is None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
