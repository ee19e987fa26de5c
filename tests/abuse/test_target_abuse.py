"""Hostile non-HTTP targets and runaway thread work (issue 8).

Raw asyncio servers on 127.0.0.1 speak just enough RESP, DNS or PostgreSQL to lead a check on:
the check must fail its own run fast with a clear reason, buffer a bounded number of bytes, and
never send a password in clear text without saying so. ``file_age`` walks of ``/`` stop at
their timeout, do not starve the host checks, and do not hold up SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from probed import Check, CheckOptions, Reason, Result, Status
from probed.checks.dns import DnsCheck
from probed.checks.postgres import PostgresCheck
from probed.checks.redis import RedisCheck
from probed.checks.tcp import TcpCheck
from probed.phase import format_elapsed, phase, set_phase
from probed.runner import execute
from probed.testing import make_spec, run_check
from probed.threads import POOL_SIZE, blocking_cancelled, pool_stats, run_blocking
from tests.abuse._once import once_measured
from tests.harness import running_daemon, wait_for, write
from tests.servers._stub import silent, stub_server
from tests.servers._util import free_port

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
MiB = 1024 * 1024
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def serving(handler: Handler) -> contextlib.AbstractAsyncContextManager[int]:
    """A loopback server running ``handler`` per connection (a probe hanging up mid-message,
    as a bounded client does, ends the handler quietly); yields its port."""

    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await handler(reader, writer)

    return stub_server(quiet)


async def read_command(reader: asyncio.StreamReader) -> list[bytes]:
    """One RESP command (an array of bulk strings) from the client."""
    header = await reader.readuntil(b"\r\n")
    args = []
    for _ in range(int(header[1:-2])):
        size = int((await reader.readuntil(b"\r\n"))[1:-2])
        args.append((await reader.readexactly(size + 2))[:-2])
    return args


def resp_then(head: bytes, chunk: bytes | None = None) -> Handler:
    """A 'Redis' answering its first command with ``head``, then ``chunk`` for ever."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_command(reader)
        writer.write(head)
        await writer.drain()
        while chunk is not None:
            writer.write(chunk)
            await writer.drain()
        await reader.read()

    return handler


HUGE_BULK = resp_then(b"$999999999999\r\n", b"x" * 65536)
ENDLESS_LINE = resp_then(b"+OK", b"y" * 65536)
HUGE_ARRAY = resp_then(b"*999999999\r\n", b":1\r\n" * 16384)
MANY_BULKS = resp_then(b"*4000\r\n", b"$1048576\r\n" + b"z" * 1048576 + b"\r\n")


# -- redis --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "says"),
    [
        (HUGE_BULK, "a bulk string of 999999999999 bytes (the check's limit is 1.0 MiB)"),
        (ENDLESS_LINE, "a reply line longer than 64 KiB"),
        (HUGE_ARRAY, "an array of 999999999 elements (the check's limit is 4096)"),
        (MANY_BULKS, "more than 4.0 MiB of replies in one run"),
    ],
    ids=["huge-bulk", "endless-line", "huge-array", "many-bulks"],
)
async def test_a_hostile_redis_reply_fails_the_check_fast_as_protocol(
    handler: Handler, says: str
) -> None:
    async with serving(handler) as port:
        result = await run_check(RedisCheck, url=f"redis://127.0.0.1:{port}/0", timeout=5)
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    assert says in result.message
    assert f"127.0.0.1:{port} sent " in result.message
    assert result.duration < 2.0, f"took {result.duration:.2f}s"


async def test_a_redis_that_never_answers_is_a_timeout_naming_the_phase_in_short_figures() -> None:
    async with serving(silent) as port:
        result = await run_check(RedisCheck, url=f"redis://127.0.0.1:{port}/0", timeout=0.5)
    assert result.reason == Reason.TIMEOUT, result.message
    assert "while connecting and logging in" in result.message
    # "after 450.2 ms", never "after 0.4501817049999465s"
    assert re.search(r"after \d+\.\d ms ", result.message), result.message
    assert not re.search(r"\d\.\d{4,}", result.message), result.message


# -- tcp ----------------------------------------------------------------------------------------


async def endless_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:  # one endless line: no newline ever
        writer.write(b"a" * 65536)
        await writer.drain()


async def test_tcp_expect_against_an_endless_stream_stops_at_max_read_size() -> None:
    async with serving(endless_stream) as port:
        result = await run_check(
            TcpCheck, address=f"127.0.0.1:{port}", expect="^never", max_read_size=4096
        )
    assert (result.status, result.reason) == (Status.FAIL, Reason.ASSERTION), result.message
    assert "in the first 4096 bytes (max_read_size)" in result.message
    assert result.duration < 1.0


