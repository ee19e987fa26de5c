"""Hostile HTTP targets (issue 8): a raw asyncio TCP server on 127.0.0.1 sends what no
well-behaved server would, and the ``http``/``json_api`` check must fail its own run fast, with
a clear reason, having buffered a bounded number of bytes; other checks keep their schedule;
redirects to link-local and metadata addresses are refused before any connection; echoed
credentials never reach the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from probed.check import Reason, Result, Status
from probed.checks._reasons import HEADER_SIZE
from probed.checks.http import HttpCheck
from probed.checks.json_api import JsonApiCheck
from probed.testing import run_check
from tests.abuse._once import once_measured
from tests.harness import running_daemon
from tests.servers.tls import TlsFiles

MiB = 1024 * 1024
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Hostile:
    """A raw TCP server running ``handler`` per connection; counts the bytes it got out."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.sent = 0
        self.connections = 0
        self.port = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.sent += len(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the probe hung up: what a capped client does
        finally:
            writer.transport.abort()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Hostile]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/"


def forever(head: bytes, piece: bytes) -> Callable[[Hostile], Handler]:
    """A handler sending ``head`` then ``piece`` until the client goes away."""

    def make(h: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await h.write(writer, head)
            while True:
                await h.write(writer, piece)

        return handler

    return make


@contextlib.asynccontextmanager
async def hostile(
    make: Callable[[Hostile], Handler], ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Hostile]:
    h = Hostile(lambda r, w: asyncio.sleep(0), ssl_context)
    h.handler = make(h)
    async with h.running():
        yield h


ENDLESS_HEADER = forever(b"HTTP/1.1 200 OK\r\nX-Endless: ", b"a" * 65536)
ENDLESS_STATUS = forever(b"HTTP/1.1 200 ", b"O" * 65536)
MANY_HEADERS = forever(b"HTTP/1.1 200 OK\r\n", b"X-A: b\r\n" * 8192)
BIG_HEADERS = forever(b"HTTP/1.1 200 OK\r\n", b"X-Big: " + b"v" * 60000 + b"\r\n")
ENDLESS_BODY = forever(
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"ffff\r\n" + b"z" * 65535 + b"\r\n"
)


async def timed(check_type: type[HttpCheck], **options: Any) -> Result:
    """One run of ``check_type`` that must end (by a cap, not its 5 s timeout) within 2.5 s."""
    start = time.perf_counter()
    result = await run_check(check_type, timeout=5, **options)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.5, f"took {elapsed:.2f}s: {result.message}"
    return result


# -- each cap fails its own check fast, with a clear reason and bounded bytes --------------------


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (ENDLESS_HEADER, "response header line is longer than 64.0 KiB"),
        (ENDLESS_STATUS, "status line is longer than 64.0 KiB"),
        (MANY_HEADERS, "more than 2000 header fields"),
        (BIG_HEADERS, "response headers exceed max_header_size of 1.0 MiB"),
    ],
    ids=["endless-header-line", "endless-status-line", "millions-of-headers", "huge-head"],
)
async def test_hostile_response_head_fails_with_header_size_fast(
    make: Callable[[Hostile], Handler], words: str
) -> None:
    async with hostile(make) as h:
        result = await timed(HttpCheck, url=h.url)
    assert result.status is Status.FAIL
    assert result.reason == HEADER_SIZE, result.message
    assert words in result.message
    assert result.message.startswith(f"GET {h.url}: ")
    # What the server got out: the cap (1 MiB) plus what loopback socket buffers hold.
    assert h.sent < 24 * MiB, h.sent


async def test_endless_header_line_over_tls_is_capped_alike(tls_files: TlsFiles) -> None:
    async with hostile(ENDLESS_HEADER, tls_files.server_context()) as h:
        result = await timed(HttpCheck, url=h.url, tls={"ca_file": tls_files.ca_file})
    assert result.reason == HEADER_SIZE, result.message
    assert "response header line is longer than 64.0 KiB" in result.message
    assert "tls" in result.phases
    assert h.sent < 24 * MiB


async def test_max_header_size_is_configurable() -> None:
    async with hostile(BIG_HEADERS) as h:
        result = await run_check(HttpCheck, timeout=5, url=h.url, max_header_size="128KiB")
    assert result.reason == HEADER_SIZE
    assert "max_header_size of 128.0 KiB" in result.message


async def test_endless_body_fails_with_body_size_for_http_and_json_api() -> None:
    async with hostile(ENDLESS_BODY) as h:
        for check_type in (HttpCheck, JsonApiCheck):
            result = await timed(check_type, url=h.url, max_body_size="1MiB")
            assert result.reason == Reason.BODY_SIZE, result.message
            assert "exceeds max_body_size of 1048576 bytes" in result.message
    assert h.sent < 32 * MiB


