"""The ``redis`` check type against real throwaway redis-server processes (the fault matrix).

Each fault must give the right status and a bounded reason (never an exception out of the
check), and the password must never appear in a result message.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from pydantic import ValidationError

from probed.check import Result, Status
from probed.checks.redis import RedisCheck, RedisOptions
from probed.runner import execute
from probed.testing import make_spec, run_check
from tests.servers._stub import Handler, silent, stub_server
from tests.servers._util import free_port
from tests.servers.redis import (
    REDIS_ACL_PASSWORD,
    REDIS_ACL_USER,
    REDIS_PASSWORD,
    RedisServer,
)

pytestmark = pytest.mark.services

WRONG_PASSWORD = "Wr0ng-Redis#pw"


def assert_no_secret(result: Result) -> None:
    for secret in (REDIS_PASSWORD, REDIS_ACL_PASSWORD, WRONG_PASSWORD):
        assert secret not in result.message
        assert secret not in repr(result)


def info_samples(result: Result) -> dict[str, float]:
    return {s.labels[0]: s.value for s in result.samples if s.name == "probed_redis_info"}


def replying(reply: bytes) -> Handler:
    """A handler that answers every command it receives with ``reply`` (a RESP frame or junk)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            writer.write(reply)
            await writer.drain()

    return handler


# --- target up -------------------------------------------------------------------------------


async def test_passes_with_password_and_reports_phases(redis_server: RedisServer) -> None:
    result = await run_check(RedisCheck, url=redis_server.url())
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "ping"}
    assert "PONG in" in result.message
    assert_no_secret(result)


async def test_separate_password_and_acl_user_options_log_in(redis_server: RedisServer) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}/0"
    default_user = await run_check(RedisCheck, url=url, password=REDIS_PASSWORD)
    assert default_user.status is Status.OK, default_user.message
    acl = await run_check(RedisCheck, url=url, username=REDIS_ACL_USER, password=REDIS_ACL_PASSWORD)
    assert acl.status is Status.OK, acl.message
    in_url = await run_check(
        RedisCheck, url=redis_server.url(user=REDIS_ACL_USER, password=REDIS_ACL_PASSWORD)
    )
    assert in_url.status is Status.OK, in_url.message


async def test_minimal_acl_user_with_ping_and_info_is_enough(
    redis_factory: Callable[..., RedisServer],
) -> None:
    # The README's least-privilege user: the check sends nothing else that must succeed.
    server = redis_factory()
    async with aioredis.Redis(host=server.host, port=server.port) as admin:
        await admin.acl_setuser(
            "mini", enabled=True, passwords=["+mini-pw"], commands=["+ping", "+info"]
        )
    result = await run_check(
        RedisCheck,
        url=f"redis://127.0.0.1:{server.port}/0",
        username="mini",
        password="mini-pw",
        expect_role="master",
        info_fields={"used_memory": None},
    )
    assert result.status is Status.OK, result.message


async def test_connections_are_closed_after_every_run(redis_server: RedisServer) -> None:
    async with aioredis.Redis(
        host=redis_server.host, port=redis_server.port, password=REDIS_PASSWORD
    ) as admin:
        before = (await admin.info("clients"))["connected_clients"]
        for _ in range(5):
            assert (await run_check(RedisCheck, url=redis_server.url())).status is Status.OK
        silent_port = free_port()  # a failing run must not leak either
        await run_check(RedisCheck, url=f"redis://127.0.0.1:{silent_port}/0")
        assert (await admin.info("clients"))["connected_clients"] == before


async def test_watched_info_fields_are_exported_as_samples(redis_server: RedisServer) -> None:
    result = await run_check(
        RedisCheck,
        url=redis_server.url(),
        expect_role="master",
        info_fields={"used_memory": {"fail_above": "1GiB"}, "connected_clients": None},
    )
    assert result.status is Status.OK, result.message
    values = info_samples(result)
    assert values["used_memory"] > 0
    assert values["connected_clients"] >= 1
    assert set(result.phases) == {"connect", "ping", "info"}
    assert "master" in result.message


# --- role and thresholds ---------------------------------------------------------------------


