"""The ``heartbeat`` check type: real pings over HTTP (aiohttp client and curl) to a daemon on
loopback, judged on a clock the tests move (no waiting), and the token kept out of every output.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import bcrypt
import pytest

import probed.checks.heartbeat as heartbeat_module
from probed._httplog import BAD_REQUESTS
from probed.check import Result, Status
from probed.config import load_checks, load_settings
from probed.heartbeats import HEARTBEATS
from probed.plugins import DEFAULT_PLUGINS, check_types, get_plugin_manager
from probed.testing_daemon import start_daemon
from tests._require import requires
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.harness import Running, running_daemon, wait_for, write

HEARTBEAT = "probed.checks.heartbeat"
BUILTINS = DEFAULT_PLUGINS if HEARTBEAT in DEFAULT_PLUGINS else (*DEFAULT_PLUGINS, HEARTBEAT)
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 12, 1, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


@dataclass
class Clock:
    """Wall time that only moves when a test says so."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Iterator[Clock]:
    fake = Clock()
    with HEARTBEATS.use_clock(fake):
        yield fake


@pytest.fixture
def token() -> str:
    return "hb-" + secrets.token_hex(16)


def _checks(tmp_path: Path, token: str, options: str = "period: 1h\ngrace: 10m") -> Path:
    """A checks directory with check ``backup`` (``options`` one per line) and its token file."""
    checks = tmp_path / "checks.d"
    write(checks / "backup.token", token + "\n")
    lines = "".join(f"    {line}\n" for line in options.splitlines())
    (checks / "heartbeat.yaml").write_text(
        "checks:\n  - name: backup\n    type: heartbeat\n    interval: 100ms\n"
        f"    readiness: false\n    token: ${{file:backup.token}}\n{lines}"
    )
    return checks


@pytest.fixture
async def daemon(tmp_path: Path, token: str, clock: Clock) -> AsyncIterator[Running]:
    async with running_daemon(_checks(tmp_path, token), builtins=BUILTINS) as r:
        yield r


async def _ping(
    r: Running,
    path: str,
    token: str | None,
    *,
    data: bytes | str | None = None,
    query: bool = False,
    method: str = "GET",
) -> tuple[int, str]:
    headers = {}
    url = r.url + path
    if token is not None and query:
        url += f"?token={token}"
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with r.session.request(method, url, headers=headers, data=data) as resp:
        return resp.status, await resp.text()


async def _judge(r: Running, name: str = "backup") -> Result:
    """Run the check once now (on the test's clock), as the scheduler would."""
    check = r.daemon.jobs[name].check
    await check.setup()
    return await check.run()


# -- pings and what the check makes of them ---------------------------------------------------


async def test_a_success_ping_with_a_bearer_token_makes_the_check_ok(
    daemon: Running, token: str, clock: Clock
) -> None:
    assert await _ping(daemon, "/ping/backup", token) == (200, "OK\n")
    clock.advance(5)
    result = await _judge(daemon)
    assert result.status is Status.OK
    assert "last ping at 2026-12-01 12:00:00 UTC (5s ago)" in result.message
    assert "next due at 2026-12-01 13:00:00 UTC, late after 2026-12-01 13:10:00 UTC" in (
        result.message
    )
    assert result.values["probed_heartbeat_last_ping_timestamp_seconds"] == START
    assert result.values["probed_heartbeat_deadline_timestamp_seconds"] == START + 4200


async def test_the_daemon_reports_the_ping_in_metrics_and_the_api(
    daemon: Running, token: str
) -> None:
    status, _ = await _ping(daemon, "/ping/backup", token, method="POST")
    assert status == 200
    runs = sum(daemon.state("backup").runs)
    await daemon.runs("backup", runs + 2)  # one that surely started after the ping
    _, metrics, _ = await daemon.get("/metrics")
    assert 'probed_heartbeat_last_ping_timestamp_seconds{check="backup"' in metrics
    _, body, _ = await daemon.get("/api/v1/checks/backup")
    assert "last ping at 2026-12-01 12:00:00 UTC" in body


