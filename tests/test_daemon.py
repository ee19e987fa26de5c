"""The daemon end to end: metrics, health endpoints, API, reload, secrets, logs."""

from __future__ import annotations

import io
import json
import logging
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from probed import Status
from probed.logs import configure_logging
from tests.fakes import CONTROL, ScriptPlugin
from tests.harness import running_daemon, wait_for, write
from tests.servers._util import free_port, require_binary

SCRIPT = [("script", ScriptPlugin())]
NET = ("probed.checks.http", "probed.checks.tcp")


@pytest.fixture
async def target() -> AsyncIterator[TestServer]:
    """A real HTTP server on 127.0.0.1 answering 200 on /healthz."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def samples(text: str, name: str) -> dict[str, float]:
    """``{check: value}`` for metric ``name`` in an exposition text."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels["check"]] = sample.value
    return out


def three_checks(directory: Path, port: int) -> None:
    write(
        directory / "web.yaml",
        f"""
        defaults:
          interval: 1s
          timeout: 500ms
          failure_threshold: 1
          labels: {{team: payments}}
        checks:
          - name: web-ok
            type: http
            url: http://127.0.0.1:{port}/healthz
          - name: web-down
            type: http
            url: http://127.0.0.1:{free_port()}/healthz
          - name: tcp-ok
            type: tcp
            address: 127.0.0.1:{port}
        """,
    )


async def test_metrics_and_health_reflect_passing_and_failing_checks(
    tmp_path: Path, target: TestServer
) -> None:
    three_checks(tmp_path, target.port)
    async with running_daemon(tmp_path, builtins=NET) as r:
        status, body, _ = await r.get("/health/startup")
        for name in ("web-ok", "web-down", "tcp-ok"):
            await r.runs(name, 1)
        status, body, headers = await r.get("/health/startup")
        assert status == 200
        assert headers["Content-Type"].startswith("application/health+json")

        _, metrics, _ = await r.get("/metrics")
        assert samples(metrics, "probed_check_success") == {
            "web-ok": 1.0,
            "web-down": 0.0,
            "tcp-ok": 1.0,
        }
        # failure_threshold 1: the failing check is down after its first failure
        up = samples(metrics, "probed_check_up")
        assert up == {"web-ok": 1.0, "web-down": 0.0, "tcp-ok": 1.0}
        assert 'team="payments"' in metrics
        failures = [
            s
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
            if s.name == "probed_check_failures_total"
        ]
        assert [(s.labels["check"], s.labels["reason"]) for s in failures] == [
            ("web-down", "connection_refused")
        ]

        status, body, _ = await r.get("/health/ready")
        assert status == 503
        data = json.loads(body)
        assert data["status"] == "fail"
        assert data["checks"]["web-down"][0]["status"] == "fail"
        assert data["checks"]["web-ok"][0]["status"] == "pass"

        status, text, _ = await r.get("/health/ready?verbose")
        assert status == 503
        assert "[-]web-down failed:" in text and "[+]web-ok ok" in text
        assert text.rstrip().endswith("readyz check failed")

        status, _, _ = await r.get("/health/ready?exclude=web-down")
        assert status == 200

        status, body, _ = await r.get("/health/live")
        assert status == 200 and json.loads(body)["status"] == "pass"