async def test_replica_where_master_expected_fails_with_role(redis_replica: RedisServer) -> None:
    result = await run_check(RedisCheck, url=redis_replica.url(), expect_role="master")
    assert (result.status, result.reason) == (Status.FAIL, "role")
    assert "is a replica of 127.0.0.1:" in result.message
    assert "expected a master" in result.message
    ok = await run_check(RedisCheck, url=redis_replica.url(), expect_role="slave")
    assert ok.status is Status.OK, ok.message


async def test_info_field_above_warn_level_warns(redis_server: RedisServer) -> None:
    result = await run_check(
        RedisCheck,
        url=redis_server.url(),
        info_fields={"connected_clients": {"warn_above": 0, "fail_above": 10_000}},
    )
    assert (result.status, result.reason) == (Status.WARN, "threshold")
    assert "connected_clients is" in result.message
    assert "above the warn threshold 0" in result.message


async def test_info_field_beyond_fail_level_fails(redis_server: RedisServer) -> None:
    result = await run_check(
        RedisCheck,
        url=redis_server.url(),
        info_fields={
            "used_memory": {"warn_above": "1kB", "fail_above": "2kB"},
            "uptime_in_seconds": {"fail_below": 10**9},
        },
    )
    assert (result.status, result.reason) == (Status.FAIL, "threshold")
    assert "used_memory is" in result.message
    assert "above the fail threshold 2000 (2.0 KiB)" in result.message
    assert "below the fail threshold 1000000000" in result.message
    assert info_samples(result)["used_memory"] > 2000


async def test_info_field_the_server_does_not_report_fails_with_assertion(
    redis_server: RedisServer,
) -> None:
    # A replica-only field on a primary; and a name probed does not know, let through.
    result = await run_check(
        RedisCheck, url=redis_server.url(), info_fields={"master_link_down_since_seconds": None}
    )
    assert (result.status, result.reason) == (Status.FAIL, "assertion")
    assert "no numeric field master_link_down_since_seconds" in result.message
    unknown = await run_check(
        RedisCheck,
        url=redis_server.url(),
        info_fields={"used_memry": None},
        allow_unknown_info_fields=True,
    )
    assert (unknown.status, unknown.reason) == (Status.FAIL, "assertion")
    assert "no numeric field used_memry" in unknown.message


# --- faults ----------------------------------------------------------------------------------


async def test_wrong_password_fails_with_auth_and_never_shows_it(redis_server: RedisServer) -> None:
    result = await run_check(RedisCheck, url=redis_server.url(password=WRONG_PASSWORD))
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert "rejected the login" in result.message
    assert_no_secret(result)


async def test_missing_password_fails_with_auth(redis_server: RedisServer) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}/0"
    result = await run_check(RedisCheck, url=url)
    assert (result.status, result.reason) == (Status.FAIL, "auth")


async def test_acl_user_with_wrong_password_fails_with_auth(redis_server: RedisServer) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}/0"
    result = await run_check(RedisCheck, url=url, username=REDIS_ACL_USER, password=WRONG_PASSWORD)
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert_no_secret(result)


