"""The Sentry plugin against the real sentry-sdk, sending to a local envelope recorder."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brotli
import pytest
import sentry_sdk
from aiohttp import web

from probed import Result, hookimpl
from probed.integrations import sentry as sentry_plugin
from probed.spec import CheckSpec
from tests.fakes import ScriptPlugin
from tests.harness import running_daemon, wait_for, write
from tests.servers._util import free_port

SECRET = "s3ntry-Pa55word-Zq9"
SENTRY_ONLY = ("probed.integrations.sentry",)


@dataclass
class Recorder:
    """A Sentry ingestion endpoint on loopback that keeps every envelope it receives."""

    port: int
    bodies: list[bytes] = field(default_factory=list)
    encodings: set[str] = field(default_factory=set)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    def items(self, kind: str) -> list[dict[str, Any]]:
        """Payloads of every envelope item of type ``kind`` (``event``, ``transaction``...)."""
        out = []
        for body in self.bodies:
            for header, payload in _parse_envelope(body):
                if header.get("type") == kind:
                    out.append(json.loads(payload))
        return out

    def events(self, **tags: str) -> list[dict[str, Any]]:
        """Error events whose tags include ``tags``."""
        return [
            e for e in self.items("event") if all(_tags(e).get(k) == v for k, v in tags.items())
        ]


def _tags(event: dict[str, Any]) -> dict[str, str]:
    # Sentry sends tags as a mapping or as [key, value] pairs depending on the path.
    return dict(event.get("tags") or {})


def _parse_envelope(body: bytes) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Items of a Sentry envelope: a header line, then (item header line, payload) pairs."""
    _envelope_header, _, rest = body.partition(b"\n")
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] :]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header, payload


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder(free_port())

    async def envelope(request: web.Request) -> web.Response:
        body = await request.read()
        rec.encodings.add(request.headers.get("Content-Encoding", ""))
        if body[:2] == b"\x1f\x8b":  # aiohttp did not already undo the gzip
            body = gzip.decompress(body)
        elif request.headers.get("Content-Encoding") == "br" and body[:1] != b"{":
            body = brotli.decompress(body)  # sentry-sdk sends br when brotli is installed
        rec.bodies.append(body)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/api/{project}/envelope/", envelope)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port).start()
    try:
        yield rec
    finally:
        await runner.cleanup()


@pytest.fixture(autouse=True)
def clean_sentry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No ambient DSN; and whatever a test started, Sentry's global state is reset after it."""
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    monkeypatch.delenv("SENTRY_ENVIRONMENT", raising=False)
    yield
    active = sentry_plugin._active
    if active is not None:
        sentry_plugin._active = None
        sentry_plugin._stop(active).close(timeout=0)
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_isolation_scope().clear_breadcrumbs()


class BrokenNotifier:
    """A plugin whose result hook always fails, with a secret in the exception text."""

    def __init__(self, secret_file: Path) -> None:
        self.secret_file = secret_file

    @hookimpl
    def probed_check_result(self, spec: CheckSpec, result: Result) -> None:
        raise RuntimeError(f"cannot notify, token {self.secret_file.read_text().strip()}")


def _exploding_checks(tmp_path: Path, secret_file: Path) -> Path:
    checks = tmp_path / "checks"
    write(
        checks / "a.yaml",
        f"""
        checks:
          - name: exploding
            type: script
            mode: raise
            interval: 50ms
            timeout: 40ms
            secret_echo: "${{file:{secret_file}}}"
            labels: {{team: core}}
          - name: fine
            type: script
            interval: 50ms
        """,
    )
    return checks


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "checks" / "token"  # next to the checks: ${file:} may read there
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SECRET + "\n")
    return path


async def _flush() -> None:
    # The transport thread posts to the recorder served by this very loop: never block it.
    await asyncio.to_thread(sentry_sdk.flush, 5.0)


