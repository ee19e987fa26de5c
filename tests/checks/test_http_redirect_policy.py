"""Redirects to link-local, cloud metadata and (optionally) private addresses (issue 8).

A loopback server redirects elsewhere; the event loop's ``sock_connect`` is spied on so each
test asserts which addresses a connection was attempted to: a refused hop is judged before
any connection, and nothing but loopback is ever contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from probed.check import Status
from probed.checks._net import address_policy
from probed.checks._reasons import REDIRECT_REFUSED
from probed.checks.http import HttpCheck
from probed.checks.json_api import JsonApiCheck
from probed.testing import run_check


@contextlib.asynccontextmanager
async def redirecting_to(location: str) -> AsyncIterator[str]:
    """A loopback server answering 302 to ``location`` on ``/`` and 200 elsewhere."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"GET / "):
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n\r\n".encode())
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Addresses the loop is asked to connect to; anything not loopback is refused here, so a
    test can never reach the network."""
    loop = asyncio.get_running_loop()
    real = loop.sock_connect
    seen: list[str] = []

    async def spy(sock: socket.socket, address: Any) -> None:
        seen.append(str(address[0]))
        if address[0] not in ("127.0.0.1", "::1"):
            raise ConnectionRefusedError(111, "refused by the test's spy")
        await real(sock, address)

    monkeypatch.setattr(loop, "sock_connect", spy)
    return seen


@pytest.mark.parametrize(
    ("location", "address", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
        ("http://169.254.10.20:8080/x", "169.254.10.20", "link-local"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254", "cloud metadata"),
    ],
)
async def test_redirect_to_link_local_or_metadata_is_refused_before_connecting(
    connects: list[str], location: str, address: str, kind: str
) -> None:
    async with redirecting_to(location) as url:
        result = await run_check(HttpCheck, timeout=2, url=url)
    assert result.status is Status.FAIL
    assert result.reason == REDIRECT_REFUSED
    assert result.message == (
        f"GET {url}: after redirect to {location}: refused to connect to {address}, "
        f"a {kind} address (follow_redirects_to_link_local is off)"
    )
    assert connects == ["127.0.0.1"]  # the first hop only: no connection was attempted


async def test_host_name_resolving_to_link_local_is_refused_naming_both(
    connects: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def fake(host: Any, port: Any, **kwargs: Any) -> Any:
        if host == "metadata.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return await real(host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", fake)
    async with redirecting_to("http://metadata.test/computeMetadata/v1/") as url:
        result = await run_check(JsonApiCheck, timeout=2, url=url)
    assert result.reason == REDIRECT_REFUSED
    assert "refused to connect to metadata.test at 169.254.169.254, a cloud metadata address" in (
        result.message
    )
    assert connects == ["127.0.0.1"]


async def test_private_redirects_are_followed_by_default_and_refused_when_asked(
    connects: list[str],
) -> None:
    async with redirecting_to("http://10.11.12.13/") as url:
        refused = await run_check(HttpCheck, timeout=2, url=url, follow_redirects_to_private=False)
        attempted = await run_check(HttpCheck, timeout=2, url=url)
    assert refused.reason == REDIRECT_REFUSED
    assert refused.message.endswith(
        "refused to connect to 10.11.12.13, a private address (follow_redirects_to_private is off)"
    )
    # By default a private address is fine: the (spied) connection is attempted.
    assert attempted.reason == "connection_refused"
    assert connects == ["127.0.0.1", "127.0.0.1", "10.11.12.13"]


async def test_link_local_redirect_followed_when_allowed(connects: list[str]) -> None:
    async with redirecting_to("http://169.254.169.254/") as url:
        result = await run_check(HttpCheck, timeout=2, url=url, follow_redirects_to_link_local=True)
    assert result.reason == "connection_refused"  # attempted (and stopped by the spy)
    assert connects == ["127.0.0.1", "169.254.169.254"]


async def test_redirect_on_the_configured_host_is_never_judged(connects: list[str]) -> None:
    # The configured URL names its own host: a check of the metadata service itself (or of a
    # private host with follow_redirects_to_private off) follows its own relative redirects.
    async with redirecting_to("/elsewhere") as url:
        result = await run_check(HttpCheck, timeout=2, url=url, follow_redirects_to_private=False)
    assert result.status is Status.OK, result.message
    assert connects == ["127.0.0.1", "127.0.0.1"]


def test_address_policy_ranges() -> None:
    default = address_policy(allow_link_local=False, allow_private=True)
    strict = address_policy(allow_link_local=False, allow_private=False)
    assert address_policy(allow_link_local=True, allow_private=True) is None
    assert default is not None and strict is not None
    for refused in (
        "169.254.0.1",
        "fe80::abcd",
        "fe80::1%eth0",
        "100.100.100.200",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    ):
        assert default(refused) is not None, refused
    for allowed in ("10.0.0.1", "192.168.1.1", "127.0.0.1", "93.184.216.34", "2606:4700::1111"):
        assert default(allowed) is None, allowed
    for private in ("10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "127.0.0.1", "fd12::1"):
        assert strict(private) is not None, private
    assert strict("93.184.216.34") is None
    private_only = address_policy(allow_link_local=True, allow_private=False)
    assert private_only is not None
    assert "a private address" in (private_only("169.254.1.1") or "")


@pytest.mark.parametrize(
    "host", ["2852039166", "0xA9FEA9FE", "0251.0376.0251.0376", "169.254.43518"]
)
async def test_other_spellings_of_the_metadata_address_are_refused_after_resolution(
    connects: list[str], host: str
) -> None:
    # Not IP literals to Python, but the resolver reads them as 169.254.169.254: the addresses
    # are judged after resolution, as connected to.
    async with redirecting_to(f"http://{host}/latest/") as url:
        result = await run_check(HttpCheck, timeout=2, url=url)
    assert result.reason == REDIRECT_REFUSED, result.message
    assert f"refused to connect to {host.lower()} at 169.254.169.254, a cloud metadata address" in (
        result.message
    )
    assert connects == ["127.0.0.1"]
