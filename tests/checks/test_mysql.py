"""The ``mysql`` check type against real throwaway MariaDB servers (the fault matrix).

Each fault must give the right status and a bounded reason within the timeout (never an
exception out of the check), and the password must never appear in any output: result
message, API view of the options, logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aiomysql
import pytest
import yaml
from pydantic import ValidationError

from probed.check import Result, Status
from probed.checks.mysql import MysqlCheck, MysqlOptions
from probed.config import load_checks, load_settings
from probed.plugins import check_types, get_plugin_manager
from probed.runner import execute
from probed.testing import make_spec, run_check
from tests.checks import _loop_guard
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.harness import write
from tests.servers._stub import Handler, silent, stub_server
from tests.servers._util import free_port
from tests.servers.mariadb import MYSQL_PASSWORD, MariadbServer

pytestmark = pytest.mark.services

WRONG_PASSWORD = "Wr0ng-My#pass"


def assert_no_secret(result: Result, *texts: str) -> None:
    for secret in (MYSQL_PASSWORD, WRONG_PASSWORD):
        for text in (result.message, repr(result), *texts):
            assert secret not in text


async def probed_queries(server: MariadbServer, like: str) -> list[tuple[Any, ...]]:
    """Statements of the check's user still running on the server that match ``like``."""
    return await asyncio.to_thread(
        server.execute,
        "SELECT ID, TIME, INFO FROM information_schema.PROCESSLIST "
        f"WHERE USER = 'probe' AND INFO LIKE '{like}'",
    )


async def wait_for_no_probed_sessions(server: MariadbServer, timeout: float = 5.0) -> None:
    """Poll until the check's connections are gone (the server notices asynchronously)."""
    deadline = time.monotonic() + timeout
    while rows := await asyncio.to_thread(
        server.execute, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'probe'"
    ):
        assert time.monotonic() < deadline, f"probe sessions still open: {rows}"
        await asyncio.sleep(0.05)


# --- target up -----------------------------------------------------------------------------


async def test_passes_against_a_running_server_with_phases_and_values(
    mariadb_server: MariadbServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await run_check(MysqlCheck, dsn=mariadb_server.dsn())
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "auth", "query"}
    assert all(v > 0 for v in result.phases.values())
    assert result.values["probed_mysql_rows"] == 1.0
    assert result.values["probed_mysql_query_value"] == 1.0
    assert f"127.0.0.1:{mariadb_server.port}: connected in" in result.message
    assert_no_secret(result, caplog.text)
    await wait_for_no_probed_sessions(mariadb_server)


async def test_host_user_password_options_and_tls_with_a_trusted_ca(
    mariadb_server: MariadbServer,
) -> None:
    result = await run_check(
        MysqlCheck,
        host="127.0.0.1",
        port=mariadb_server.port,
        user="probe",
        password=MYSQL_PASSWORD,
        database="mysql",
        query="SELECT DATABASE()",
        expect_value="mysql",
        tls={"ca_file": mariadb_server.ca_file},
    )
    assert result.status is Status.OK, result.message
    assert "TLS connected in" in result.message
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > time.time()


async def test_tls_server_name_is_verified_and_expiry_thresholds_apply(
    mariadb_server: MariadbServer,
) -> None:
    def tls(**extra: Any) -> dict[str, Any]:
        return {"ca_file": mariadb_server.ca_file, **extra}

    named = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), tls=tls(server_name="localhost"))
    assert named.status is Status.OK, named.message
    wrong = await run_check(
        MysqlCheck, dsn=mariadb_server.dsn(), tls=tls(server_name="db.elsewhere.test")
    )
    assert (wrong.status, wrong.reason) == (Status.FAIL, "tls")
    assert "db.elsewhere.test" in wrong.message
    expiring = await run_check(
        MysqlCheck,
        dsn=mariadb_server.dsn(),
        tls=tls(expiry_warn_days=10_000_000),  # trustme: valid for centuries
    )
    assert (expiring.status, expiring.reason) == (Status.WARN, "cert_expiry"), expiring
    assert "TLS certificate expires in" in expiring.message


