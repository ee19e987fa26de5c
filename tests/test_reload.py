"""Reloads that change what runs: an edited check restarts with its new spec and fresh state,
and an invalid ``probed.yaml`` keeps the running configuration (README "Signals and reload").

Real HTTP targets on loopback record what the ``http`` check sends, so a new URL and a rotated
secret file are seen where they matter: on the wire.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from probed import Status
from tests.harness import Running, running_daemon, wait_for, write

PLUGINS = Path(__file__).parent / "data" / "plugins"


@dataclass
class Target:
    """A real HTTP server recording the Authorization header of every request."""

    server: TestServer
    seen: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/healthz"


async def start_target() -> Target:
    target = Target(TestServer(web.Application(), host="127.0.0.1"))

    async def healthz(request: web.Request) -> web.Response:
        target.seen.append(request.headers.get("Authorization", ""))
        return web.Response(text="OK")

    target.server.app.router.add_get("/healthz", healthz)
    await target.server.start_server()
    return target


@pytest.fixture
async def targets() -> AsyncIterator[tuple[Target, Target]]:
    first, second = await start_target(), await start_target()
    try:
        yield first, second
    finally:
        await first.server.close()
        await second.server.close()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of an exposition text (fails if absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def http_check(path: Path, url: str, secret: Path, interval: str, timeout: str) -> None:
    write(
        path,
        f"""
        checks:
          - name: web
            type: http
            url: {url}
            bearer_token: "${{file:{secret}}}"
            interval: {interval}
            timeout: {timeout}
        """,
    )


async def api(r: Running, name: str) -> dict[str, object]:
    status, body, _ = await r.get(f"/api/v1/checks/{name}")
    assert status == 200, body
    data: dict[str, object] = json.loads(body)
    return data


async def test_reload_restarts_an_edited_check_with_its_new_url_interval_and_secret(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    old, new = targets
    checks = tmp_path / "checks"
    checks.mkdir()
    secret = checks / "token"
    secret.write_text("token-one-1234\n")
    http_check(checks / "web.yaml", old.url, secret, "300ms", "200ms")
    async with running_daemon(checks, builtins=("probed.checks.http",)) as r:
        await r.runs("web", 3)
        state_before = r.state("web")
        runs_before = sum(state_before.runs)
        assert state_before.status is Status.OK
        assert set(old.seen) == {"Bearer token-one-1234"}

        http_check(checks / "web.yaml", new.url, secret, "10s", "1s")
        secret.write_text("token-two-5678\n")
        reloaded_at = time.time()
        status, body = await r.post("/-/reload")
        assert status == 200, body
        assert json.loads(body) == {"status": "ok", "checks": 1, "errors": []}

        # New spec, visible in the API at once; fresh state (its first run is quick, the
        # second one at least 5 s later, so at most one run can have happened here).
        view = await api(r, "web")
        options = view["options"]
        assert isinstance(options, dict)
        assert options["url"] == new.url
        assert options["bearer_token"] != "token-two-5678"
        assert view["interval_seconds"] == 10.0 and view["timeout_seconds"] == 1.0
        assert isinstance(view["runs"], int) and view["runs"] <= 1 < runs_before
        assert r.state("web") is not state_before

        await r.runs("web", 1)
        view = await api(r, "web")
        assert view["runs"] == 1 and view["status"] == "ok" and view["up"] is True
        assert view["consecutive_successes"] == 1
        history = view["history"]
        assert isinstance(history, list) and len(history) == 1
        last = r.state("web").last
        assert last is not None and last.timestamp >= reloaded_at
        assert new.seen == ["Bearer token-two-5678"]
        assert "Bearer token-two-5678" not in old.seen

        # Counters restart with the changed check (a new series as far as rate() cares);
        # the daemon counts one successful reload.
        _, text, _ = await r.get("/metrics")
        assert metric(text, "probed_check_runs_total", check="web", result="ok") == 1
        assert metric(text, "probed_check_duration_seconds_count", check="web") == 1
        assert metric(text, "probed_check_state_changes_total", check="web") == 1
        assert metric(text, "probed_check_interval_seconds", check="web") == 10
        assert metric(text, "probed_check_timeout_seconds", check="web") == 1
        assert metric(text, "probed_config_reloads_total", result="success") == 1
        assert metric(text, "probed_config_last_reload_successful") == 1
        assert metric(text, "probed_config_last_reload_success_timestamp_seconds") >= int(
            reloaded_at
        )
        assert "token-two-5678" not in text


async def test_a_rotated_secret_file_alone_restarts_the_check_on_reload(
    tmp_path: Path, targets: tuple[Target, Target]
) -> None:
    target, _ = targets
    checks = tmp_path / "checks"
    checks.mkdir()
    secret = checks / "token"
    secret.write_text("first-secret-value")
    http_check(checks / "web.yaml", target.url, secret, "10s", "1s")
    async with running_daemon(checks, builtins=("probed.checks.http",)) as r:
        await r.runs("web", 1)
        state_before = r.state("web")
        assert target.seen == ["Bearer first-secret-value"]
        secret.write_text("second-secret-value")
        status, body = await r.post("/-/reload")
        assert status == 200, body
        assert r.state("web") is not state_before
        await r.runs("web", 1)
        assert target.seen == ["Bearer first-secret-value", "Bearer second-secret-value"]
        _, listing, _ = await r.get("/api/v1/checks")
        assert "second-secret-value" not in listing


async def test_reload_of_an_unchanged_file_keeps_the_check_running_as_it_was(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        "checks:\n  - {name: same, type: outcome, interval: 10s, timeout: 1s}\n",
    )
    async with running_daemon(tmp_path, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("same", 1)
        state_before = r.state("same")
        check_before = r.daemon.jobs["same"].check
        assert (await r.post("/-/reload"))[0] == 200
        assert r.state("same") is state_before
        assert r.daemon.jobs["same"].check is check_before
        assert (await api(r, "same"))["runs"] == 1


async def test_an_invalid_probed_yaml_on_reload_keeps_the_running_configuration(
    tmp_path: Path,
) -> None:
    config = write(
        tmp_path / "probed.yaml",
        """
        history: 3
        checks:
          - {name: from-config, type: outcome, message: v1, interval: 200ms, timeout: 100ms}
        """,
    )
    async with running_daemon(None, config_file=config, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("from-config", 1)
        state_before = r.state("from-config")
        write(
            config,
            """
            history: lots
            checks:
              - {name: from-config, type: outcome, message: v2, interval: 200ms, timeout: 100ms}
            """,
        )
        status, body = await r.post("/-/reload")
        assert status == 400, body
        answer = json.loads(body)
        assert answer["status"] == "error"
        assert any(f"{config}:1" in e and "history" in e for e in answer["errors"]), answer
        # the running configuration is untouched and keeps running
        assert r.daemon.settings.history == 3
        assert r.state("from-config") is state_before
        await r.runs("from-config", sum(state_before.runs) + 2)
        assert state_before.last is not None and state_before.last.message == "v1"
        assert len(state_before.history) == 3
        _, text, _ = await r.get("/metrics")
        assert metric(text, "probed_config_last_reload_successful") == 0
        assert metric(text, "probed_config_reloads_total", result="failure") == 1

        # fixed: the edited check restarts with its new message
        write(
            config,
            """
            history: 3
            checks:
              - {name: from-config, type: outcome, message: v2, interval: 200ms, timeout: 100ms}
            """,
        )
        status, body = await r.post("/-/reload")
        assert status == 200, body
        await wait_for(
            lambda: (last := r.state("from-config").last) is not None and last.message == "v2",
            10,
            "the fixed configuration to run",
        )
        _, text, _ = await r.get("/metrics")
        assert metric(text, "probed_config_last_reload_successful") == 1
        assert metric(text, "probed_config_reloads_total", result="success") == 1


async def test_a_probed_yaml_with_a_yaml_syntax_error_on_reload_keeps_running(
    tmp_path: Path,
) -> None:
    config = write(
        tmp_path / "probed.yaml",
        "checks:\n  - {name: steady, type: outcome, interval: 200ms, timeout: 100ms}\n",
    )
    async with running_daemon(None, config_file=config, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("steady", 1)
        state_before = r.state("steady")
        config.write_text("checks:\n  - {name: steady, type: outcome\n")
        status, body = await r.post("/-/reload")
        assert status == 400, body
        assert any("probed.yaml" in e for e in json.loads(body)["errors"])
        assert r.state("steady") is state_before
        await r.runs("steady", sum(state_before.runs) + 2)
        status, _, _ = await r.get("/health/ready")
        assert status == 200
