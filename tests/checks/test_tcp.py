"""The ``tcp`` check type against real asyncio servers on loopback (plain and trustme TLS)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks.tcp import TcpCheck, TcpOptions, parse_address
from probed.testing import run_check
from tests._require import ipv6_loopback, requires
from tests.servers.tls import TlsFiles

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(
    handler: Handler, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """Serve ``handler`` on a random port of ``host``; yield the port."""
    tasks: set[asyncio.Task[Any]] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass  # the probe hangs up as soon as it has its answer
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, host, 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def redis_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer PING with +PONG, anything else with an error; then keep the connection open."""
    line = await reader.readline()
    writer.write(b"+PONG\r\n" if line.strip() == b"PING" else b"-ERR unknown command\r\n")
    await writer.drain()
    await reader.read()  # until the probe hangs up


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 mail.probed.test ESMTP ready\r\n")
    await writer.drain()
    await reader.read()


async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


async def test_connect_ok_reports_connect_phase() -> None:
    async with tcp_server(idle) as port:
        result = await run_check(TcpCheck, address=f"127.0.0.1:{port}")
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect"}
    assert 0 < result.phases["connect"] < 1
    assert f"127.0.0.1:{port}: connected" in result.message


async def test_closed_port_is_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await run_check(TcpCheck, address=f"127.0.0.1:{port}")
    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED)
    assert f"connection refused by 127.0.0.1:{port}" in result.message


async def test_send_expect_match() -> None:
    async with tcp_server(redis_like) as port:
        result = await run_check(
            TcpCheck,
            address=f"localhost:{port}",
            ip_version="ip4",
            send="PING\r\n",
            expect="^\\+PONG",
        )
    assert result.status is Status.OK, result.message
    assert {"resolve", "connect", "exchange"} <= set(result.phases)
    assert "reply matched" in result.message


async def test_send_expect_mismatch_reports_what_came_back() -> None:
    async with tcp_server(redis_like) as port:
        result = await run_check(
            TcpCheck, address=f"127.0.0.1:{port}", send="HELLO\r\n", expect="^\\+PONG", timeout=0.5
        )
    assert (result.status, result.reason) == (Status.FAIL, Reason.ASSERTION)
    assert "-ERR unknown command" in result.message
    assert result.duration < 0.5


async def test_expect_banner_without_send() -> None:
    async with tcp_server(banner) as port:
        ok = await run_check(TcpCheck, address=f"127.0.0.1:{port}", expect="^220 .*ESMTP")
    assert ok.status is Status.OK, ok.message


async def test_expect_stops_at_max_read_size() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"x" * 4096)
        await writer.drain()
        await reader.read()

    async with tcp_server(chatty) as port:
        result = await run_check(
            TcpCheck, address=f"127.0.0.1:{port}", expect="never", max_read_size=1024
        )
    assert result.reason == Reason.ASSERTION
    assert "first 1024 bytes (max_read_size)" in result.message


async def test_server_closing_without_reply_is_protocol_failure() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()

    async with tcp_server(hang_up) as port:
        result = await run_check(
            TcpCheck, address=f"127.0.0.1:{port}", send="PING\r\n", expect="PONG"
        )
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "without sending anything" in result.message


async def test_tls_with_trusted_ca_and_expiry_metric(tls_files: TlsFiles) -> None:
    ctx = tls_files.server_context()
    async with tcp_server(banner, ssl_context=ctx) as port:
        result = await run_check(
            TcpCheck,
            address=f"127.0.0.1:{port}",
            tls={"ca_file": tls_files.ca_file},
            expect="^220",
        )
        plain_verify = await run_check(TcpCheck, address=f"127.0.0.1:{port}", tls=True)
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "tls", "exchange"}
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0
    assert "TLS connected" in result.message
    # tls: true uses the system CAs, which do not know the trustme CA.
    assert (plain_verify.status, plain_verify.reason) == (Status.FAIL, Reason.TLS)
    assert "untrusted CA" in plain_verify.message


async def test_tls_expired_and_expiry_warning(
    tls_files: TlsFiles, days_from_now: Callable[[float], Any]
) -> None:
    expired = tls_files.server_context(not_before=days_from_now(-30), not_after=days_from_now(-1))
    async with tcp_server(idle, ssl_context=expired) as port:
        failed = await run_check(
            TcpCheck, address=f"127.0.0.1:{port}", tls={"ca_file": tls_files.ca_file}
        )
    assert (failed.status, failed.reason) == (Status.FAIL, Reason.TLS)
    assert "certificate has expired (notAfter" in failed.message
    soon = tls_files.server_context(not_after=days_from_now(5))
    async with tcp_server(idle, ssl_context=soon) as port:
        warned = await run_check(
            TcpCheck, address=f"127.0.0.1:{port}", tls={"ca_file": tls_files.ca_file}
        )
    assert (warned.status, warned.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    assert "below the warn threshold 14 days (expiry_warn_days)" in warned.message


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_address() -> None:
    async with tcp_server(redis_like, host="::1") as port:
        result = await run_check(
            TcpCheck, address=f"[::1]:{port}", ip_version="ip6", send="PING\r\n", expect="PONG"
        )
    assert result.status is Status.OK, result.message
    assert f"[::1]:{port}" in result.message


def test_address_parsing_and_validation_messages() -> None:
    assert parse_address("[::1]:6379") == ("::1", 6379)
    assert parse_address("db.internal:5432") == ("db.internal", 5432)
    with pytest.raises(ValidationError, match="use host:port"):
        TcpOptions(address="::1:6379")
    with pytest.raises(ValidationError, match="must be 1-65535"):
        TcpOptions(address="127.0.0.1:70000")
    with pytest.raises(ValidationError, match="invalid regular expression"):
        TcpOptions(address="127.0.0.1:1", expect="(")
    assert TcpOptions(address="127.0.0.1:1", tls=True).tls is not None
    assert TcpOptions(address="127.0.0.1:1", tls=False).tls is None