async def test_check_exception_and_plugin_failure_become_scrubbed_rate_limited_events(
    tmp_path: Path, secret_file: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", recorder.dsn)
    checks = _exploding_checks(tmp_path, secret_file)
    plugins = [("script", ScriptPlugin()), ("broken", BrokenNotifier(secret_file))]
    async with running_daemon(checks, builtins=SENTRY_ONLY, plugins=plugins) as r:
        assert sentry_plugin.is_active() and sentry_sdk.get_client().is_active()
        await r.runs("exploding", 6)
        await r.runs("fine", 6)
        await _flush()
        await wait_for(lambda: recorder.events(check="exploding"), 10, "the check's event")
        await wait_for(lambda: recorder.events(event="plugin_error"), 10, "the plugin's event")
    assert not sentry_plugin.is_active() and not sentry_sdk.get_client().is_active()

    # (b) a check whose run raised: one event for six runs, tagged, with the redacted message
    (check_event,) = recorder.events(check="exploding")
    assert _tags(check_event) | {"type": "script", "reason": "exception"} == _tags(check_event)
    assert check_event["level"] == "error"
    assert "RuntimeError: boom ***" in check_event["message"]
    assert check_event["fingerprint"] == ["probed-check-exception", "script", "exploding"]
    assert check_event["extra"]["labels"] == {"team": "core"}
    assert not recorder.events(check="fine")  # results that did not raise are not events

    # (a) a plugin hook failing on every run: one event, grouped by plugin and hook
    (plugin_event,) = recorder.events(event="plugin_error")
    assert _tags(plugin_event)["plugin"] == "broken"
    assert _tags(plugin_event)["hook"] == "probed_check_result"
    assert plugin_event["logger"] == "probed.plugins"
    assert "cannot notify, token ***" in plugin_event["logentry"]["formatted"]

    # the secret from ${file:...} never left the process, in any byte of any envelope
    assert recorder.bodies
    for body in recorder.bodies:
        assert SECRET.encode() not in body
    assert recorder.encodings <= {"", "gzip", "br"}
    assert all(body.startswith(b"{") for body in recorder.bodies)  # read decoded


async def test_config_errors_are_events_once_per_file_and_line_even_across_reloads(
    tmp_path: Path, secret_file: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", recorder.dsn)
    checks = _exploding_checks(tmp_path, secret_file)
    # A broken file whose error message quotes the secret value.
    write(checks / "b.yaml", f"checks:\n  - name: bad\n    type: {SECRET}\n")
    async with running_daemon(checks, builtins=SENTRY_ONLY, plugins=[("s", ScriptPlugin())]) as r:
        for _ in range(2):
            status, _ = await r.post("/-/reload")
            assert status == 400
        await _flush()
        await wait_for(lambda: recorder.events(event="config_error"), 10, "config error event")
    (event,) = recorder.events(event="config_error")
    assert event["fingerprint"][0] == "probed-config-error"
    assert event["fingerprint"][1].endswith("b.yaml:3")
    assert "***" in event["logentry"]["formatted"]
    for body in recorder.bodies:
        assert SECRET.encode() not in body


async def test_without_dsn_nothing_is_sent_and_sentry_is_not_initialised(
    tmp_path: Path, secret_file: Path, recorder: Recorder
) -> None:
    checks = _exploding_checks(tmp_path, secret_file)
    plugins = [("script", ScriptPlugin()), ("broken", BrokenNotifier(secret_file))]
    async with running_daemon(checks, builtins=SENTRY_ONLY, plugins=plugins) as r:
        await r.runs("exploding", 3)
        assert not sentry_plugin.is_active()
        assert not sentry_sdk.get_client().is_active()
    assert recorder.bodies == []


def test_without_dsn_sentry_sdk_is_not_even_imported() -> None:
    code = """
import os, sys
os.environ.pop("SENTRY_DSN", None)
from probed.plugins import get_plugin_manager
pm = get_plugin_manager(entry_points=False)
pm.hook.probed_configure(settings=None, plugin_config={"sentry": {"environment": "x"}})
assert "sentry_sdk" not in sys.modules, "sentry_sdk imported without a DSN"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


async def test_dsn_and_environment_from_probed_yaml(
    tmp_path: Path, secret_file: Path, recorder: Recorder
) -> None:
    config = write(
        tmp_path / "probed.yaml",
        f"""
        plugins:
          sentry:
            dsn: {recorder.dsn}
            environment: staging
            traces: false
            rate_limit: 1h
        """,
    )
    checks = _exploding_checks(tmp_path, secret_file)
    async with running_daemon(
        checks, builtins=SENTRY_ONLY, plugins=[("s", ScriptPlugin())], config_file=config
    ) as r:
        await r.runs("exploding", 2)
        await _flush()
        await wait_for(lambda: recorder.events(check="exploding"), 10, "the check's event")
    (event,) = recorder.events(check="exploding")
    assert event["environment"] == "staging"
    assert event["release"].startswith("probed@")


def test_invalid_settings_are_an_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"plugins\.sentry\.traces: .*less than or equal to 1"):
        sentry_plugin.probed_configure({"sentry": {"dsn": "http://k@127.0.0.1:1/1", "traces": 2}})
    with pytest.raises(ValueError, match=r"plugins\.sentry\.colour: Extra inputs"):
        sentry_plugin.probed_configure({"sentry": {"colour": "red"}})
    assert not sentry_plugin.is_active()


def test_a_bad_dsn_is_an_error_that_does_not_echo_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", "not-a-dsn-with-hunter2")
    with pytest.raises(ValueError, match="check SENTRY_DSN") as info:
        sentry_plugin.probed_configure({})
    assert "hunter2" not in str(info.value)
    assert not sentry_plugin.is_active()


def test_dsn_without_sentry_sdk_warns_once_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # import sentry_sdk now fails
    monkeypatch.setattr(sentry_plugin, "_warned_missing", False)
    monkeypatch.setenv("SENTRY_DSN", "http://publickey@127.0.0.1:1/1")
    with caplog.at_level(logging.WARNING, logger="probed.integrations.sentry"):
        sentry_plugin.probed_configure({})
        sentry_plugin.probed_configure({})  # a reload: no second warning
    warnings = [r for r in caplog.records if r.name == "probed.integrations.sentry"]
    assert len(warnings) == 1
    assert "pip install 'probed[sentry]'" in warnings[0].getMessage()
    assert not sentry_plugin.is_active()


def test_rate_limiter_lets_one_event_per_key_and_window() -> None:
    now = [1000.0]
    limiter = sentry_plugin.RateLimiter(600.0, clock=lambda: now[0])
    assert limiter.allow("a") and limiter.allow("b")
    now[0] += 599
    assert not limiter.allow("a")
    now[0] += 1
    assert limiter.allow("a") and not limiter.allow("a")


async def test_events_sent_by_the_real_client_are_masked_by_the_daemons_redactor(
    tmp_path: Path,
    secret_file: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every value below is a secret; none of them may reach the Sentry endpoint. SECRET is
    # known to the daemon only because a check reads it with ${file:...}; the others are
    # masked by shape (a URL's password, ?token=, secret-looking keys and headers).
    url_password, db_password, token, bearer, api_key = (
        "Url-pw-81x",
        "Db-pw-37q",
        "Tok-55m",
        "Bearer-99z",
        "Key-12w",
    )
    monkeypatch.setenv("SENTRY_DSN", recorder.dsn)
    checks = tmp_path / "checks"
    write(
        checks / "a.yaml",
        f"""
        checks:
          - name: reads-secret
            type: script
            interval: 1h
            secret_echo: "${{file:{secret_file}}}"
        """,
    )
    async with running_daemon(checks, builtins=SENTRY_ONLY, plugins=[("s", ScriptPlugin())]) as r:
        await r.runs("reads-secret", 1)
        assert sentry_plugin.is_active()
        # an INFO record of a probed logger becomes a breadcrumb of the next event
        caplog.set_level(logging.INFO, logger="probed")
        logging.getLogger("probed.test").info("about to fail with %s", SECRET)
        sentry_sdk.capture_event(
            {
                "level": "error",
                "message": f"failed with {SECRET}",
                "tags": {"probe": "masking"},
                "request": {
                    "url": f"https://user:{url_password}@example.test/x?token={token}&page=2",
                    "headers": {
                        "Authorization": f"Bearer {bearer}",
                        "X-Api-Key": api_key,
                        "Accept": "*/*",
                    },
                    "cookies": {"session": SECRET},
                },
                "extra": {
                    "dsn": f"postgresql://probe:{db_password}@127.0.0.1:5432/shop",
                    "password": SECRET,
                    "params": [SECRET],
                },
            }
        )
        await _flush()
        await wait_for(lambda: recorder.events(probe="masking"), 10, "the event")
    (event,) = recorder.events(probe="masking")
    assert event["message"] == "failed with ***"
    crumbs = [c.get("message") for c in event["breadcrumbs"]["values"]]
    assert "about to fail with ***" in crumbs
    assert event["request"]["headers"] == {"Accept": "*/*"}
    assert "cookies" not in event["request"]
    assert event["request"]["url"] == "https://user:***@example.test/x?token=***&page=2"
    assert event["extra"] == {
        "dsn": "postgresql://probe:***@127.0.0.1:5432/shop",
        "password": "***",
        "params": ["***"],
    }
    for body in recorder.bodies:
        for secret in (SECRET, url_password, db_password, token, bearer, api_key):
            assert secret.encode() not in body, secret


async def test_a_breadcrumb_keeps_a_secret_masked_after_the_secret_is_rotated_out(
    tmp_path: Path,
    secret_file: Path,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Breadcrumbs are scrubbed when recorded: once a reload has rotated the secret, the
    # redactor no longer knows the old value, and an event sent later must not carry it.
    monkeypatch.setenv("SENTRY_DSN", recorder.dsn)
    checks = tmp_path / "checks"
    write(
        checks / "a.yaml",
        f"""
        checks:
          - name: reads-secret
            type: script
            interval: 1h
            secret_echo: "${{file:{secret_file}}}"
        """,
    )
    caplog.set_level(logging.INFO, logger="probed")
    async with running_daemon(checks, builtins=SENTRY_ONLY, plugins=[("s", ScriptPlugin())]) as r:
        await r.runs("reads-secret", 1)
        logging.getLogger("probed.test").info("old token %s", SECRET)
        await asyncio.to_thread(secret_file.write_text, "r0tated-Secret-Value\n")
        status, _ = await r.post("/-/reload")
        assert status == 200
        assert r.daemon.redact(SECRET) == SECRET  # the redactor no longer knows it
        sentry_sdk.capture_event({"level": "error", "message": "x", "tags": {"probe": "rot"}})
        await _flush()
        await wait_for(lambda: recorder.events(probe="rot"), 10, "the event")
    (event,) = recorder.events(probe="rot")
    crumbs = [c.get("message") for c in event["breadcrumbs"]["values"]]
    assert "old token ***" in crumbs
    for body in recorder.bodies:
        assert SECRET.encode() not in body


async def test_traces_send_api_transactions_without_secret_headers_or_query(
    tmp_path: Path, secret_file: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", recorder.dsn)
    config = write(tmp_path / "probed.yaml", "plugins:\n  sentry:\n    traces: true\n")
    checks = _exploding_checks(tmp_path, secret_file)
    async with running_daemon(
        checks, builtins=SENTRY_ONLY, plugins=[("s", ScriptPlugin())], config_file=config
    ) as r:
        await r.runs("exploding", 1)
        status, _, _ = await r.get(
            f"/api/v1/checks?token={SECRET}",
            headers={"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET},
        )
        assert status == 200
        await _flush()
        await wait_for(lambda: recorder.items("transaction"), 10, "a transaction")
    (transaction,) = [
        t for t in recorder.items("transaction") if t["request"]["url"].endswith("/api/v1/checks")
    ]
    headers = {k.lower() for k in transaction["request"]["headers"]}
    assert "accept" in headers
    assert not headers & {"authorization", "x-api-key", "cookie"}
    assert transaction["request"]["query_string"] == "token=***"
    for body in recorder.bodies:
        assert SECRET.encode() not in body


async def test_reload_that_disables_sentry_stops_reporting(
    tmp_path: Path, secret_file: Path, recorder: Recorder
) -> None:
    config = write(tmp_path / "probed.yaml", f"plugins:\n  sentry:\n    dsn: {recorder.dsn}\n")
    checks = _exploding_checks(tmp_path, secret_file)
    async with running_daemon(
        checks, builtins=SENTRY_ONLY, plugins=[("s", ScriptPlugin())], config_file=config
    ) as r:
        await r.runs("exploding", 1)
        assert sentry_plugin.is_active()
        config.write_text(f"plugins:\n  sentry:\n    dsn: {recorder.dsn}\n    enabled: false\n")
        status, _ = await r.post("/-/reload")
        assert status == 200
        assert not sentry_plugin.is_active()
        assert not sentry_sdk.get_client().is_active()
        # the old client flushes what it queued from a thread, off the event loop
        await wait_for(
            lambda: not any(t.name == "probed-sentry-close" for t in threading.enumerate()),
            10,
            "the old Sentry client to close",
        )
        sent = len(recorder.bodies)
        # a new error source, which would be an event while enabled
        write(checks / "b.yaml", "checks:\n  - name: bad\n    type: nope\n")
        status, _ = await r.post("/-/reload")
        assert status == 400
        runs = sum(r.state("exploding").runs)
        await r.runs("exploding", runs + 3)
    assert len(recorder.bodies) == sent
    assert not recorder.events(event="config_error")


async def test_a_reload_that_enables_sentry_reports_runs_that_raise_from_then_on(
    tmp_path: Path, secret_file: Path, recorder: Recorder
) -> None:
    # Until Sentry is configured its per-run hook is not even called (the hot path skips it);
    # a reload that configures it, with the checks unchanged, turns the call on.
    config = write(tmp_path / "probed.yaml", "plugins:\n  sentry:\n    enabled: false\n")
    checks = _exploding_checks(tmp_path, secret_file)
    async with running_daemon(
        checks, builtins=SENTRY_ONLY, plugins=[("s", ScriptPlugin())], config_file=config
    ) as r:
        await r.runs("exploding", 1)
        assert not sentry_plugin.is_active()
        assert not r.daemon.notifier.has_impls("probed_check_result")
        config.write_text(f"plugins:\n  sentry:\n    dsn: {recorder.dsn}\n")
        status, _ = await r.post("/-/reload")
        assert status == 200
        assert sentry_plugin.is_active()
        assert r.daemon.notifier.has_impls("probed_check_result")
        runs = sum(r.state("exploding").runs)
        await r.runs("exploding", runs + 2)
        await _flush()
        await wait_for(lambda: recorder.events(check="exploding"), 10, "the check's event")
