"""The one skip policy of the suite: every environment skip goes through here.

A test that needs something of the machine (a server binary, root, IPv6 on loopback, a port
below 1024, Linux ``/proc``) asks for it *before* it runs, by a capability probe, never by
looking at the outcome of the check under test::

    from tests._require import require, requires, unavailable, ipv6_loopback, is_root

    pytestmark = requires(MEMINFO.exists(), "needs Linux /proc/meminfo")   # whole module

    @requires(ipv6_loopback, "no IPv6 on loopback (::1)")                  # one test; a callable
    async def test_ipv6_address() -> None: ...                             # is probed at setup

    def test_raw_socket() -> None:
        require(is_root(), "raw ICMP sockets need root")                    # inside a test/fixture
        ...

    unavailable("this redis-server build has no TLS support")               # after a failed probe

Without ``PROBED_REQUIRE_SERVICES=1`` a missing capability skips the test with the reason; with
it (CI sets it) the same reason is a test failure, so a CI machine that lacks something cannot
silently run fewer tests. Import errors never skip: import what the ``test`` extra installs.
``tests/test_skip_policy.py`` fails when a skip bypasses this module, and the conftest turns any
other skip (from a plugin, say) into a failure under ``PROBED_REQUIRE_SERVICES=1`` too.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import NoReturn

import pytest

REQUIRE_SERVICES = os.environ.get("PROBED_REQUIRE_SERVICES") == "1"
"""True when every capability the suite asks for must be there (CI)."""

MARKER = "requires"


def unavailable(reason: str) -> NoReturn:
    """Skip the running test because the machine lacks something; fail under the CI setting."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason}; PROBED_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(reason)


def require(available: bool, reason: str) -> None:
    """:func:`unavailable` with ``reason`` unless ``available``."""
    if not available:
        unavailable(reason)


def requires(available: bool | Callable[[], bool], reason: str) -> pytest.MarkDecorator:
    """A mark (decorator or ``pytestmark``) that applies :func:`require` before the test runs.

    A callable is only called at the test's setup, so probing costs nothing for a test that
    is not selected. The conftest evaluates the mark.
    """
    return getattr(pytest.mark, MARKER)(available, reason=reason)


def check_marks(item: pytest.Item) -> None:
    """Apply every ``requires`` mark of ``item`` (called by the conftest at setup)."""
    for mark in item.iter_markers(MARKER):
        available = mark.args[0]
        require(bool(available() if callable(available) else available), mark.kwargs["reason"])


# -- capability probes ---------------------------------------------------------------------


def is_root() -> bool:
    """True when running as root (raw sockets, network namespaces, ports below 1024)."""
    return os.geteuid() == 0


def ipv6_loopback() -> bool:
    """True when ``::1`` can be bound and connected to (IPv6 enabled on ``lo``)."""
    try:
        with socket.socket(socket.AF_INET6) as server:
            server.bind(("::1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname()[:2], timeout=2):
                return True
    except OSError:
        return False


def can_bind(host: str, port: int) -> bool:
    """True when both a UDP and a TCP socket can be bound to ``host:port`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, port))
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, port))
    except OSError:
        return False
    return True
