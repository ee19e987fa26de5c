"""The ``hello`` check against real TCP servers on loopback, run as the daemon runs it.

The fixtures (``probed_tcp_server``, ``probed_daemon``...) come with probed: installing it
registers its pytest plugin. They are synchronous, so no asyncio plugin is needed.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest
from probed import Reason, Status
from probed.testing import LoopbackServer, run_check_sync

from probed_hello.plugin import HelloCheck

Factory = Callable[..., Any]


@pytest.fixture
def smtp_like(probed_tcp_server: Factory) -> LoopbackServer:
    """Greets first, like SMTP."""
    server: LoopbackServer = probed_tcp_server(greeting=b"220 mail.test ESMTP ready\r\n")
    return server


@pytest.fixture
def ping_pong(probed_tcp_server: Factory) -> LoopbackServer:
    """Answers PING with +PONG, like Redis."""

    def pong(sock: socket.socket) -> None:
        if sock.recv(100).strip() == b"PING":
            sock.sendall(b"+PONG\r\n")

    server: LoopbackServer = probed_tcp_server(pong)
    return server


@pytest.fixture
def silent(probed_tcp_server: Factory) -> LoopbackServer:
    """Accepts and never says a word (until the client goes away)."""
    server: LoopbackServer = probed_tcp_server(hold=True)
    return server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_expected_greeting_passes_with_timings(smtp_like: LoopbackServer) -> None:
    result = run_check_sync(HelloCheck, port=smtp_like.port, expect="^220 ")
    assert result.status is Status.OK, result.message
    assert result.values["probed_hello_greeting_bytes"] > 0
    assert result.values["probed_hello_greeting_seconds"] >= 0
    assert set(result.phases) == {"connect", "greeting"}


def test_sends_a_line_first_when_asked(ping_pong: LoopbackServer) -> None:
    result = run_check_sync(HelloCheck, port=ping_pong.port, send="PING\r\n", expect="PONG")
    assert result.status is Status.OK, result.message


def test_wrong_greeting_fails_and_shows_what_came(smtp_like: LoopbackServer) -> None:
    result = run_check_sync(HelloCheck, port=smtp_like.port, expect="^SSH-2.0")
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert "220 mail.test ESMTP ready" in result.message


def test_silent_service_times_out(silent: LoopbackServer) -> None:
    result = run_check_sync(HelloCheck, timeout=0.3, port=silent.port, expect="^220 ")
    assert result.status is Status.FAIL
    assert result.reason == Reason.TIMEOUT


def test_closed_port_is_refused() -> None:
    result = run_check_sync(HelloCheck, port=_closed_port(), expect="x")
    assert result.status is Status.FAIL
    assert result.reason == Reason.CONNECTION_REFUSED


def test_invalid_pattern_is_a_validation_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid regular expression"):
        run_check_sync(HelloCheck, port=25, expect="(unclosed")


def test_the_daemon_loads_the_installed_package_and_exports_the_check(
    probed_daemon: Factory, smtp_like: LoopbackServer, tmp_path: Path
) -> None:
    """A real ``probed run``: the type comes through this package's entry point."""
    (tmp_path / "hello.yaml").write_text(
        "checks:\n"
        f"  - {{name: mail, type: hello, port: {smtp_like.port}, expect: '^220 ',"
        " interval: 1s, timeout: 500ms}\n"
    )
    daemon = probed_daemon(tmp_path)
    daemon.wait_for(lambda: daemon.metric("probed_check_up", check="mail") == 1)
    assert daemon.metric("probed_hello_greeting_bytes", check="mail") == 27
    assert daemon.get("/health/ready").status == 200
    assert daemon.checks()["mail"]["status"] == "ok"