async def test_startup_is_503_until_every_readiness_check_ran_once(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: gate, type: script, mode: gate, interval: 5s, timeout: 4s}
          - {name: quick, type: script, interval: 5s, timeout: 4s, readiness: false}
        """,
    )
    import asyncio

    from tests.fakes import GATES

    async with running_daemon(tmp_path, builtins=(), plugins=SCRIPT) as r:
        await r.runs("quick", 1)
        status, body, _ = await r.get("/health/startup")
        assert status == 503
        assert json.loads(body)["checks"]["gate"][0]["output"] == "not run yet"
        GATES.setdefault("gate", asyncio.Event()).set()
        await r.runs("gate", 1)
        status, _, _ = await r.get("/health/startup")
        assert status == 200
    GATES.clear()


async def test_metrics_pass_promtool_and_openmetrics_is_negotiated(
    tmp_path: Path, target: TestServer
) -> None:
    promtool = require_binary("promtool", "apt-get install prometheus")
    three_checks(tmp_path, target.port)
    write(
        tmp_path / "s.yaml",
        """
        checks:
          - {name: scripted, type: script, interval: 1s, timeout: 500ms, labels: {tier: "a\\"b"}}
        """,
    )
    async with running_daemon(tmp_path, builtins=NET, plugins=SCRIPT) as r:
        for name in ("web-ok", "web-down", "tcp-ok", "scripted"):
            await r.runs(name, 1)
        _, text, headers = await r.get("/metrics")
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert samples(text, "probed_script_value") == {"scripted": 42.0}
        assert samples(text, "probed_script_labelled") == {"scripted": 1.5}
        assert 'part="a"' in text
        assert "probed_build_info" in text and "probed_scheduler_lag_seconds_bucket" in text
        assert samples(text, "probed_http_status_code") == {"web-ok": 200.0}

        _, om, headers = await r.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert om.endswith("# EOF\n")
        assert "# TYPE probed_check_runs counter" in om
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

        names = {f.name for f in om_parse(om)}
        assert "probed_check_runs" in names and "probed_check_success" in names


async def test_api_lists_checks_and_one_check_with_history(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: api-check, type: script, interval: 200ms, timeout: 100ms, labels: {team: core}}
        """,
    )
    async with running_daemon(tmp_path, builtins=(), plugins=SCRIPT) as r:
        await r.runs("api-check", 1)
        status, body, _ = await r.get("/api/v1/checks")
        data = json.loads(body)
        assert status == 200
        [check] = data["checks"]
        assert check["name"] == "api-check" and check["status"] == "ok" and check["up"]
        assert check["labels"] == {"team": "core"}
        assert check["last_result"]["values"] == {"probed_script_value": 42.0}
        await r.runs("api-check", 2)
        status, body, _ = await r.get("/api/v1/checks/api-check")
        one = json.loads(body)
        assert one["options"]["mode"] == "ok"
        # newest first, one entry per run (up to the history size)
        assert len(one["history"]) == min(one["runs"], 10) >= 1
        assert one["history"][0]["status"] == "ok" and one["history"][0]["time"]
        assert one["consecutive_successes"] == one["runs"] and one["consecutive_failures"] == 0
        CONTROL["api-check"] = "fail"
        await wait_for(lambda: r.state("api-check").fail_streak >= 2, 10, "two failed runs")
        _, body, _ = await r.get("/api/v1/checks/api-check")
        one = json.loads(body)
        assert one["consecutive_failures"] >= 2 and one["consecutive_successes"] == 0
        assert one["history"][0]["status"] == "fail"
        assert one["history"][0]["message"] == "it failed"
        status, body, _ = await r.get("/api/v1/checks/nope")
        assert status == 404 and "nope" in json.loads(body)["error"]


async def test_reload_keeps_state_and_schedule_of_unchanged_checks(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        """
        checks:
          - {name: keep, type: script, interval: 100ms, timeout: 50ms}
        """,
    )
    async with running_daemon(tmp_path, builtins=(), plugins=SCRIPT) as r:
        await r.runs("keep", 3)
        state_before = r.state("keep")
        job_before = r.daemon.jobs["keep"]
        runs_before = sum(state_before.runs)
        write(
            tmp_path / "b.yaml",
            """
            checks:
              - {name: added, type: script, interval: 100ms, timeout: 50ms}
            """,
        )
        status, body = await r.post("/-/reload")
        assert status == 200, body
        assert json.loads(body)["checks"] == 2
        assert r.state("keep") is state_before
        assert r.daemon.jobs["keep"] is job_before
        await r.runs("added", 1)
        # The kept check goes on counting from where it was: its run counter in /metrics
        # is not reset by the reload and keeps growing.
        await r.runs("keep", runs_before + 2)
        _, metrics, _ = await r.get("/metrics")
        runs_total = sum(
            s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
            if s.name == "probed_check_runs_total" and s.labels["check"] == "keep"
        )
        assert runs_total >= runs_before + 2


async def test_reload_with_invalid_file_keeps_last_good_version_and_reports(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "a.yaml",
        """
        checks:
          - {name: stays, type: script, interval: 100ms, timeout: 50ms}
        """,
    )
    async with running_daemon(tmp_path, builtins=(), plugins=SCRIPT) as r:
        await r.runs("stays", 1)
        state_before = r.state("stays")
        path.write_text("checks:\n  - name: stays\n    type: script\n    moode: ok\n")
        status, body = await r.post("/-/reload")
        assert status == 400
        errors = json.loads(body)["errors"]
        assert any("a.yaml:4" in e and "moode" in e and "did you mean 'mode'" in e for e in errors)
        assert r.state("stays") is state_before
        await r.runs("stays", sum(state_before.runs) + 1)
        _, metrics, _ = await r.get("/metrics")
        assert "probed_config_last_reload_successful 0.0" in metrics
        assert "probed_config_errors 1.0" in metrics


async def test_changes_under_checks_dir_are_picked_up_without_restart(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "checks: []\n")
    async with running_daemon(
        tmp_path, builtins=(), plugins=SCRIPT, watch=True, watch_interval=0.05
    ) as r:
        assert len(r.daemon.jobs) == 0
        write(
            tmp_path / "b.yaml",
            """
            checks:
              - {name: appeared, type: script, interval: 100ms, timeout: 50ms}
            """,
        )
        await r.runs("appeared", 1)


async def test_secret_from_file_never_appears_in_api_logs_or_errors(tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55word-xyz"
    checks = tmp_path / "checks"
    checks.mkdir()
    secret_file = checks / "secret"
    secret_file.write_text(secret + "\n")
    write(
        checks / "a.yaml",
        f"""
        checks:
          - name: leaky
            type: script
            mode: fail
            interval: 100ms
            timeout: 50ms
            failure_threshold: 1
            secret_echo: "${{file:{secret_file}}}"
        """,
    )
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    try:
        async with running_daemon(checks, builtins=(), plugins=SCRIPT) as r:
            await wait_for(
                lambda: "leaky" in r.daemon.store and r.state("leaky").status is Status.FAIL
            )
            last = r.state("leaky").last
            assert secret not in last.message and "***" in last.message
            _, listing, _ = await r.get("/api/v1/checks")
            _, one, _ = await r.get("/api/v1/checks/leaky")
            _, metrics, _ = await r.get("/metrics")
            _, health, _ = await r.get("/health/ready?verbose")
            for text in (listing, one, metrics, health):
                assert secret not in text
            # an error mentioning the secret file's value must not leak it either
            (checks / "b.yaml").write_text(f"checks:\n  - name: bad\n    type: {secret}\n")
            status, body = await r.post("/-/reload")
            assert status == 400 and secret not in body
    finally:
        logging.getLogger().handlers.clear()
    logs = stream.getvalue()
    assert '"event": "check_state_changed"' in logs
    assert secret not in logs


async def test_transition_log_line_is_json_with_check_old_new_and_reason(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        """
        checks:
          - {name: flips, type: script, interval: 50ms, timeout: 40ms, failure_threshold: 1}
        """,
    )
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    try:
        async with running_daemon(tmp_path, builtins=(), plugins=SCRIPT) as r:
            await r.runs("flips", 1)
            CONTROL["flips"] = "fail"
            await wait_for(lambda: r.state("flips").status is Status.FAIL)
    finally:
        CONTROL.clear()
        logging.getLogger().handlers.clear()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    changes = [e for e in events if e.get("event") == "check_state_changed"]
    assert {"check": "flips", "old": "ok", "new": "fail", "reason": "assertion"}.items() <= changes[
        -1
    ].items()
    assert changes[-1]["level"] == "warning" and "ts" in changes[-1]