async def test_nothing_listening_fails_with_connection_refused() -> None:
    port = free_port()
    result = await run_check(RedisCheck, url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0")
    assert (result.status, result.reason) == (Status.FAIL, "connection_refused")
    assert f"127.0.0.1:{port}" in result.message
    assert_no_secret(result)


async def test_silent_listener_times_out_at_the_check_timeout() -> None:
    async with stub_server(silent) as port:
        start = time.monotonic()
        result = await run_check(
            RedisCheck, timeout=0.5, url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
        )
        elapsed = time.monotonic() - start
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert 0.4 < elapsed < 2.0
    assert_no_secret(result)


async def test_garbage_reply_fails_with_protocol() -> None:
    async with stub_server(replying(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as port:
        result = await run_check(RedisCheck, url=f"redis://127.0.0.1:{port}/0")
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "is it Redis on that port" in result.message


async def test_loading_server_fails_with_loading() -> None:
    # A real socket speaking RESP: Redis answers -LOADING while it reads its dataset at start.
    reply = b"-LOADING Redis is loading the dataset in memory\r\n"
    async with stub_server(replying(reply)) as port:
        result = await run_check(RedisCheck, url=f"redis://127.0.0.1:{port}/0")
    assert (result.status, result.reason) == (Status.FAIL, "loading")
    assert "loading its dataset" in result.message


async def test_missing_database_fails_with_database_missing(redis_server: RedisServer) -> None:
    result = await run_check(RedisCheck, url=redis_server.url(db=99))
    assert (result.status, result.reason) == (Status.FAIL, "database_missing")
    assert_no_secret(result)


async def test_too_many_clients_fails_with_its_own_reason(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory("--maxclients", "1")
    async with aioredis.Redis(
        host=server.host, port=server.port, single_connection_client=True
    ) as held:
        await held.ping()
        result = await run_check(RedisCheck, url=server.url())
    # Redis writes "-ERR max number of clients reached" and closes at once; if the check's
    # first command crosses that close, the kernel resets the socket and the error is lost.
    # Both outcomes are bounded and name the cause for the operator.
    assert result.status is Status.FAIL
    if result.reason == "too_many_connections":
        assert "max number of clients reached" in result.message
    else:
        assert result.reason == "connection_reset", result.message
        assert "maxclients reached" in result.message


async def test_stopped_server_fails_and_the_check_recovers_after_restart(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    spec = make_spec(RedisCheck, timeout=5, url=server.url())
    check = RedisCheck(spec)
    await check.setup()
    try:
        assert (await execute(check, spec.timeout)).status is Status.OK
        await asyncio.to_thread(server.stop)
        down = await execute(check, spec.timeout)
        assert (down.status, down.reason) == (Status.FAIL, "connection_refused")
        assert_no_secret(down)
        await asyncio.to_thread(server.start)
        again = await execute(check, spec.timeout)
        assert again.status is Status.OK, again.message
    finally:
        await check.close()


async def test_rediss_with_trusted_ca_passes_and_without_it_fails_with_tls(
    redis_tls_server: tuple[RedisServer, Path],
) -> None:
    server, ca_file = redis_tls_server
    result = await run_check(RedisCheck, url=server.url(), tls_ca_file=str(ca_file))
    assert result.status is Status.OK, result.message
    assert server.url().startswith("rediss://")
    untrusted = await run_check(RedisCheck, url=server.url())
    assert (untrusted.status, untrusted.reason) == (Status.FAIL, "tls")
    assert_no_secret(untrusted)
    plain = await run_check(RedisCheck, timeout=1, url=server.url(scheme="redis"))
    assert plain.status is Status.FAIL
    assert plain.reason in {"connection_reset", "protocol"}
    assert_no_secret(plain)


# --- options -----------------------------------------------------------------------------------


def test_url_password_is_redacted_in_repr_str_and_dumps() -> None:
    options = RedisOptions.model_validate({"url": f"rediss://probe:{REDIS_PASSWORD}@cache:6380/1"})
    expected = "rediss://probe:***@cache:6380/1"
    for text in (
        str(options.url),
        repr(options),
        options.model_dump_json(),
        json.dumps(make_spec(RedisCheck, url=options.url).public_options()),
    ):
        assert REDIS_PASSWORD not in text
        assert expected in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "http://h:6379"}, "url must start with redis://"),
        ({"url": "redis://:pw@h/0", "password": "x"}, "password is given twice"),
        ({"url": "redis://u@h/0", "username": "v"}, "user is given twice"),
        ({"url": "redis://h/0", "tls_ca_file": "/ca.pem"}, "tls_ca_file needs a rediss:// url"),
        ({"url": "redis://h/0", "expect_role": "leader"}, "'master' or 'replica'"),
        ({"url": "redis://h/0", "info_fields": {"Used-Memory": None}}, "lower-case words"),
        (
            {
                "url": "redis://h/0",
                "info_fields": {"used_memory": {"warn_above": "2GB", "fail_above": "1GB"}},
            },
            "warn_above (2000000000) must not be above fail_above (1000000000)",
        ),
        (
            {"url": "redis://h/0", "info_fields": {"used_memory": {"fail_above": "lots"}}},
            "invalid number 'lots'",
        ),
        (
            {"url": "redis://h/0", "info_fields": {"used_memory": {"above": 1}}},
            "Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_options_are_rejected_with_a_clear_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        RedisOptions.model_validate(options)
    assert message in str(info.value)
    assert ":pw@" not in str(info.value)


def test_role_aliases_are_normalised() -> None:
    assert (
        RedisOptions.model_validate({"url": "redis://h", "expect_role": "primary"}).expect_role
        == "master"
    )
    assert (
        RedisOptions.model_validate({"url": "redis://h", "expect_role": "slave"}).expect_role
        == "replica"
    )


async def test_info_samples_of_a_real_run_are_exported_under_the_declared_metric(
    redis_server: RedisServer,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from probed.exposition import TypeMetrics, render_checks
    from probed.state import CheckState

    spec = make_spec(
        RedisCheck,
        name="cache",
        url=redis_server.url(),
        info_fields={"used_memory": None, "connected_clients": None},
    )
    check = RedisCheck(spec)
    try:
        result = await execute(check, spec.timeout)
    finally:
        await check.close()
    assert result.status is Status.OK, result.message
    state = CheckState(spec)
    state.record(result)
    text = render_checks([state], TypeMetrics([("redis", RedisCheck.metrics)]), openmetrics=False)
    exported = {
        sample.labels["field"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "probed_redis_info"
    }
    assert set(exported) == {"used_memory", "connected_clients"}
    assert exported["used_memory"] > 0 and exported["connected_clients"] >= 1
    assert 'probed_redis_info{check="cache",type="redis",field="used_memory"}' in text


def test_example_file_validates() -> None:
    path = Path(__file__).parents[2] / "checks.d" / "redis.yaml"
    checks = yaml.safe_load(path.read_text())["checks"]
    assert checks
    common = {"name", "type", "interval", "timeout", "labels", "readiness", "description",
              "failure_threshold", "success_threshold"}  # fmt: skip
    for entry in checks:
        assert entry["type"] == "redis"
        RedisOptions.model_validate({k: v for k, v in entry.items() if k not in common})


# --- messages (issue 13, finding 8) ----------------------------------------------------------


async def test_sizes_in_messages_are_exact_bytes_with_a_binary_unit(
    redis_server: RedisServer,
) -> None:
    result = await run_check(
        RedisCheck,
        url=redis_server.url(),
        info_fields={"used_memory": None, "connected_clients": None},
    )
    assert result.status is Status.OK, result.message
    used = int(info_samples(result)["used_memory"])
    assert used >= 1024
    match = re.search(r"used_memory=(\d+) \((\d+\.\d) (KiB|MiB|GiB)\)", result.message)
    assert match is not None, result.message
    assert int(match.group(1)) == used
    assert re.search(r"connected_clients=\d+(;|,|$)", result.message), result.message
    assert "e+" not in result.message
    over = await run_check(
        RedisCheck, url=redis_server.url(), info_fields={"used_memory": {"warn_above": "1KiB"}}
    )
    assert over.status is Status.WARN
    assert re.search(
        r"used_memory is \d+ \(\d+\.\d [KMG]iB\), above the warn threshold 1024 \(1\.0 KiB\)",
        over.message,
    ), over.message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"used_memry": None}, "unknown INFO field 'used_memry' (did you mean 'used_memory'?)"),
        ({"conected_clients": None}, "(did you mean 'connected_clients'?)"),
        ({"used_memory_human": None}, "used_memory_human is text; watch used_memory"),
        ({"role": None}, "use expect_role for the role"),
        ({"valkey_only_field": None}, "set allow_unknown_info_fields: true"),
    ],
)
def test_info_field_names_are_checked_against_the_known_fields(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        RedisOptions.model_validate({"url": "redis://h/0", "info_fields": fields})
    assert message in str(info.value)


def test_unknown_info_fields_are_accepted_when_allowed() -> None:
    options = RedisOptions.model_validate(
        {
            "url": "redis://h/0",
            "allow_unknown_info_fields": True,
            "info_fields": {"valkey_only_field": None, "used_memory": None},
        }
    )
    assert set(options.info_fields) == {"valkey_only_field", "used_memory"}


async def test_every_numeric_field_a_real_server_reports_is_known(
    redis_server: RedisServer, redis_replica: RedisServer
) -> None:
    from probed.checks._redis_info import NUMERIC_FIELDS

    for server in (redis_server, redis_replica):
        client = aioredis.Redis.from_url(server.url(), protocol=2)
        try:
            info = await client.info()
        finally:
            await client.aclose()
        numeric = {
            k for k, v in info.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        assert numeric - NUMERIC_FIELDS == set()