async def test_tcp_protocol_buffer_never_holds_more_than_max_read_size() -> None:
    from probed.checks import tcp

    loop = asyncio.get_running_loop()
    async with serving(endless_stream) as port:
        transport, proto = await loop.create_connection(
            lambda: tcp._TcpProtocol(loop, 10_000), "127.0.0.1", port
        )
        await wait_for(lambda: len(proto.buffer) >= 10_000, 5, "the buffer to fill")
        # Let the server push a few more megabytes' worth of reads at us.
        for _ in range(50):
            await asyncio.sleep(0)
        size = len(proto.buffer)
        transport.abort()
    assert size == 10_000


# -- dns ----------------------------------------------------------------------------------------


async def dns_junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(struct.unpack("!H", await reader.readexactly(2))[0])
    writer.write(struct.pack("!H", 65535) + os.urandom(65535))  # the largest frame there is
    await writer.drain()
    await reader.read()


async def dns_endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(struct.unpack("!H", await reader.readexactly(2))[0])
    writer.write(struct.pack("!H", 65535) + b"\0" * 100)  # announces 64 KiB, sends 100 bytes
    await writer.drain()
    await reader.read()


async def test_dns_over_tcp_a_64_kib_garbage_answer_is_a_protocol_failure() -> None:
    async with serving(dns_junk) as port:
        result = await run_check(
            DnsCheck, query_name="example.com", server=f"127.0.0.1:{port}", transport="tcp"
        )
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    assert result.duration < 2.0


async def test_dns_over_tcp_a_frame_that_never_completes_times_out_naming_the_server() -> None:
    async with serving(dns_endless) as port:
        result = await run_check(
            DnsCheck,
            query_name="example.com",
            server=f"127.0.0.1:{port}",
            transport="tcp",
            timeout=0.5,
        )
    assert result.reason == Reason.TIMEOUT, result.message
    assert f"127.0.0.1:{port}" in result.message


# -- postgres: a password in clear text under sslmode=prefer -------------------------------------


