"""The ``hello`` check against real TCP servers on loopback, run as the daemon runs it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pydantic
import pytest
from probed import Reason, Status
from probed.testing import run_check

from probed_hello.plugin import HelloCheck

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> AsyncIterator[int]:
    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def smtp_like() -> AsyncIterator[int]:
    """Greets first, like SMTP."""

    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.test ESMTP ready\r\n")
        await writer.drain()

    async for port in _serve(greet):
        yield port


@pytest.fixture
async def ping_pong() -> AsyncIterator[int]:
    """Answers PING with +PONG, like Redis."""

    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if (await reader.readline()).strip() == b"PING":
            writer.write(b"+PONG\r\n")
            await writer.drain()

    async for port in _serve(pong):
        yield port


@pytest.fixture
async def silent() -> AsyncIterator[int]:
    """Accepts and never says a word (until the client goes away)."""

    async def wait(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async for port in _serve(wait):
        yield port


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_expected_greeting_passes_with_timings(smtp_like: int) -> None:
    result = await run_check(HelloCheck, port=smtp_like, expect="^220 ")
    assert result.status is Status.OK, result.message
    assert result.values["probed_hello_greeting_bytes"] > 0
    assert result.values["probed_hello_greeting_seconds"] >= 0
    assert set(result.phases) == {"connect", "greeting"}


async def test_sends_a_line_first_when_asked(ping_pong: int) -> None:
    result = await run_check(HelloCheck, port=ping_pong, send="PING\r\n", expect="PONG")
    assert result.status is Status.OK, result.message


async def test_wrong_greeting_fails_and_shows_what_came(smtp_like: int) -> None:
    result = await run_check(HelloCheck, port=smtp_like, expect="^SSH-2.0")
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert "220 mail.test ESMTP ready" in result.message


async def test_silent_service_times_out(silent: int) -> None:
    result = await run_check(HelloCheck, timeout=0.3, port=silent, expect="^220 ")
    assert result.status is Status.FAIL
    assert result.reason == Reason.TIMEOUT


async def test_closed_port_is_refused() -> None:
    result = await run_check(HelloCheck, port=_closed_port(), expect="x")
    assert result.status is Status.FAIL
    assert result.reason == Reason.CONNECTION_REFUSED


async def test_invalid_pattern_is_a_validation_error() -> None:
    with pytest.raises(pydantic.ValidationError, match="invalid regular expression"):
        await run_check(HelloCheck, port=25, expect="(unclosed")
