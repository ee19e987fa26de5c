"""The blackbox_exporter peer fixture (tests/servers/blackbox.py) against probed's ``tcp`` check.

The fixture is what the agreement tests of the check types use (same targets through Debian's
``prometheus-blackbox-exporter`` and probed in one run); here it proves itself on the simplest
shared concept: a TCP connect to a listening port passes in both, to a closed port fails in
both.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from probed.check import Status
from probed.checks.tcp import TcpCheck
from probed.testing import run_check_sync
from tests.servers._util import free_port
from tests.servers.blackbox import BlackboxExporter

MODULES = {"tcp_connect": {"prober": "tcp", "timeout": "2s"}}


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback TCP port that accepts connections (the kernel completes the handshake)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_open_and_closed_ports_agree_with_blackbox(
    blackbox_exporter: Callable[[dict[str, Any]], BlackboxExporter], listener: int
) -> None:
    bb = blackbox_exporter(MODULES)
    closed = free_port()
    for port, expected in ((listener, True), (closed, False)):
        target = f"127.0.0.1:{port}"
        samples = bb.probe("tcp_connect", target)
        assert (samples["probe_success"] == 1.0) is expected, samples
        assert "probe_duration_seconds" in samples
        result = run_check_sync(TcpCheck, address=target, timeout=2.0)
        assert (result.status is Status.OK) is expected, result


def test_debug_output_names_the_module(
    blackbox_exporter: Callable[[dict[str, Any]], BlackboxExporter], listener: int
) -> None:
    bb = blackbox_exporter(MODULES)
    text = bb.probe_text("tcp_connect", f"127.0.0.1:{listener}", debug=True)
    assert "Probe succeeded" in text