async def test_no_ping_past_period_and_grace_fails_with_reason_late_saying_when(
    daemon: Running, token: str, clock: Clock
) -> None:
    await _ping(daemon, "/ping/backup", token)
    clock.advance(3600 + 30)
    result = await _judge(daemon)
    assert result.status is Status.OK
    assert "overdue since 2026-12-01 13:00:00 UTC, within the grace period until" in result.message
    clock.advance(600 - 30 + 1)
    result = await _judge(daemon)
    assert (result.status, result.reason) == (Status.FAIL, "late")
    assert result.message.startswith("last ping at 2026-12-01 12:00:00 UTC (1h10m1s ago)")
    assert (
        "the next was due at 2026-12-01 13:00:00 UTC and is late since 2026-12-01 13:10:00 UTC "
        "(grace 10m)" in result.message
    )
    await _ping(daemon, "/ping/backup/0", token)  # exit code 0 is a success
    assert (await _judge(daemon)).status is Status.OK


async def test_before_the_first_ping_the_check_waits_then_is_late(
    daemon: Running, clock: Clock
) -> None:
    result = await _judge(daemon)
    assert result.status is Status.OK
    assert result.message.startswith(
        "waiting for the first ping (probed started watching at 2026-12-01 12:00:00 UTC); "
        "due at 2026-12-01 13:00:00 UTC"
    )
    assert "probed_heartbeat_last_ping_timestamp_seconds" not in result.values
    clock.advance(3600 + 600 + 1)
    result = await _judge(daemon)
    assert (result.status, result.reason) == (Status.FAIL, "late")
    assert "no ping since probed started watching at 2026-12-01 12:00:00 UTC" in result.message


async def test_run_time_is_measured_from_start_to_the_success_ping(
    daemon: Running, token: str, clock: Clock
) -> None:
    await _ping(daemon, "/ping/backup/start", token)
    clock.advance(30)
    result = await _judge(daemon)
    assert result.status is Status.OK and "running, late after" in result.message
    assert result.values["probed_heartbeat_last_start_timestamp_seconds"] == START
    clock.advance(12.5)
    await _ping(daemon, "/ping/backup", token)
    result = await _judge(daemon)
    assert result.values["probed_heartbeat_last_run_duration_seconds"] == 42.5
    assert "run took 42.5s" in result.message
    runs = sum(daemon.state("backup").runs)
    await daemon.runs("backup", runs + 2)  # one that surely started after the ping
    _, metrics, _ = await daemon.get("/metrics")
    assert 'probed_heartbeat_last_run_duration_seconds{check="backup",type="heartbeat"} 42.5' in (
        metrics
    )


async def test_a_start_without_an_end_within_grace_is_late(
    daemon: Running, token: str, clock: Clock
) -> None:
    await _ping(daemon, "/ping/backup/start", token)
    clock.advance(601)
    result = await _judge(daemon)
    assert (result.status, result.reason) == (Status.FAIL, "late")
    assert "has not reported success or failure within the grace of 10m" in result.message


async def test_fail_and_nonzero_exit_codes_fail_until_the_next_success_with_the_body(
    daemon: Running, token: str, clock: Clock
) -> None:
    assert (await _ping(daemon, "/ping/backup/fail", token, data="disk full"))[0] == 200
    result = await _judge(daemon)
    assert (result.status, result.reason) == (Status.FAIL, "job_failed")
    assert (
        result.message
        == "job reported failure at 2026-12-01 12:00:00 UTC (just now); body: disk full"
    )
    await _ping(daemon, "/ping/backup/start", token)
    clock.advance(3)
    await _ping(daemon, "/ping/backup/3", token, data="pg_dump: error: connection refused\n")
    result = await _judge(daemon)
    assert (result.status, result.reason) == (Status.FAIL, "job_failed")
    assert "failure with exit code 3" in result.message and "run took 3s" in result.message
    assert result.message.endswith("body: pg_dump: error: connection refused")
    await _ping(daemon, "/ping/backup", token, data="ok")
    assert (await _judge(daemon)).status is Status.OK


@pytest.mark.parametrize("action", ["256", "-1", "abc", "1000", "start2", "\uff10"])
async def test_an_invalid_exit_code_or_action_is_a_clear_400(
    daemon: Running, token: str, action: str
) -> None:
    status, text = await _ping(daemon, f"/ping/backup/{action}", token)
    assert status == 400
    assert "use /ping/<check>, /ping/<check>/start, /ping/<check>/fail" in text
    assert "exit code 0-255" in text


async def test_the_body_is_kept_capped_at_max_body_size(
    tmp_path: Path, token: str, clock: Clock
) -> None:
    checks = _checks(tmp_path, token, "period: 1h\nmax_body_size: 1KiB")
    async with running_daemon(checks, builtins=BUILTINS) as r:
        body = ("x" * 1000 + "TAIL") * 1000  # about 1 MB
        status, _ = await _ping(r, "/ping/backup/fail", token, data=body, method="POST")
        assert status == 200
        result = await _judge(r)
        assert result.message.endswith("body (cut at 1.0 KiB): " + body[:1024])
        beat = HEARTBEATS.get("backup")
        assert beat is not None and len(beat.body) == 1024 and beat.truncated


