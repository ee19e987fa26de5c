"""Hostile clients of probed's own listener (issue 8): idle sockets, slow-loris, connection
floods, malformed requests, fd exhaustion. Each test runs the real daemon on loopback with
lowered limits and asserts it keeps answering, closes what it must, and logs one line."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from probed import _httplog
from tests._require import require
from tests.harness import Running, running_daemon, wait_for, write
from tests.servers._util import free_port
from tests.test_webconfig import CHECKS


@pytest.fixture
def checks(tmp_path: Path) -> Path:
    """A checks directory with one quiet disk check (never warns, never fails)."""
    return write(tmp_path / "checks.d" / "c.yaml", CHECKS).parent


def _sample(r: Running, name: str, listener: str = "main") -> float:
    value = r.daemon.metrics.registry.get_sample_value(name, {"listener": listener})
    return value or 0.0


async def _status(url: str, ctx: Any = True) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=ctx) as resp:
        return resp.status


async def _closed(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed (EOF or reset); reads whatever it sent first."""
    try:
        while await reader.read(65536):
            pass
    except (ConnectionError, OSError):
        pass
    return True


@contextlib.asynccontextmanager
async def _sockets(port: int, count: int) -> AsyncIterator[list[tuple[Any, Any]]]:
    pairs: list[tuple[Any, Any]] = []
    try:
        for _ in range(count):
            pairs.append(await asyncio.open_connection("127.0.0.1", port))
        yield pairs
    finally:
        for _, writer in pairs:
            writer.transport.abort()


async def test_idle_sockets_past_the_cap_are_refused_evicted_and_closed_while_probes_answer(
    checks: Path,
) -> None:
    health_port = free_port()
    async with running_daemon(
        checks,
        max_connections=50,
        header_timeout=3.0,
        health_listen=f"127.0.0.1:{health_port}",
    ) as r:
        port = int(r.url.rsplit(":", 1)[1])
        started = time.monotonic()
        async with _sockets(port, 300) as idle:
            await wait_for(
                lambda: _sample(r, "probed_http_connections_refused_total") >= 250,
                5,
                "connections over the cap refused",
            )
            assert _sample(r, "probed_http_connections") <= 50
            # the kubelet's listener is not starved by the flood on the main one
            assert await _status(f"http://127.0.0.1:{health_port}/health/live") == 200
            # a client that sends a request gets in before header_timeout: the oldest idle
            # socket (idle for EVICT_AFTER) makes room for it
            await _until_ok(r.url + "/health/live", 2.5)
            assert time.monotonic() - started < 3.0
            assert _sample(r, "probed_http_connections_evicted_total") >= 1
            # every idle socket is closed by the server: refused, evicted or timed out
            done = await asyncio.wait_for(
                asyncio.gather(*(_closed(reader) for reader, _ in idle)), 10
            )
            assert all(done)
            assert time.monotonic() - started < 8
            assert _sample(r, "probed_http_connections_timed_out_total") >= 40
        await wait_for(lambda: _sample(r, "probed_http_connections") <= 1, 5, "all closed")


async def test_slow_loris_headers_are_cut_off_after_header_timeout(checks: Path) -> None:
    async with running_daemon(checks, header_timeout=0.5) as r:
        port = int(r.url.rsplit(":", 1)[1])
        async with _sockets(port, 20) as slow:
            for _, writer in slow:
                writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
            deadline = time.monotonic() + 5
            closed: set[int] = set()
            while len(closed) < len(slow) and time.monotonic() < deadline:
                for i, (reader, writer) in enumerate(slow):
                    if i in closed:
                        continue
                    if reader.at_eof() or writer.transport.is_closing():
                        closed.add(i)
                        continue
                    with contextlib.suppress(ConnectionError, OSError):
                        writer.write(b"X-Drip: 1\r\n")  # a header line every 50 ms, never done
                await asyncio.sleep(0.05)  # the drip's pace, not a wait for an event
                for i, (reader, _) in enumerate(slow):
                    with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
                        if i not in closed and await asyncio.wait_for(reader.read(1), 0.001) == b"":
                            closed.add(i)
            assert len(closed) == len(slow), f"{len(slow) - len(closed)} slow clients still open"
        assert _sample(r, "probed_http_connections_timed_out_total") >= 20
        assert await _status(r.url + "/health/live") == 200