async def test_tls_with_an_untrusted_certificate_fails_with_tls(
    mariadb_server: MariadbServer,
) -> None:
    result = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), tls=True)
    assert (result.status, result.reason) == (Status.FAIL, "tls")
    assert "certificate" in result.message
    assert_no_secret(result)


async def test_expected_value_and_row_count_pass_and_rows_are_streamed(
    mariadb_server: MariadbServer,
) -> None:
    result = await run_check(
        MysqlCheck,
        dsn=mariadb_server.dsn("app"),
        query="SELECT 'ok' FROM seq_1_to_3000",  # MariaDB's SEQUENCE engine
        expect_value="ok",
        expect_rows=3000,
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_mysql_rows"] == 3000.0
    assert "probed_mysql_query_value" not in result.values


# --- assertions and query errors -----------------------------------------------------------


async def test_unexpected_value_fails_with_assertion(mariadb_server: MariadbServer) -> None:
    result = await run_check(
        MysqlCheck, dsn=mariadb_server.dsn(), query="SELECT 41", expect_value=42
    )
    assert (result.status, result.reason) == (Status.FAIL, "assertion")
    assert "query returned 41, expected 42" in result.message
    assert result.values["probed_mysql_query_value"] == 41.0


async def test_unexpected_row_count_fails_with_assertion(mariadb_server: MariadbServer) -> None:
    result = await run_check(
        MysqlCheck, dsn=mariadb_server.dsn(), query="SELECT 1 FROM DUAL WHERE 0", expect_rows=1
    )
    assert (result.status, result.reason) == (Status.FAIL, "assertion")
    assert "query returned 0 rows" in result.message


async def test_boolean_expectation_matches_mysql_true(mariadb_server: MariadbServer) -> None:
    ok = await run_check(
        MysqlCheck, dsn=mariadb_server.dsn(), query="SELECT 2 > 1", expect_value=True
    )
    assert ok.status is Status.OK, ok.message
    bad = await run_check(
        MysqlCheck, dsn=mariadb_server.dsn(), query="SELECT 1 > 2", expect_value=True
    )
    assert (bad.status, bad.reason) == (Status.FAIL, "assertion")


async def test_sql_error_fails_with_query_reason_and_error_number(
    mariadb_server: MariadbServer,
) -> None:
    result = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), query="SELEC 1")
    assert (result.status, result.reason) == (Status.FAIL, "query")
    assert "(error 1064)" in result.message
    assert "query" in result.phases


async def test_result_over_max_response_size_fails_with_protocol(
    mariadb_server: MariadbServer,
) -> None:
    result = await run_check(
        MysqlCheck,
        dsn=mariadb_server.dsn("app"),
        query="SELECT REPEAT('x', 1000) FROM seq_1_to_1000000",
        max_response_size="64KiB",
    )
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "sent more than 64.0 KiB (max_response_size) while running the query" in result.message
    await wait_for_no_probed_sessions(mariadb_server)


# --- faults --------------------------------------------------------------------------------