# -- tokens ------------------------------------------------------------------------------------


async def test_a_wrong_token_and_an_unknown_check_get_the_same_404(
    daemon: Running, token: str
) -> None:
    wrong = await _ping(daemon, "/ping/backup", token[:-1] + ("1" if token.endswith("0") else "0"))
    unknown = await _ping(daemon, "/ping/no-such-check", token)
    not_heartbeat = await _ping(daemon, "/ping/backup/fail", "x" * 35)
    assert wrong == unknown == not_heartbeat
    assert wrong == (404, "no heartbeat check with this name accepts this token\n")
    assert HEARTBEATS.get("backup") is not None
    assert HEARTBEATS.get("backup").counts == {}  # type: ignore[union-attr]


async def test_a_ping_without_a_token_is_401_and_the_query_token_works(
    daemon: Running, token: str
) -> None:
    status, text = await _ping(daemon, "/ping/backup", None)
    assert status == 401
    assert "Authorization: Bearer <token>" in text and "?token=<token>" in text
    assert await _ping(daemon, "/ping/backup/start", token, query=True) == (200, "OK\n")


async def test_the_token_never_shows_in_logs_metrics_or_the_api(
    daemon: Running, token: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(BAD_REQUESTS, "_every", 0.0)  # log every bad request, not one a second
    monkeypatch.setattr(BAD_REQUESTS, "_next", 0.0)  # nor wait out an earlier test's second
    await _ping(daemon, "/ping/backup", token, query=True)
    await _ping(daemon, "/ping/backup/fail", token, data=f"echoed {token} by mistake")
    await _ping(daemon, "/ping/backup/abc", token, query=True)
    await _ping(daemon, "/ping/backup", token + "-wrong", query=True)
    # Malformed requests carrying the token: aiohttp's parser errors are logged (raw records
    # here, before probed's formatter would mask known secrets).
    host, port = daemon.url.removeprefix("http://").split(":")
    long = "a" * 9000
    raws = (
        f"GET /ping/backup?token={token} HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        f"GET /ping/backup?token={token}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /ping/backup?token={token}{long} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /ping/backup HTTP/1.1\r\nAuthorization: Bearer {token}{long}\r\n\r\n",
        f"GET /ping/backup HTTP/1.1\r\nAuthorization: Bearer {token}\r\nX: \x00\r\n\r\n",
    )
    for raw in raws:
        await asyncio.to_thread(_raw_request, host, int(port), raw.encode())
    runs = sum(daemon.state("backup").runs)
    await daemon.runs("backup", runs + 2)  # one that surely started after the ping
    outputs = [caplog.text]
    for path in ("/metrics", "/api/v1/checks", "/api/v1/checks/backup", "/"):
        outputs.append((await daemon.get(path))[1])
    assert "echoed *** by mistake" in outputs[3]  # the body is shown, the token masked
    assert caplog.text.count("bad request from") == len(raws)  # all logged, and read here
    assert not [text for text in outputs if token in text]


def _raw_request(host: str, port: int, data: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_pings_pass_the_listeners_basic_auth_with_their_own_token(
    tmp_path: Path, token: str, clock: Clock
) -> None:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    web = write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: {hashed}\n")
    async with running_daemon(_checks(tmp_path, token), builtins=BUILTINS, web_config=web) as r:
        assert (await r.get("/metrics"))[0] == 401
        assert (await r.get("/ping/nope"))[0] == 401  # a 404 elsewhere still asks for auth
        assert await _ping(r, "/ping/backup", token) == (200, "OK\n")
        assert (await _ping(r, "/ping/backup", "a-wrong-token-0123456789"))[0] == 404
        assert (await _ping(r, "/ping/backup", None))[0] == 401


@requires(lambda: shutil.which("curl") is not None, "curl is not installed")
async def test_curl_pings_as_a_cron_job_would(daemon: Running, token: str, clock: Clock) -> None:
    async def curl(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-fsS", "-m", "5", *args, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()

    assert await curl(
        "-H", f"Authorization: Bearer {token}", f"{daemon.url}/ping/backup/start"
    ) == (
        0,
        "OK\n",
    )
    clock.advance(7)
    assert await curl(
        "--data-raw", "dumped 3 tables", f"{daemon.url}/ping/backup?token={token}"
    ) == (
        0,
        "OK\n",
    )
    result = await _judge(daemon)
    assert result.status is Status.OK
    assert "run took 7s" in result.message and result.message.endswith("body: dumped 3 tables")
    code, _ = await curl(f"{daemon.url}/ping/backup/1?token=wrong-token-0123456789")
    assert code == 22  # curl -f: HTTP error


@requires(lambda: shutil.which("curl") is not None, "curl is not installed")
def test_a_probed_process_takes_curl_pings_and_its_log_never_shows_the_token(
    tmp_path: Path, token: str
) -> None:
    checks = _checks(tmp_path, token, "period: 1h\ngrace: 10m")
    with start_daemon(checks, args=["--log-level", "debug", "--log-format", "text"]) as probed:

        def curl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", *args],
                capture_output=True,
                text=True,
                check=False,
            )

        url = f"{probed.url}/ping/backup"
        assert curl("-H", f"Authorization: Bearer {token}", f"{url}/start").stdout == "200"
        assert curl("--data-raw", f"done; token {token}", f"{url}/0?token={token}").stdout == "200"
        assert curl(f"{url}?token={token}{'a' * 9000}").stdout == "400"  # too long: logged
        assert curl(f"{url}/oops?token={token}").stdout == "400"
        probed.wait_for(lambda: "done; token ***" in probed.get("/api/v1/checks/backup").body)
        assert (
            probed.metric("probed_heartbeat_last_run_duration_seconds", check="backup") is not None
        )
        outputs = [probed.log(), probed.metrics(), probed.get("/api/v1/checks").body]
    assert "bad request from" in outputs[0]
    assert not [text for text in outputs if token in text]


# -- cron --------------------------------------------------------------------------------------


async def test_cron_in_a_time_zone_expects_the_skipped_time_at_the_dst_change(
    tmp_path: Path, token: str, clock: Clock
) -> None:
    clock.now = datetime(2026, 3, 28, 2, 30, 5, tzinfo=BERLIN).timestamp()
    body = "cron: '30 2 * * *'\ntimezone: Europe/Berlin\ngrace: 15m"
    async with running_daemon(_checks(tmp_path, token, body), builtins=BUILTINS) as r:
        await _ping(r, "/ping/backup", token)
        # 29 March: 02:30 does not exist; cron runs the job when 02:00 CET becomes 03:00 CEST.
        clock.now = datetime(2026, 3, 29, 3, 14, tzinfo=BERLIN).timestamp()
        result = await _judge(r)
        assert result.status is Status.OK
        assert "overdue since 2026-03-29 03:00:00 CEST" in result.message
        clock.advance(61)
        result = await _judge(r)
        assert (result.status, result.reason) == (Status.FAIL, "late")
        assert "last ping at 2026-03-28 02:30:05 CET" in result.message
        assert "due at 2026-03-29 03:00:00 CEST and is late since 2026-03-29 03:15:00 CEST" in (
            result.message
        )
        await _ping(r, "/ping/backup", token)
        result = await _judge(r)
        assert "next due at 2026-03-30 02:30:00 CEST" in result.message


async def test_cron_expects_a_repeated_time_once_when_clocks_go_back(
    tmp_path: Path, token: str, clock: Clock
) -> None:
    body = "cron: '30 2 * * *'\ntimezone: Europe/Berlin\ngrace: 15m"
    async with running_daemon(_checks(tmp_path, token, body), builtins=BUILTINS) as r:
        clock.now = datetime(2026, 10, 25, 2, 30, 3, fold=0, tzinfo=BERLIN).timestamp()
        await _ping(r, "/ping/backup", token)
        clock.advance(3600 + 20 * 60)  # past the second 02:30 (CET) and its grace
        result = await _judge(r)
        assert result.status is Status.OK
        assert "next due at 2026-10-26 02:30:00 CET" in result.message


# -- reloads, blocking, validation ------------------------------------------------------------


async def test_pings_survive_a_reload_of_the_check_unchanged_or_changed(
    tmp_path: Path, token: str, clock: Clock
) -> None:
    checks = _checks(tmp_path, token)
    async with running_daemon(checks, builtins=BUILTINS) as r:
        await _ping(r, "/ping/backup", token)
        check = r.daemon.jobs["backup"].check
        ok, errors = await r.daemon.reload()
        assert ok and not errors and r.daemon.jobs["backup"].check is check
        assert "last ping at 2026-12-01 12:00:00 UTC" in (await _judge(r)).message
        (checks / "heartbeat.yaml").write_text(
            (checks / "heartbeat.yaml").read_text().replace("grace: 10m", "grace: 20m")
        )
        ok, _ = await r.daemon.reload()
        assert ok and r.daemon.jobs["backup"].check is not check
        await asyncio.sleep(0)  # the old instance is closed by a task once its run ended
        result = await _judge(r)
        assert "last ping at 2026-12-01 12:00:00 UTC" in result.message
        assert "late after 2026-12-01 13:20:00 UTC" in result.message
        (checks / "heartbeat.yaml").unlink()
        await r.daemon.reload()
        await wait_for(lambda: HEARTBEATS.get("backup") is None, 5, "the pings to be dropped")


async def test_a_run_does_not_block_the_event_loop(tmp_path: Path, token: str) -> None:
    body = "cron: '*/5 * * * *'\ntimezone: America/New_York"
    async with running_daemon(_checks(tmp_path, token, body), builtins=BUILTINS) as r:
        check = r.daemon.jobs["backup"].check
        await check.setup()
        with blocking_calls_on_loop_thread() as seen:
            await _ping(r, "/ping/backup", token)
            result = await check.run()
        assert result.status is Status.OK and seen == []


def _load(tmp_path: Path, text: str) -> Any:
    write(tmp_path / "checks.d" / "hb.yaml", text)
    settings = load_settings(None, {"checks_dirs": (tmp_path / "checks.d",)})
    types = check_types(get_plugin_manager(builtins=BUILTINS, entry_points=False))
    return load_checks(settings, types)


def _errors(tmp_path: Path, text: str) -> list[str]:
    return [str(e) for e in _load(tmp_path, text).errors]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("grace: 5m", "set either period (e.g. period: 1h) or cron"),
        ("period: 1h\n    cron: '@daily'", "not both"),
        ("cron: '61 * * * *'", "minute: 61 is out of range 0-59"),
        ("cron: '@daily'\n    timezone: Europe/Berln", "(did you mean 'Europe/Berlin'?)"),
        ("period: 1h\n    timezone: Europe/Berlin", "timezone applies to cron only"),
        ("perod: 1h", "did you mean 'period'"),
        ("period: 1h\n    max_body_size: 2MiB", "max_body_size"),
    ],
)
def test_validation_names_the_file_line_and_problem(
    tmp_path: Path, options: str, message: str
) -> None:
    text = (
        "checks:\n  - name: hb\n    type: heartbeat\n    token: abcdefghijklmnop-0123\n"
        f"    {options}\n"
    )
    errors = _errors(tmp_path, text)
    assert len(errors) == 1, errors
    assert "hb.yaml:" in errors[0] and message in errors[0]