def dribble(head: bytes, stop_after: int) -> Callable[[Hostile], Handler]:
    """Slow loris: ``head`` then one byte every 50 ms (the probe's timeout is 0.5 s)."""

    def make(h: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await h.write(writer, head[:stop_after])
            for byte in head[stop_after:]:
                await asyncio.sleep(0.05)
                await h.write(writer, bytes([byte]))
            await reader.read()

        return handler

    return make


@pytest.mark.parametrize(
    ("head", "stop_after", "phase"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 200, 20, "waiting for the response headers"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + b"b" * 300,
            42,
            "reading the response body",
        ),
    ],
    ids=["headers", "body"],
)
async def test_slow_loris_is_cut_at_the_timeout_naming_the_phase(
    head: bytes, stop_after: int, phase: str
) -> None:
    async with hostile(dribble(head, stop_after)) as h:
        result = await run_check(HttpCheck, timeout=0.5, url=h.url)
    assert result.reason == Reason.TIMEOUT
    assert result.message == f"no answer within the timeout of 0.5s while {phase}"
    assert 0.5 <= result.duration < 1.5


async def test_connect_that_never_completes_names_the_connecting_phase() -> None:
    # A listening socket with a full backlog of 0 and nobody accepting: SYNs go unanswered
    # once the queue is full, so fill it first.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            result = await run_check(HttpCheck, timeout=0.5, url=f"http://127.0.0.1:{port}/")
        finally:
            for filler in fillers:
                filler.close()
    # Linux drops SYNs to a listener whose accept queue is full: the connect hangs.
    assert result.message == (
        f"no answer within the timeout of 0.5s while connecting to 127.0.0.1:{port}"
    )


# -- bounded memory in a real `probed once`, and the daemon keeps its schedule -----------------


async def test_probed_once_against_hostile_heads_stays_within_50_mb(tmp_path: Path) -> None:
    async with (
        hostile(ENDLESS_HEADER) as header,
        hostile(ENDLESS_STATUS) as status,
        hostile(MANY_HEADERS) as many,
        hostile(ENDLESS_BODY) as body,
    ):
        checks = tmp_path / "checks"
        checks.mkdir()
        (checks / "hostile.yaml").write_text(
            textwrap.dedent(
                f"""\
                checks:
                  - {{name: header, type: http, url: "{header.url}", timeout: 10s}}
                  - {{name: status, type: http, url: "{status.url}", timeout: 10s}}
                  - {{name: many, type: http, url: "{many.url}", timeout: 10s}}
                  - {{name: body, type: json_api, url: "{body.url}", timeout: 10s}}
                """
            )
        )
        run = await once_measured(checks)
    assert run.results["header"]["reason"] == HEADER_SIZE
    assert run.results["status"]["reason"] == HEADER_SIZE
    assert run.results["many"]["reason"] == HEADER_SIZE
    assert run.results["body"]["reason"] == Reason.BODY_SIZE
    assert run.elapsed < 15, f"took {run.elapsed:.1f}s"
    assert run.rss_delta_kib < 50 * 1024, f"RSS grew by {run.rss_delta_kib} KiB"


async def test_other_checks_keep_their_schedule_beside_a_hostile_target(tmp_path: Path) -> None:
    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    good = Hostile(ok)
    async with hostile(ENDLESS_HEADER) as bad, good.running():
        checks = tmp_path / "checks"
        checks.mkdir()
        (checks / "c.yaml").write_text(
            textwrap.dedent(
                f"""\
                checks:
                  - {{name: hostile, type: http, url: "{bad.url}", interval: 300ms, timeout: 250ms}}
                  - {{name: steady, type: http, url: "{good.url}", interval: 100ms, timeout: 90ms}}
                """
            )
        )
        async with running_daemon(checks) as r:
            await r.runs("hostile", 3)
            started = sum(r.state("steady").runs)
            t0 = time.monotonic()
            await r.runs("steady", started + 10, timeout=5)
            elapsed = time.monotonic() - t0
            hostile_state = r.state("hostile")
            steady = r.state("steady")
    assert hostile_state.last.reason == HEADER_SIZE
    assert steady.last.status is Status.OK
    assert elapsed < 2.0, f"10 runs of a 100 ms check took {elapsed:.2f}s"


async def test_body_budget_is_per_run_redirect_bodies_included() -> None:
    # Each redirect answers with 400 KB of body: alone under max_body_size (1 MiB), together
    # over it by the third hop. The budget is the run's, not each response's.
    def make(h: Hostile) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            body = b"r" * 400_000
            head = f"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: {len(body)}\r\n\r\n"
            await h.write(writer, head.encode() + body)

        return handler

    async with hostile(make) as h:
        result = await run_check(HttpCheck, timeout=5, url=h.url, max_body_size="1MiB")
    assert result.reason == Reason.BODY_SIZE, result.message
    assert result.message == (
        f"GET {h.url}: response body exceeds max_body_size of 1048576 bytes "
        f"(after redirect to {h.url}again; 800000 of them in redirect responses)"
    )
    assert h.connections == 3


@pytest.mark.parametrize(
    "make",
    [
        forever(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=", b"e" * 65536),
        forever(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: ", b"t" * 65536
        ),
    ],
    ids=["endless-chunk-extension", "endless-trailer"],
)
async def test_chunk_framing_that_never_ends_is_cut_by_the_total_budget(
    make: Callable[[Hostile], Handler],
) -> None:
    async with hostile(make) as h:
        result = await timed(HttpCheck, url=h.url, max_body_size="1MiB")
    assert result.reason == Reason.BODY_SIZE, result.message
    assert "response is over 2.4 MiB in total without ending (0 body bytes" in result.message
    assert h.sent < 24 * MiB