async def test_wrong_password_fails_with_auth_and_the_password_is_nowhere(
    mariadb_server: MariadbServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spec = make_spec(MysqlCheck, dsn=mariadb_server.dsn(password=WRONG_PASSWORD))
    result = await run_check(MysqlCheck, dsn=mariadb_server.dsn(password=WRONG_PASSWORD))
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert "Access denied for user 'probe'" in result.message
    assert "(error 1045)" in result.message
    assert "auth" in result.phases
    assert_no_secret(result, caplog.text, json.dumps(spec.public_options()), repr(spec))
    separate = await run_check(
        MysqlCheck,
        host="127.0.0.1",
        port=mariadb_server.port,
        user="probe",
        password=WRONG_PASSWORD,
    )
    assert (separate.status, separate.reason) == (Status.FAIL, "auth")
    assert_no_secret(separate, caplog.text)


async def test_missing_database_fails_with_database_missing(
    mariadb_server: MariadbServer,
) -> None:
    result = await run_check(MysqlCheck, dsn=mariadb_server.dsn("no_such_db"))
    assert (result.status, result.reason) == (Status.FAIL, "database_missing")
    assert "no_such_db" in result.message


async def test_nothing_listening_fails_with_connection_refused() -> None:
    port = free_port()
    result = await run_check(MysqlCheck, dsn=f"mysql://probe:{MYSQL_PASSWORD}@127.0.0.1:{port}/")
    assert (result.status, result.reason) == (Status.FAIL, "connection_refused")
    assert f"127.0.0.1:{port}" in result.message
    assert set(result.phases) == {"connect"}
    assert_no_secret(result)


async def test_silent_listener_times_out_at_the_check_timeout() -> None:
    async with stub_server(silent) as port:
        start = time.monotonic()
        result = await run_check(
            MysqlCheck, timeout=0.5, dsn=f"mysql://probe:{MYSQL_PASSWORD}@127.0.0.1:{port}/"
        )
        elapsed = time.monotonic() - start
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert "while connecting within the timeout of 500ms" in result.message
    assert 0.3 < elapsed < 0.6
    assert_no_secret(result)


async def test_stopped_server_fails_and_the_check_recovers_after_restart(
    mariadb_factory: Callable[..., MariadbServer],
) -> None:
    server = mariadb_factory()
    spec = make_spec(MysqlCheck, timeout=5, dsn=server.dsn())
    check = MysqlCheck(spec)
    await check.setup()
    try:
        assert (await execute(check, spec.timeout)).status is Status.OK
        await asyncio.to_thread(server.stop)
        down = await execute(check, spec.timeout)
        assert (down.status, down.reason) == (Status.FAIL, "connection_refused")
        assert_no_secret(down)
        await asyncio.to_thread(server.start)
        after = await execute(check, spec.timeout)
        assert after.status is Status.OK, after.message
    finally:
        await check.close()


async def test_max_connections_reached_fails_with_too_many_connections(
    mariadb_server: MariadbServer,
) -> None:
    held: list[Any] = []
    await asyncio.to_thread(mariadb_server.execute, "SET GLOBAL max_connections = 10")
    try:
        while len(held) < 20:  # fill every slot (10 is MariaDB's minimum)
            try:
                held.append(
                    await aiomysql.connect(
                        host=mariadb_server.host,
                        port=mariadb_server.port,
                        user="probe",
                        password=MYSQL_PASSWORD,
                    )
                )
            except aiomysql.OperationalError:
                break
        result = await run_check(MysqlCheck, dsn=mariadb_server.dsn())
    finally:
        for conn in held:
            conn.close()
        await asyncio.to_thread(mariadb_server.execute, "SET GLOBAL max_connections = 151")
    assert len(held) < 20
    assert (result.status, result.reason) == (Status.FAIL, "too_many_connections")
    assert "Too many connections (error 1040)" in result.message
    assert "max_connections" in result.message
    assert_no_secret(result)


async def test_slow_query_times_out_and_is_killed_on_the_server(
    mariadb_server: MariadbServer,
) -> None:
    start = time.monotonic()
    result = await run_check(
        MysqlCheck, timeout=1.0, dsn=mariadb_server.dsn(), query="SELECT SLEEP(30), 'slow-q1'"
    )
    elapsed = time.monotonic() - start
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert elapsed < 1.1
    assert "while running the query within the timeout of 1s" in result.message
    assert "the query was killed on the server (KILL QUERY" in result.message
    assert "query" in result.phases
    # KILL QUERY has returned: the statement is gone from the process list right away.
    assert await probed_queries(mariadb_server, "%slow-q1%") == []
    await wait_for_no_probed_sessions(mariadb_server)


async def test_run_cancelled_mid_query_still_kills_the_query(
    mariadb_server: MariadbServer,
) -> None:
    spec = make_spec(
        MysqlCheck, timeout=10, dsn=mariadb_server.dsn(), query="SELECT SLEEP(30), 'slow-q2'"
    )
    check = MysqlCheck(spec)
    await check.setup()
    task = asyncio.create_task(check.run())
    deadline = time.monotonic() + 5
    while not await probed_queries(mariadb_server, "%slow-q2%"):
        assert time.monotonic() < deadline, "the query never showed up in the process list"
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await check.close()  # waits for the background kill
    assert await probed_queries(mariadb_server, "%slow-q2%") == []


# --- role ------------------------------------------------------------------------------------


async def test_read_only_server_fails_a_primary_expectation_with_role(
    mariadb_server: MariadbServer,
) -> None:
    await asyncio.to_thread(mariadb_server.execute, "SET GLOBAL read_only = 1")
    try:
        primary = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), expect_role="primary")
        replica = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), expect_role="replica")
        anything = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), expect_role="any")
    finally:
        await asyncio.to_thread(mariadb_server.execute, "SET GLOBAL read_only = 0")
    assert (primary.status, primary.reason) == (Status.FAIL, "role")
    assert "is read-only (@@read_only=ON), expected a writable primary" in primary.message
    assert primary.values["probed_mysql_read_only"] == 1.0
    assert (replica.status, replica.reason) == (Status.FAIL, "role")
    assert "has no replication configured" in replica.message
    assert anything.status is Status.OK, anything.message
    assert "read-only, no replication configured" in anything.message
    assert "role" in anything.phases
    writable = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), expect_role="primary")
    assert writable.status is Status.OK, writable.message
    assert writable.values["probed_mysql_read_only"] == 0.0
    assert writable.values["probed_mysql_replica"] == 0.0


