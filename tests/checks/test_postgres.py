"""The ``postgres`` check type against real throwaway PostgreSQL servers (the fault matrix).

Each fault must give the right status and a bounded reason (never an exception out of the
check), and the password must never appear in a result message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from pydantic import ValidationError

from probed.check import Result, Status
from probed.checks._db_common import SecretUrl
from probed.checks.postgres import PostgresCheck, PostgresOptions
from probed.redact import Redactor
from probed.runner import execute
from probed.testing import make_spec, run_check
from tests.servers._stub import silent, stub_server
from tests.servers._util import free_port
from tests.servers.postgres import PG_PASSWORD, PostgresServer

pytestmark = pytest.mark.services

WRONG_PASSWORD = "Wr0ng-Pass#word"


def assert_no_secret(result: Result, *secrets: str) -> None:
    for secret in (PG_PASSWORD, WRONG_PASSWORD, *secrets):
        assert secret not in result.message
        assert secret not in repr(result)


async def junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(8)  # the client's first message (SSLRequest or StartupMessage)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await reader.read()


async def probed_backends(server: PostgresServer) -> int:
    conn = await asyncpg.connect(server.dsn())
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'probed'"
        )
        return int(count)
    finally:
        await conn.close()


async def wait_for_no_probed_backends(server: PostgresServer, timeout: float = 10.0) -> None:
    """Poll until the server has no session left from the check (it closes asynchronously)."""
    deadline = time.monotonic() + timeout
    while (count := await probed_backends(server)) != 0:
        assert time.monotonic() < deadline, f"{count} probed sessions still open"
        await asyncio.sleep(0.05)


# --- target up -----------------------------------------------------------------------------


async def test_passes_against_a_running_server_with_phases_and_values(
    postgres_server: PostgresServer,
) -> None:
    result = await run_check(PostgresCheck, dsn=postgres_server.dsn())
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "query"}
    assert all(v > 0 for v in result.phases.values())
    assert result.values["probed_postgres_rows"] == 1.0
    assert result.values["probed_postgres_query_value"] == 1.0
    assert "connected in" in result.message
    assert_no_secret(result)


async def test_password_option_is_used_when_dsn_has_none(postgres_server: PostgresServer) -> None:
    result = await run_check(
        PostgresCheck, dsn=postgres_server.dsn_without_password(), password=PG_PASSWORD
    )
    assert result.status is Status.OK, result.message


async def test_connection_is_closed_after_every_run(postgres_server: PostgresServer) -> None:
    for _ in range(3):
        result = await run_check(PostgresCheck, dsn=postgres_server.dsn())
        assert result.status is Status.OK
    await wait_for_no_probed_backends(postgres_server)


async def test_expected_value_and_row_count_pass_when_they_match(
    postgres_server: PostgresServer,
) -> None:
    result = await run_check(
        PostgresCheck,
        dsn=postgres_server.dsn(),
        query="SELECT 'ok' FROM generate_series(1, 3)",
        expect_value="ok",
        expect_rows=3,
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_postgres_rows"] == 3.0
    assert "probed_postgres_query_value" not in result.values


# --- assertions ----------------------------------------------------------------------------


async def test_unexpected_value_fails_with_assertion(postgres_server: PostgresServer) -> None:
    result = await run_check(
        PostgresCheck, dsn=postgres_server.dsn(), query="SELECT 41", expect_value=42
    )
    assert (result.status, result.reason) == (Status.FAIL, "assertion")
    assert "returned 41, expected 42" in result.message
    assert result.values["probed_postgres_query_value"] == 41.0


async def test_unexpected_row_count_fails_with_assertion(postgres_server: PostgresServer) -> None:
    result = await run_check(
        PostgresCheck,
        dsn=postgres_server.dsn(),
        query="SELECT 1 WHERE false",
        expect_rows=1,
    )
    assert (result.status, result.reason) == (Status.FAIL, "assertion")
    assert "returned 0 rows" in result.message
    assert "expected 1" in result.message


async def test_sql_error_in_query_fails_with_query_reason(postgres_server: PostgresServer) -> None:
    result = await run_check(PostgresCheck, dsn=postgres_server.dsn(), query="SELEC 1")
    assert (result.status, result.reason) == (Status.FAIL, "query")
    assert "SQLSTATE 42601" in result.message


# --- role and replication lag --------------------------------------------------------------


async def test_replica_expected_on_a_primary_fails_with_role(
    postgres_server: PostgresServer,
) -> None:
    result = await run_check(PostgresCheck, dsn=postgres_server.dsn(), expect_role="replica")
    assert (result.status, result.reason) == (Status.FAIL, "role")
    assert "is a primary, expected a replica" in result.message
    assert result.values["probed_postgres_in_recovery"] == 0.0


async def test_lag_limits_on_a_primary_do_not_apply(postgres_server: PostgresServer) -> None:
    # A primary replays nothing, so it has no lag: the limits pass and no lag series is emitted.
    result = await run_check(
        PostgresCheck,
        dsn=postgres_server.dsn(),
        warn_replication_lag="1ms",
        fail_replication_lag="2ms",
    )
    assert result.status is Status.OK, result.message
    assert "primary, replication lag not applicable" in result.message
    assert "probed_postgres_replication_lag_seconds" not in result.values
    assert "role" in result.phases


async def test_replica_reports_its_role_and_lag(postgres_replica: PostgresServer) -> None:
    result = await run_check(
        PostgresCheck,
        dsn=postgres_replica.dsn(),
        expect_role="replica",
        fail_replication_lag="1h",
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_postgres_in_recovery"] == 1.0
    assert 0.0 <= result.values["probed_postgres_replication_lag_seconds"] < 3600
    primary = await run_check(PostgresCheck, dsn=postgres_replica.dsn(), expect_role="primary")
    assert (primary.status, primary.reason) == (Status.FAIL, "role")
    assert "is a replica, expected a primary" in primary.message


# --- faults --------------------------------------------------------------------------------


async def test_wrong_password_fails_with_auth_and_never_shows_a_password(
    postgres_server: PostgresServer,
) -> None:
    result = await run_check(PostgresCheck, dsn=postgres_server.dsn(password=WRONG_PASSWORD))
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert "password authentication failed" in result.message
    assert_no_secret(result)
    separate = await run_check(
        PostgresCheck, dsn=postgres_server.dsn_without_password(), password=WRONG_PASSWORD
    )
    assert (separate.status, separate.reason) == (Status.FAIL, "auth")
    assert_no_secret(separate)


async def test_missing_database_fails_with_database_missing(
    postgres_server: PostgresServer,
) -> None:
    result = await run_check(PostgresCheck, dsn=postgres_server.dsn("no_such_db"))
    assert (result.status, result.reason) == (Status.FAIL, "database_missing")
    assert '"no_such_db" does not exist' in result.message
    assert_no_secret(result)


async def test_nothing_listening_fails_with_connection_refused() -> None:
    port = free_port()
    result = await run_check(
        PostgresCheck, dsn=f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/db"
    )
    assert (result.status, result.reason) == (Status.FAIL, "connection_refused")
    assert f"127.0.0.1:{port}" in result.message
    assert "connect" in result.phases
    assert_no_secret(result)


async def test_silent_listener_times_out_at_the_check_timeout() -> None:
    async with stub_server(silent) as port:
        start = time.monotonic()
        result = await run_check(
            PostgresCheck,
            timeout=0.5,
            dsn=f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/db",
        )
        elapsed = time.monotonic() - start
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert 0.4 < elapsed < 2.0
    assert_no_secret(result)


async def test_garbage_reply_fails_with_protocol() -> None:
    async with stub_server(junk) as port:
        result = await run_check(
            PostgresCheck, dsn=f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:{port}/db"
        )
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "is it PostgreSQL on that port" in result.message
    assert_no_secret(result)


async def test_query_slower_than_the_timeout_times_out_and_closes_the_connection(
    postgres_server: PostgresServer,
) -> None:
    result = await run_check(
        PostgresCheck, timeout=0.5, dsn=postgres_server.dsn(), query="SELECT pg_sleep(30)"
    )
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    await wait_for_no_probed_backends(postgres_server)


async def test_backend_terminated_during_query_fails_with_connection_reset(
    postgres_server: PostgresServer,
) -> None:
    async def terminate_probe() -> None:
        conn = await asyncpg.connect(postgres_server.dsn())
        try:
            deadline = time.monotonic() + 10
            # Poll until the check's query is running, then terminate its backend.
            while time.monotonic() < deadline:
                if await conn.fetchval(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'probed' AND query LIKE 'SELECT pg_sleep%'"
                ):
                    return
                await asyncio.sleep(0.02)
            raise AssertionError("the check's query never showed up in pg_stat_activity")
        finally:
            await conn.close()

    killer = asyncio.create_task(terminate_probe())
    result = await run_check(
        PostgresCheck, timeout=15, dsn=postgres_server.dsn(), query="SELECT pg_sleep(30)"
    )
    await killer
    assert (result.status, result.reason) == (Status.FAIL, "connection_reset"), result.message
    assert "terminating connection due to administrator command" in result.message
    assert "query" in result.phases
    assert_no_secret(result)


async def test_too_many_connections_fails_with_its_own_reason(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    server = postgres_factory(max_connections="2", superuser_reserved_connections="0")
    held = [await asyncpg.connect(server.dsn()) for _ in range(2)]
    try:
        result = await run_check(PostgresCheck, dsn=server.dsn())
    finally:
        for conn in held:
            await conn.close()
    assert (result.status, result.reason) == (Status.FAIL, "too_many_connections")
    assert "too many clients" in result.message
    assert_no_secret(result)


async def test_stopped_server_fails_and_the_check_recovers_after_restart(
    postgres_factory: Callable[..., PostgresServer],
) -> None:
    server = postgres_factory()
    spec = make_spec(PostgresCheck, timeout=5, dsn=server.dsn())
    check = PostgresCheck(spec)
    await check.setup()
    try:
        assert (await execute(check, spec.timeout)).status is Status.OK
        await asyncio.to_thread(server.stop)
        down = await execute(check, spec.timeout)
        assert (down.status, down.reason) == (Status.FAIL, "connection_refused")
        await asyncio.to_thread(server.start)
        assert (await execute(check, spec.timeout)).status is Status.OK
        # A restart between runs is invisible: each run opens its own connection.
        await asyncio.to_thread(server.restart)
        after = await execute(check, spec.timeout)
        assert after.status is Status.OK, after.message
    finally:
        await check.close()


# --- options ---------------------------------------------------------------------------------


def test_dsn_password_is_redacted_in_repr_str_and_dumps() -> None:
    options = PostgresOptions.model_validate(
        {"dsn": f"postgresql://probe:{PG_PASSWORD}@db.internal:5432/app?sslmode=require"}
    )
    expected = "postgresql://probe:***@db.internal:5432/app?sslmode=require"
    assert str(options.dsn) == expected
    for text in (
        repr(options),
        str(options.model_dump()),
        options.model_dump_json(),
        json.dumps(make_spec(PostgresCheck, dsn=options.dsn).public_options()),
    ):
        assert PG_PASSWORD not in text
        assert expected in text
    assert options.dsn.get_secret_value().count(PG_PASSWORD) == 1


def test_password_option_is_secret() -> None:
    options = PostgresOptions.model_validate(
        {"dsn": "postgresql://probe@127.0.0.1/app", "password": PG_PASSWORD}
    )
    assert PG_PASSWORD not in repr(options)
    assert PG_PASSWORD not in options.model_dump_json()


def test_changed_password_is_a_changed_configuration() -> None:
    one = PostgresOptions.model_validate({"dsn": "postgresql://u:a@h/db"})
    two = PostgresOptions.model_validate({"dsn": "postgresql://u:b@h/db"})
    assert one != two
    assert str(one.dsn) == str(two.dsn)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dsn": "mysql://u@h/db"}, "dsn must start with postgresql://"),
        ({"dsn": "postgresql://u:p@h:99999/db"}, "port in the URL is not a number"),
        ({"dsn": "postgresql://u:pa#ss@h/db"}, "percent-encode characters such as #"),
        ({"dsn": "postgresql://u@h/db?sslmode=maybe"}, "sslmode='maybe'"),
        ({"dsn": "postgresql://u:p@h/db", "password": "q"}, "password is given twice"),
        (
            {
                "dsn": "postgresql://u@h/db",
                "warn_replication_lag": "1m",
                "fail_replication_lag": "10s",
            },
            "warn_replication_lag (1m) must not be above fail_replication_lag (10s)",
        ),
        (
            {"dsn": "postgresql://u@h/db", "expect_role": "master"},
            "'master' is not a role; use 'primary' (master) or 'replica' (standby)",
        ),
        ({"dsn": "postgresql://u@h/db", "querry": "SELECT 1"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options_are_rejected_with_a_clear_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        PostgresOptions.model_validate(options)
    assert message in str(info.value)
    assert ":p@h" not in str(info.value)
    assert "pa#ss" not in str(info.value)


def test_json_schema_marks_the_dsn_write_only() -> None:
    schema = PostgresOptions.model_json_schema()
    assert schema["properties"]["dsn"]["writeOnly"] is True
    assert schema["required"] == ["dsn"]


def test_redact_removes_plain_and_encoded_passwords_and_url_userinfo() -> None:
    text = "failed: postgresql://u:p%40ss@h/db?password=p@ss and p@ss"
    cleaned = Redactor(SecretUrl("postgresql://u:p%40ss@h/db").secrets())(text)
    assert "p@ss" not in cleaned
    assert "p%40ss" not in cleaned


def test_example_file_validates() -> None:
    path = Path(__file__).parents[2] / "checks.d" / "postgres.yaml"
    checks = yaml.safe_load(path.read_text())["checks"]
    assert checks
    common = {"name", "type", "interval", "timeout", "labels", "readiness", "description",
              "failure_threshold", "success_threshold"}  # fmt: skip
    for entry in checks:
        assert entry["type"] == "postgres"
        options = {k: v for k, v in entry.items() if k not in common}
        PostgresOptions.model_validate(options)