def pg_stub(received: list[bytes], refuse: bool = False) -> Handler:
    """A 'PostgreSQL' refusing TLS, asking for the password in clear text, failing the query."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = struct.unpack("!i", await reader.readexactly(4))[0]
        body = await reader.readexactly(size - 4)
        if struct.unpack("!i", body[:4])[0] == 80877103:  # SSLRequest: no TLS here
            writer.write(b"N")
            size = struct.unpack("!i", await reader.readexactly(4))[0]
            await reader.readexactly(size - 4)  # the startup message
        writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        await writer.drain()
        assert await reader.readexactly(1) == b"p"
        size = struct.unpack("!i", await reader.readexactly(4))[0]
        received.append((await reader.readexactly(size - 4)).rstrip(b"\0"))
        if refuse:  # what a password harvester does: take it, say no, hang up
            error = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
            writer.write(b"E" + struct.pack("!i", len(error) + 4) + error)
            await writer.drain()
            return
        writer.write(b"R" + struct.pack("!ii", 8, 0))  # AuthenticationOk
        for key, value in ((b"server_version", b"16.0"), (b"client_encoding", b"UTF8")):
            payload = key + b"\0" + value + b"\0"
            writer.write(b"S" + struct.pack("!i", len(payload) + 4) + payload)
        writer.write(b"K" + struct.pack("!iii", 12, 1, 2))
        writer.write(b"Z" + struct.pack("!i", 5) + b"I")
        await writer.drain()
        await reader.read(1)  # the query
        error = b"SERROR\0C42000\0Mstub server\0\0"
        writer.write(b"E" + struct.pack("!i", len(error) + 4) + error)
        writer.write(b"Z" + struct.pack("!i", 5) + b"I")
        await writer.drain()
        await reader.read()

    return handler


@pytest.mark.parametrize("sslmode", ["", "?sslmode=prefer"])
async def test_postgres_warns_once_when_the_password_went_out_without_tls(
    sslmode: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = "s3cret-Pg-pw"
    received: list[bytes] = []
    caplog.set_level(logging.WARNING, logger="probed.checks.postgres")
    async with serving(pg_stub(received)) as port:
        spec = make_spec(
            PostgresCheck, dsn=f"postgresql://probe:{password}@127.0.0.1:{port}/db{sslmode}"
        )
        check = PostgresCheck(spec)
        first = await execute(check, 5.0)
        second = await execute(check, 5.0)
        await check.close()
    assert received == [password.encode(), password.encode()]  # what the stub got in clear text
    assert first.status is Status.FAIL and second.status is Status.FAIL
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once per check, not once per run
    assert f"offered to 127.0.0.1:{port} without TLS" in warnings[0]
    assert "sslmode=verify-full" in warnings[0]
    assert password not in caplog.text
    assert password not in first.message


async def test_postgres_warns_also_when_the_server_took_the_password_and_refused_the_login(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[bytes] = []
    caplog.set_level(logging.WARNING, logger="probed.checks.postgres")
    async with serving(pg_stub(received, refuse=True)) as port:
        result = await run_check(
            PostgresCheck, dsn=f"postgresql://probe:pw-Harvested@127.0.0.1:{port}/db"
        )
    assert received == [b"pw-Harvested"]
    assert result.reason == Reason.AUTH, result.message
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "without TLS" in warnings[0], warnings
    assert "pw-Harvested" not in caplog.text + result.message


async def test_postgres_with_sslmode_disable_chosen_explicitly_does_not_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[bytes] = []
    caplog.set_level(logging.WARNING, logger="probed.checks.postgres")
    async with serving(pg_stub(received)) as port:
        await run_check(
            PostgresCheck, dsn=f"postgresql://probe:pw@127.0.0.1:{port}/db?sslmode=disable"
        )
    assert received == [b"pw"]
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def pg_flood(when: str, tls: Any = None) -> Handler:
    """A 'PostgreSQL' announcing a 2 GiB message (at startup, or as the query's first row)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = struct.unpack("!i", await reader.readexactly(4))[0]
        body = await reader.readexactly(size - 4)
        if struct.unpack("!i", body[:4])[0] == 80877103:
            writer.write(b"S" if tls is not None else b"N")
            await writer.drain()
            if tls is not None:
                await writer.start_tls(tls)
            size = struct.unpack("!i", await reader.readexactly(4))[0]
            await reader.readexactly(size - 4)
        if when == "query":
            writer.write(b"R" + struct.pack("!ii", 8, 0))
            payload = b"server_version\x0016.0\x00"
            writer.write(b"S" + struct.pack("!i", len(payload) + 4) + payload)
            writer.write(b"Z" + struct.pack("!i", 5) + b"I")
            await writer.drain()
            await reader.read(1)
            writer.write(b"1" + struct.pack("!i", 4))
        writer.write((b"S" if when == "startup" else b"D") + struct.pack("!i", 0x7FFFFFF0))
        while True:
            writer.write(b"a" * 65536)
            await writer.drain()

    return handler


@pytest.mark.parametrize("when", ["startup", "query"])
async def test_a_postgres_announcing_a_2_gib_message_fails_at_max_response_size(when: str) -> None:
    async with serving(pg_flood(when)) as port:
        result = await run_check(
            PostgresCheck, dsn=f"postgresql://probe@127.0.0.1:{port}/db", max_response_size="1MiB"
        )
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    doing = "connecting" if when == "startup" else "running the query"
    assert f"sent more than 1.0 MiB (max_response_size) while {doing}" in result.message
    assert result.duration < 2.0


async def test_the_postgres_byte_budget_holds_inside_tls_too(tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    async with serving(pg_flood("startup", server_ctx)) as port:
        result = await run_check(
            PostgresCheck,
            dsn=f"postgresql://probe@127.0.0.1:{port}/db?sslmode=require",
            max_response_size="1MiB",
        )
    assert result.reason == Reason.PROTOCOL, result.message
    assert "sent more than 1.0 MiB" in result.message


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("when", ["startup", "query"])
def test_the_postgres_byte_budget_holds_on_uvloop_too(when: str, tls: bool) -> None:
    """uvloop reads sockets in C (a counting socket sees nothing there): the budget is then
    counted in the protocol, below TLS and after asyncpg's plain fallback (sslmode=prefer)."""
    import importlib.util
    import ssl

    import trustme

    from tests._require import require

    require(importlib.util.find_spec("uvloop") is not None, "uvloop (probed[speed]) missing")
    import uvloop

    server_ctx: ssl.SSLContext | None = None
    if tls:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        trustme.CA().issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def probe() -> Result:
        async with serving(pg_flood(when, server_ctx)) as port:
            mode = "require" if tls else "prefer"
            return await run_check(
                PostgresCheck,
                dsn=f"postgresql://probe@127.0.0.1:{port}/db?sslmode={mode}",
                max_response_size="1MiB",
                timeout=2.0 if tls else 5.0,
            )

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(probe())
    if tls:
        # Reading stops at the budget (the connection is aborted there), but uvloop's TLS
        # layer does not pass the abort on to asyncpg, which then waits for its timeout.
        assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT), result.message
        return
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    assert "sent more than 1.0 MiB (max_response_size)" in result.message
    assert result.duration < 2.0


async def test_a_real_query_over_the_budget_is_refused_and_one_under_it_passes(
    postgres_server: Any,
) -> None:
    dsn = postgres_server.dsn()
    big = await run_check(
        PostgresCheck, dsn=dsn, query="SELECT repeat('x', 3000000)", max_response_size="1MiB"
    )
    small = await run_check(PostgresCheck, dsn=dsn, query="SELECT repeat('x', 500000)")
    assert big.reason == Reason.PROTOCOL, big.message
    assert "while running the query" in big.message
    assert small.status is Status.OK, small.message


async def test_postgres_over_a_unix_socket_still_connects(postgres_server: Any) -> None:
    dsn = f"postgresql://{postgres_server.user}@/postgres?host={postgres_server.root}&port={postgres_server.port}"
    result = await run_check(PostgresCheck, dsn=dsn)
    assert result.status is Status.OK, result.message


# -- phases and durations in timeout messages ----------------------------------------------------


class _StallOptions(CheckOptions):
    pass


class _Stalls(Check[_StallOptions]):
    type_name: ClassVar[str] = "stalls"
    options_model: ClassVar[type[CheckOptions]] = _StallOptions

    async def run(self) -> Result:
        set_phase("connecting")
        with phase("waiting for the greeting"):
            await asyncio.Event().wait()
        return Result.ok("unreachable")


class _Recovers(_Stalls):
    async def run(self) -> Result:
        with contextlib.suppress(ValueError), phase("parsing"):
            raise ValueError("handled")
        await asyncio.Event().wait()
        return Result.ok("unreachable")


async def test_a_timeout_names_the_phase_the_check_declared() -> None:
    result = await execute(_Stalls(make_spec(_Stalls)), 0.1)
    assert result.message == "no answer within the timeout of 0.1s while waiting for the greeting"


async def test_a_phase_left_by_an_exception_is_restored() -> None:
    result = await execute(_Recovers(make_spec(_Recovers)), 0.1)
    assert result.message == "no answer within the timeout of 0.1s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0123, "12.3 ms"),
        (4.9517879049999465, "4.95s"),
        (12.34, "12.3s"),
        (125.2, "2m5s"),
        (float("nan"), "0 ms"),
    ],
)
def test_elapsed_times_are_formatted_short(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text


# -- thread work ----------------------------------------------------------------------------------


def _walk_root() -> int:
    file_age = _file_age()
    try:
        file_age.find_newest("/**/x*.gz")
    except file_age.WalkCancelled:
        return 1
    return 0


def _file_age() -> Any:
    sys.path.insert(0, str(PLUGINS))
    try:
        import file_age
    finally:
        sys.path.remove(str(PLUGINS))
    return file_age


@pytest.mark.parametrize(
    "pattern",
    [
        "/**/x*.gz",
        "/**",
        "/a/**/*.gz",
        "/*/x*.gz",
        "/a/[bc]/?2.gz",
        "/**/.x*.gz",
        "/d/**/",
        "/**/b/*",
    ],
)
def test_the_cancellable_walk_matches_what_glob_matches(tmp_path: Path, pattern: str) -> None:
    import glob

    for path in ("a/x1.gz", "a/b/x2.gz", "a/b/c/x3.gz", ".hid/x4.gz", "d/.x5.gz", "x6.gz"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    (tmp_path / "d" / "link").symlink_to(tmp_path / "a")
    root = str(tmp_path)

    def norm(paths: Any) -> set[str]:
        return {p.rstrip("/") for p in paths}

    found = norm(_file_age().iter_matches(root + pattern))
    assert found == norm(glob.iglob(root + pattern, recursive=True))
    assert found or pattern == "/d/**/"


def test_a_symlink_loop_is_walked_once_where_glob_would_follow_it_for_ever(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.gz").touch()
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")
    found = list(_file_age().iter_matches(f"{tmp_path}/**/x*.gz"))
    assert found == [f"{tmp_path}/a/b/x.gz"]


async def test_a_walk_of_root_stops_when_its_run_is_cancelled() -> None:
    pool = "walk-test"
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await run_blocking(_walk_root, pool=pool)
    # The thread notices at the next directory: the pool is idle again at once, not minutes later.
    await wait_for(lambda: pool_stats()[pool][1] == 0, 3, "the walk to stop")


async def test_queued_blocking_calls_of_a_cancelled_run_never_start() -> None:
    pool = "queue-test"
    started: list[int] = []
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold(i: int) -> None:
        started.append(i)
        while not blocking_cancelled() and not release.is_set():
            time.sleep(0.005)

    holders = [asyncio.create_task(run_blocking(hold, i, pool=pool)) for i in range(POOL_SIZE)]
    await wait_for(lambda: len(started) == POOL_SIZE, 3, "the pool to fill")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await run_blocking(hold, 99, pool=pool)  # queued behind the full pool
    loop.call_soon(release.set)
    await asyncio.gather(*holders)
    await asyncio.sleep(0.05)
    assert 99 not in started
    assert pool_stats()[pool] == (POOL_SIZE, 0)


class _Blocks(_Stalls):
    type_name: ClassVar[str] = "blocks"

    async def run(self) -> Result:
        set_phase("reading the file")
        await run_blocking(time.sleep, 0)
        return Result.ok("read")


async def test_a_run_queued_behind_a_full_pool_says_so_and_its_type_alone_waits() -> None:
    release = threading.Event()
    hogs = [
        asyncio.create_task(run_blocking(release.wait, pool="blocks")) for _ in range(POOL_SIZE)
    ]
    await wait_for(lambda: pool_stats().get("blocks", (0, 0))[1] == POOL_SIZE, 3, "a full pool")
    try:
        starved = await execute(_Blocks(make_spec(_Blocks)), 0.1)
        other = await execute(_Other(make_spec(_Other)), 1.0)  # another type's pool is free
    finally:
        release.set()
        await asyncio.gather(*hogs)
    assert starved.message == (
        f"no answer within the timeout of 0.1s while waiting for a free blocks thread "
        f"(all {POOL_SIZE} busy)"
    )
    assert other.status is Status.OK, other.message
    assert (await execute(_Blocks(make_spec(_Blocks)), 1.0)).status is Status.OK


class _Other(_Blocks):
    type_name: ClassVar[str] = "other"


HOST_CHECKS = """\
  - {name: disk, type: disk, path: /, interval: 200ms, timeout: 150ms}
  - {name: memory, type: memory, interval: 200ms, timeout: 150ms}
"""


def walking_checks(count: int, timeout: str = "300ms") -> str:
    lines = [
        f"  - {{name: walk{i}, type: file_age, path: '/**/x*.gz', max_age: 1d, "
        f"interval: 1s, timeout: {timeout}}}"
        for i in range(count)
    ]
    return "checks:\n" + "\n".join(lines) + "\n"


async def test_six_root_walks_do_not_starve_disk_and_memory_checks(tmp_path: Path) -> None:
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "c.yaml").write_text(walking_checks(6) + HOST_CHECKS)
    async with running_daemon(checks, plugins_dirs=[PLUGINS]) as r:
        await r.runs("walk5", 2, timeout=10)
        before = {name: sum(r.state(name).runs) for name in ("disk", "memory")}
        t0 = time.monotonic()
        await r.runs("disk", before["disk"] + 8, timeout=8)
        await r.runs("memory", before["memory"] + 8, timeout=8)
        elapsed = time.monotonic() - t0
        walk = r.state("walk0").last
        disk, memory = r.state("disk").last, r.state("memory").last
        threads = pool_stats().get("file_age", (0, 0))[0]
    assert walk.reason == Reason.TIMEOUT, walk.message
    assert disk.status is Status.OK, disk.message
    assert memory.status is not Status.UNKNOWN and memory.reason != Reason.TIMEOUT
    assert elapsed < 4.0, f"8 runs of 200 ms host checks took {elapsed:.2f}s"
    assert threads <= POOL_SIZE


async def test_sigterm_with_root_walks_in_flight_exits_promptly(tmp_path: Path) -> None:
    checks = tmp_path / "checks"
    checks.mkdir()
    # Timeouts far beyond the test: the walks are in flight when SIGTERM arrives.
    (checks / "c.yaml").write_text(walking_checks(6, timeout="60s"))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "probed",
        "run",
        "--checks-dir",
        str(checks),
        "--plugins-dir",
        str(PLUGINS),
        "--listen",
        f"127.0.0.1:{port}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stderr is not None
    try:
        lines: list[bytes] = []
        async with asyncio.timeout(20):
            while b"listening" not in b"".join(lines).lower():
                line = await proc.stderr.readline()
                assert line, b"".join(lines).decode()
                lines.append(line)
        await asyncio.sleep(0.5)  # startup_spread: let the walks begin
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            rest = await proc.stderr.read()
            code = await proc.wait()
        elapsed = time.monotonic() - t0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, rest.decode()[-2000:]
    assert elapsed < 5.0, f"SIGTERM took {elapsed:.1f}s"
    assert b"Traceback" not in rest


async def good_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 ready\r\n")
    await writer.drain()
    await reader.read()


async def test_a_healthy_check_keeps_its_schedule_beside_hostile_redis_tcp_and_postgres(
    tmp_path: Path,
) -> None:
    async with (
        serving(HUGE_BULK) as bulk,
        serving(endless_stream) as stream,
        serving(pg_flood("query")) as pg,
        serving(good_banner) as good,
    ):
        checks = write(
            tmp_path / "checks" / "c.yaml",
            f"""\
            checks:
              - {{name: redis, type: redis, url: "redis://127.0.0.1:{bulk}/0",
                  interval: 200ms, timeout: 150ms}}
              - {{name: stream, type: tcp, address: "127.0.0.1:{stream}", expect: "^x",
                  max_read_size: 1MiB, interval: 200ms, timeout: 150ms}}
              - {{name: pg, type: postgres, dsn: "postgresql://u@127.0.0.1:{pg}/db",
                  max_response_size: 1MiB, interval: 200ms, timeout: 150ms}}
              - {{name: steady, type: tcp, address: "127.0.0.1:{good}", expect: "^220",
                  interval: 100ms, timeout: 90ms}}
            """,
        ).parent
        async with running_daemon(checks) as r:
            for name in ("redis", "stream", "pg"):
                await r.runs(name, 3)
            started = sum(r.state("steady").runs)
            t0 = time.monotonic()
            await r.runs("steady", started + 10, timeout=5)
            elapsed = time.monotonic() - t0
            last = {name: r.state(name).last for name in ("redis", "stream", "pg", "steady")}
            status, _, _ = await r.get("/health/live")
    assert last["redis"].reason == Reason.PROTOCOL, last["redis"].message
    # Bounded either way: the budget, or (on a loaded machine) the timeout comes first.
    assert last["pg"].reason in (Reason.PROTOCOL, Reason.TIMEOUT), last["pg"].message
    assert last["stream"].reason in (Reason.ASSERTION, Reason.TIMEOUT), last["stream"].message
    assert last["steady"].status is Status.OK, last["steady"].message
    assert elapsed < 2.0, f"10 runs of a 100 ms check took {elapsed:.2f}s"
    assert status == 200


# -- bounded memory in a real `probed once` ------------------------------------------------------


async def test_probed_once_against_hostile_redis_tcp_and_postgres_stays_within_50_mb(
    tmp_path: Path,
) -> None:
    async with (
        serving(HUGE_BULK) as bulk,
        serving(HUGE_ARRAY) as array,
        serving(ENDLESS_LINE) as line,
        serving(endless_stream) as stream,
        serving(pg_flood("query")) as pg,
    ):
        checks = write(
            tmp_path / "checks" / "hostile.yaml",
            f"""\
            checks:
              - {{name: bulk, type: redis, url: "redis://127.0.0.1:{bulk}/0", timeout: 5s}}
              - {{name: array, type: redis, url: "redis://127.0.0.1:{array}/0", timeout: 5s}}
              - {{name: line, type: redis, url: "redis://127.0.0.1:{line}/0", timeout: 5s}}
              - {{name: stream, type: tcp, address: "127.0.0.1:{stream}", expect: "^x",
                  max_read_size: 1MiB, timeout: 5s}}
              - {{name: pg, type: postgres, dsn: "postgresql://u@127.0.0.1:{pg}/db",
                  timeout: 5s}}
            """,
        ).parent
        run = await once_measured(checks)
    for name in ("bulk", "array", "line", "pg"):
        assert run.results[name]["reason"] == Reason.PROTOCOL, run.results[name]
    assert run.results["stream"]["reason"] == Reason.ASSERTION, run.results["stream"]
    assert run.elapsed < 15, f"took {run.elapsed:.1f}s"
    assert run.rss_delta_kib < 50 * 1024, f"RSS grew by {run.rss_delta_kib} KiB"