def test_a_short_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "checks:\n  - name: hb\n    type: heartbeat\n    token: tiny-secret\n    period: 1h\n",
    )
    assert len(errors) == 1 and "token must be at least 16 characters" in errors[0]
    assert "hb.yaml:4" in errors[0] and "tiny-secret" not in errors[0]


def test_a_missing_time_zone_database_says_to_install_tzdata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_database(key: str) -> ZoneInfo:
        raise ZoneInfoNotFoundError(key)

    monkeypatch.setattr(heartbeat_module, "ZoneInfo", no_database)
    monkeypatch.setattr(heartbeat_module, "available_timezones", set)
    errors = _errors(
        tmp_path,
        "checks:\n  - name: hb\n    type: heartbeat\n    token: abcdefghijklmnop-0123\n"
        "    cron: '@daily'\n    timezone: Europe/Berlin\n",
    )
    assert len(errors) == 1 and "hb.yaml:6" in errors[0]
    assert "no time zone database; install it (apt-get install tzdata" in errors[0]


def test_the_documented_example_validates(tmp_path: Path) -> None:
    page = (Path(__file__).parents[2] / "docs" / "check-types.md").read_text()
    section = page.split("<!-- section:checks-heartbeat -->")[1].split("<!-- /section")[0]
    block = section.split("```yaml")[1].split("```")[0]
    assert "${file:/run/secrets/backup_ping_token}" in block
    block = block.replace("${file:/run/secrets/backup_ping_token}", "0123456789abcdef-token")
    loaded = _load(tmp_path, block)
    assert not loaded.errors and list(loaded.specs) == ["nightly-backup-job"]