async def test_replica_with_stopped_replication_fails_with_replication(
    mariadb_server: MariadbServer,
) -> None:
    await asyncio.to_thread(
        mariadb_server.execute,
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={free_port()}, "
        "MASTER_USER='repl', MASTER_PASSWORD='x'",
        "SET GLOBAL read_only = 1",
    )
    try:
        result = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), expect_role="replica")
        primary = await run_check(MysqlCheck, dsn=mariadb_server.dsn(), expect_role="primary")
    finally:
        await asyncio.to_thread(
            mariadb_server.execute, "RESET SLAVE ALL", "SET GLOBAL read_only = 0"
        )
    assert (result.status, result.reason) == (Status.FAIL, "replication")
    assert "replication is not running (IO thread: No, SQL thread: No)" in result.message
    assert result.values["probed_mysql_replica"] == 1.0
    assert result.values["probed_mysql_replication_running"] == 0.0
    assert (primary.status, primary.reason) == (Status.FAIL, "role")


async def test_running_replica_passes_with_its_lag(
    mariadb_factory: Callable[..., MariadbServer],
) -> None:
    primary = mariadb_factory(server_id="1", log_bin="primary-bin")
    replica = mariadb_factory(server_id="2", read_only="1")
    await asyncio.to_thread(
        primary.execute,
        "CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-pw'",
        "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
    )
    (log_file, position, *_), *_ = await asyncio.to_thread(primary.execute, "SHOW MASTER STATUS")
    await asyncio.to_thread(
        replica.execute,
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
        f"MASTER_USER='repl', MASTER_PASSWORD='repl-pw', MASTER_LOG_FILE='{log_file}', "
        f"MASTER_LOG_POS={position}, MASTER_USE_GTID=no",
        "START SLAVE",
    )
    deadline = time.monotonic() + 15
    while True:  # poll until both replication threads run
        result = await run_check(
            MysqlCheck, dsn=replica.dsn(), expect_role="replica", fail_replication_lag="1h"
        )
        if result.status is Status.OK or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert result.status is Status.OK, result.message
    assert "read-only replica, replication running, replication lag" in result.message
    assert result.values["probed_mysql_replication_running"] == 1.0
    assert 0.0 <= result.values["probed_mysql_replication_lag_seconds"] < 3600
    on_primary = await run_check(MysqlCheck, dsn=primary.dsn(), expect_role="replica")
    assert (on_primary.status, on_primary.reason) == (Status.FAIL, "role")


async def test_role_without_the_monitor_privilege_fails_with_permission(
    mariadb_server: MariadbServer,
) -> None:
    await asyncio.to_thread(
        mariadb_server.execute,
        "CREATE USER IF NOT EXISTS 'bare'@'%' IDENTIFIED BY 'bare-pw'",
    )
    result = await run_check(
        MysqlCheck, dsn=mariadb_server.dsn(user="bare", password="bare-pw"), expect_role="replica"
    )
    assert (result.status, result.reason) == (Status.FAIL, "permission")
    assert "SLAVE MONITOR" in result.message