async def test_an_idle_keep_alive_connection_is_closed_after_idle_timeout(checks: Path) -> None:
    async with running_daemon(checks, idle_timeout=0.5) as r:
        port = int(r.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert await asyncio.wait_for(_closed(reader), 5)
        assert 0.3 < time.monotonic() - started < 4
        writer.close()


async def test_a_malformed_request_is_one_warning_line_without_traceback(
    checks: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _httplog.BAD_REQUESTS._next = 0.0  # a fresh window for this test
    _httplog.BAD_REQUESTS.suppressed = 0
    async with running_daemon(checks) as r:
        port = int(r.url.rsplit(":", 1)[1])
        caplog.set_level(logging.DEBUG, logger="probed.http")
        started = time.monotonic()
        for _ in range(30):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(4096), 5)
            assert answer.split(b" ", 2)[1] == b"400"
            writer.close()
        elapsed = time.monotonic() - started
        assert await _status(r.url + "/health/live") == 200
    lines = [rec for rec in caplog.records if rec.name == "probed.http"]
    assert 1 <= len(lines) <= 2 + int(elapsed / _httplog.BAD_REQUESTS._every)
    first = lines[0]
    assert first.levelno == logging.WARNING and first.exc_info is None
    assert first.getMessage().startswith("bad request from 127.0.0.1: ")
    assert "\n" not in first.getMessage()
    assert "Traceback" not in caplog.text


async def test_accept_errors_are_logged_once_per_window_with_a_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _httplog.install_log_filters()
    throttle = _httplog.ACCEPT_ERRORS
    throttle._next, throttle.suppressed = 0.0, 0
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.ERROR, logger="asyncio")
    with socket.socket() as sock:
        context = {
            "message": "socket.accept() out of system resource",
            "exception": OSError(24, "Too many open files"),
            "socket": sock,
        }
        for _ in range(1000):  # what asyncio's accept loop reports when fds run out
            loop.call_exception_handler(context)
        throttle._next = 0.0  # the window has passed
        loop.call_exception_handler(context)
    lines = [rec for rec in caplog.records if rec.name == "asyncio"]
    assert len(lines) == 2
    assert lines[0].getMessage() == (
        "socket.accept() out of system resource: Too many open files; new connections wait"
    )
    assert lines[0].exc_info is None
    assert lines[1].getMessage().endswith("(999 similar lines suppressed)")


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))


@contextlib.asynccontextmanager
async def _fd_limited_daemon(
    tmp_path: Path, checks: Path, loop: str
) -> AsyncIterator[tuple[int, Path]]:
    """``probed run`` on ``loop`` with 96 descriptors: its port and log, stopped on exit."""
    port = free_port()
    config = write(tmp_path / "probed.yaml", "header_timeout: 1s\nwatch: false\n")
    log_path = tmp_path / "out.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PROBED_LOOP": loop}
    with log_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "probed", "run", "--config", str(config)],
            *["--checks-dir", str(checks), "--listen", f"127.0.0.1:{port}"],
            *["--log-format", "text"],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_fds,
            env=env,
        )
    try:
        await wait_for(lambda: "listening on" in log_path.read_text(), 30, "daemon to start")
        yield port, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(60)
async def test_fd_exhaustion_logs_a_few_lines_and_the_daemon_recovers(
    tmp_path: Path, checks: Path
) -> None:
    """On asyncio's loop (uvloop's accept is below)."""
    async with _fd_limited_daemon(tmp_path, checks, "asyncio") as (port, log_path):
        url = f"http://127.0.0.1:{port}/health/live"
        t0 = time.monotonic()
        async with _sockets(port, 300):
            await wait_for(
                lambda: "out of system resource" in log_path.read_text(), 10, "fds to run out"
            )
        t1 = time.monotonic()
        await _until_ok(url, 15)
        t2 = time.monotonic()
        print(f"fds exhausted after {t1 - t0:.2f}s, answering again {t2 - t1:.2f}s later")
        text = log_path.read_text()
        lines = [
            line for line in text.splitlines() if "socket.accept() out of system resource" in line
        ]
        assert 1 <= len(lines) <= 2, text[-2000:]
        assert "Traceback" not in text


@pytest.mark.timeout(60)
async def test_fd_exhaustion_on_uvloop_leaves_no_traceback_and_the_daemon_recovers(
    tmp_path: Path, checks: Path
) -> None:
    """libuv accepts and drops connections it has no descriptor for (its EMFILE reserve), so
    nothing is logged; the daemon must still answer once the connections are gone."""
    require(importlib.util.find_spec("uvloop") is not None, "uvloop (probed[speed]) missing")
    async with _fd_limited_daemon(tmp_path, checks, "uvloop") as (port, log_path):
        async with _sockets(port, 300) as opened:
            assert len(opened) > 96  # more connections than the daemon has descriptors
        await _until_ok(f"http://127.0.0.1:{port}/health/live", 15)
        text = log_path.read_text()
        assert "Traceback" not in text, text[-2000:]


async def _until_ok(url: str, timeout: float, ctx: Any = True) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await _status(url, ctx) == 200:
                return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200 within {timeout}s")
        await asyncio.sleep(0.05)


async def test_tls_connections_that_never_finish_the_handshake_are_evicted_and_closed(
    tmp_path: Path, checks: Path
) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "s.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "s.key"))
    web = write(tmp_path / "web.yml", "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n")
    client = ssl.create_default_context()
    ca.configure_trust(client)
    async with running_daemon(checks, web_config=web, header_timeout=3.0, max_connections=10) as r:
        port = int(r.url.rsplit(":", 1)[1])
        url = r.url.replace("http://", "https://") + "/health/live"
        started = time.monotonic()
        async with _sockets(port, 30) as silent:  # TCP only: no ClientHello ever
            await wait_for(
                lambda: _sample(r, "probed_http_connections_refused_total") >= 20, 5, "refusals"
            )
            # a real TLS client gets in before header_timeout: a silent handshake makes room
            await _until_ok(url, 2.5, client)
            assert time.monotonic() - started < 3.0
            assert _sample(r, "probed_http_connections_evicted_total") >= 1
            done = await asyncio.wait_for(
                asyncio.gather(*(_closed(reader) for reader, _ in silent)), 8
            )
            assert all(done)
        await wait_for(lambda: _sample(r, "probed_http_connections") <= 1, 5, "all closed")