# --- hostile or wrong servers ----------------------------------------------------------------


def greeting(plugin: bytes = b"mysql_native_password", *, ssl_cap: bool = False) -> bytes:
    """A protocol-10 server greeting packet announcing ``plugin``."""
    caps = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000 | (0x800 if ssl_cap else 0)
    body = (
        b"\x0a5.5.5-10.11.0-stub\x00" + struct.pack("<I", 7) + b"abcdefgh\x00"
        + struct.pack("<HBHH", caps & 0xFFFF, 33, 2, caps >> 16) + b"\x15" + b"\x00" * 10
        + b"ijklmnopqrst\x00" + plugin + b"\x00"
    )  # fmt: skip
    return struct.pack("<I", len(body))[:3] + b"\x00" + body


def recording(received: bytearray, first: bytes, *then: bytes) -> Handler:
    """A stub server that sends ``first`` (a greeting), answers each whole packet the client
    sends with the next of ``then``, and records every byte it receives."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(first)
        await writer.drain()
        for reply in then:
            header = await reader.readexactly(4)
            size = int.from_bytes(header[:3], "little")
            received.extend(header + await reader.readexactly(size))
            writer.write(reply)
            await writer.drain()
        while chunk := await reader.read(4096):
            received.extend(chunk)

    return handler


_SWITCH: Final = b"\xfemysql_clear_password\x00"


@pytest.mark.parametrize(
    "packets",
    [
        pytest.param((greeting(b"mysql_clear_password"),), id="in-the-greeting"),
        pytest.param(  # after the handshake response (a native scramble)
            (greeting(), struct.pack("<I", len(_SWITCH))[:3] + b"\x02" + _SWITCH),
            id="in-an-auth-switch",
        ),
    ],
)
async def test_clear_text_password_request_is_refused_without_tls(
    packets: tuple[bytes, ...],
) -> None:
    received = bytearray()
    async with stub_server(recording(received, *packets)) as port:
        result = await run_check(
            MysqlCheck, dsn=f"mysql://probe:{MYSQL_PASSWORD}@127.0.0.1:{port}/"
        )
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert "asked for the password in clear text (mysql_clear_password)" in result.message
    assert MYSQL_PASSWORD.encode() not in received


async def test_tls_required_but_not_offered_fails_before_sending_anything() -> None:
    received = bytearray()
    plain = recording(received, greeting())
    async with stub_server(plain) as port:
        result = await run_check(
            MysqlCheck, dsn=f"mysql://probe:{MYSQL_PASSWORD}@127.0.0.1:{port}/", tls=True
        )
    assert (result.status, result.reason) == (Status.FAIL, "tls")
    assert "does not offer TLS" in result.message
    assert bytes(received) == b""


async def test_huge_announced_packet_is_not_buffered() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\xff\xff\xff\x00")  # a 16 MiB packet follows...
        chunk = b"\x00" * 65536
        for _ in range(64):  # ...of which 4 MiB ever arrive
            writer.write(chunk)
            await writer.drain()
        await reader.read()

    async with stub_server(flood) as port:
        result = await run_check(
            MysqlCheck, dsn=f"mysql://probe@127.0.0.1:{port}/", max_response_size="1MiB"
        )
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "while connecting" in result.message


async def test_http_server_on_the_port_fails_with_protocol() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with stub_server(http) as port:
        result = await run_check(MysqlCheck, timeout=2, dsn=f"mysql://probe@127.0.0.1:{port}/")
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "protocol error while connecting" in result.message
    assert "(is it MySQL on that port?)" in result.message


# --- the event loop --------------------------------------------------------------------------


async def test_no_blocking_calls_on_the_event_loop(
    mariadb_server: MariadbServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = (
        *_loop_guard.BLOCKING_CALLS,
        socket.getaddrinfo,
        time.sleep,
        ssl.SSLContext.load_verify_locations,
        ssl.SSLContext.load_cert_chain,
    )
    monkeypatch.setattr(_loop_guard, "BLOCKING_CALLS", blocking)
    spec = make_spec(
        MysqlCheck,
        dsn=f"mysql://probe:{MYSQL_PASSWORD}@localhost:{mariadb_server.port}/",
        tls={"ca_file": mariadb_server.ca_file},
        expect_role="any",
    )
    check = MysqlCheck(spec)
    with blocking_calls_on_loop_thread() as seen:
        await check.setup()
        result = await execute(check, spec.timeout)
        await check.close()
    assert result.status is Status.OK, result.message
    assert seen == []


# --- options ---------------------------------------------------------------------------------


def test_dsn_password_is_redacted_in_repr_str_and_dumps() -> None:
    options = MysqlOptions.model_validate({"dsn": f"mysql://probe:{MYSQL_PASSWORD}@db:3306/app"})
    for text in (
        repr(options),
        options.model_dump_json(),
        json.dumps(make_spec(MysqlCheck, dsn=options.dsn).public_options()),
    ):
        assert MYSQL_PASSWORD not in text
        assert "mysql://probe:***@db:3306/app" in text
    assert options.target() == ("db", 3306, "probe", MYSQL_PASSWORD, "app")
    assert options.endpoint == "db:3306"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dsn": "postgresql://u@h/db"}, "dsn must start with mysql:// or mariadb://"),
        ({"dsn": "mysql://u@h/db?ssl=1"}, "dsn takes no ?parameters"),
        ({"dsn": "mysql://h:3306/db"}, "dsn has no user name"),
        ({"dsn": "mysql://u:p@h/db", "password": "q"}, "password is given twice"),
        ({"dsn": "mysql://u@h/db", "host": "h"}, "dsn and host both say where to connect"),
        ({"host": "h"}, "user is required with host"),
        ({}, "give dsn (mysql://user@host:port/db) or host and user"),
        (
            {"dsn": "mysql://u@h/db", "expect_role": "slave"},
            "'slave' is not a role; use 'primary' (master, source), 'replica' (slave) or 'any'",
        ),
        ({"dsn": "mysql://u@h/db", "expect_role": "replca"}, "did you mean 'replica'"),
        (
            {"dsn": "mysql://u@h/db", "warn_replication_lag": "1m", "fail_replication_lag": "5s"},
            "warn_replication_lag (1m) must not be above fail_replication_lag (5s)",
        ),
    ],
)
def test_invalid_options_are_rejected_with_a_clear_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        MysqlOptions.model_validate(options)
    assert message in str(info.value)
    assert ":p@h" not in str(info.value)


def test_validate_names_file_line_and_suggests_the_key(tmp_path: Path) -> None:
    write(
        tmp_path / "checks.d" / "db.yaml",
        """
        checks:
          - name: db
            type: mysql
            dsn: mysql://probe@127.0.0.1/
            querry: SELECT 1
        """,
    )
    settings = load_settings(None, {"checks_dirs": (tmp_path / "checks.d",)})
    loaded = load_checks(settings, check_types(get_plugin_manager(entry_points=False)))
    errors = [str(e) for e in loaded.errors]
    assert len(errors) == 1
    assert "db.yaml:5: checks[0].querry: unknown key 'querry'" in errors[0]
    assert "did you mean 'query'" in errors[0]


def test_missing_driver_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MysqlCheck, "requires", ("no_such_driver_m9",))
    write(tmp_path / "db.yaml", "checks:\n  - {name: db, type: mysql, dsn: 'mysql://u@h/'}\n")
    settings = load_settings(None, {"checks_dirs": (tmp_path,)})
    loaded = load_checks(settings, check_types(get_plugin_manager(entry_points=False)))
    assert "pip install 'probed[mysql]'" in " ".join(str(e) for e in loaded.errors)


def test_example_file_validates() -> None:
    path = Path(__file__).parents[2] / "checks.d" / "mysql.yaml"
    checks = yaml.safe_load(path.read_text())["checks"]
    assert checks
    common = {"name", "type", "interval", "timeout", "labels", "readiness", "description",
              "failure_threshold", "success_threshold"}  # fmt: skip
    for entry in checks:
        assert entry["type"] == "mysql"
        options = {k: v for k, v in entry.items() if k not in common}
        MysqlOptions.model_validate(options)
