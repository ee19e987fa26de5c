"""The HTTP layer reads narrow views, never the daemon; the daemon's lifecycle is aiohttp's.

- every handler works with only the views under :mod:`probed.server`'s ``AppKey``\\ s (an app
  built here has no daemon at all), and ``probed.server`` does not import ``probed.daemon``;
- the liveness rule is :func:`probed.health.liveness_verdict`;
- a scrape does not call back into anything: the exporter trims the heap itself;
- startup and shutdown run as ``cleanup_ctx`` contexts: a daemon that cannot bind its port
  still stops what it started (scheduler, checks, plugins) and says why.
"""

from __future__ import annotations

import ast
import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import probed.metrics
import probed.server
from probed import Result, hookimpl
from probed.config import load_settings
from probed.daemon import Daemon
from probed.errors import ConfigError
from probed.exposition import TypeMetrics
from probed.health import STUCK_AFTER, StartupLatch, liveness_verdict
from probed.metrics import DaemonMetrics, Exporter
from probed.plugins import get_plugin_manager
from probed.server import (
    CONFIG,
    EXPORTER,
    HEARTBEAT,
    RELOAD,
    STARTUP,
    STATES,
    make_app,
)
from probed.state import CheckState, StateStore
from probed.testing import make_spec
from tests.fakes import ScriptCheck
from tests.harness import wait_for, write
from tests.servers._util import free_port

TYPES = TypeMetrics([("script", ScriptCheck.metrics)])


@dataclass
class Beat:
    alive: bool = True
    late: float = 0.0
    interval: float = float("inf")  # allowed lateness then STUCK_AFTER (issue 8 added the rule)

    def overdue(self) -> float:
        return self.late

    def earliest_interval(self) -> float:
        return self.interval


@dataclass
class Config:
    errors: tuple[ConfigError, ...] = ()
    reloads: int = 0

    def redact(self, text: str) -> str:
        return text.replace("s3cret", "***")

    async def reload(self) -> tuple[bool, tuple[ConfigError, ...]]:
        self.reloads += 1
        return False, (ConfigError("c.yaml", 3, "", "bad s3cret"),)


@dataclass
class Views:
    """An installer with no daemon behind it: only the views the handlers may read."""

    store: StateStore
    beat: Beat = field(default_factory=Beat)
    config: Config = field(default_factory=Config)

    def install(self, app: web.Application) -> None:
        app[STATES] = self.store
        app[HEARTBEAT] = self.beat
        app[STARTUP] = StartupLatch(self.store)
        app[CONFIG] = self.config
        app[RELOAD] = self.config
        app[EXPORTER] = Exporter(self.store, TYPES, DaemonMetrics(self.store, lambda: True))


@pytest.fixture
async def served() -> AsyncIterator[tuple[Views, str, aiohttp.ClientSession]]:
    ok = CheckState(make_spec(ScriptCheck, name="ok-check"))
    ok.record(Result.ok(timestamp=1.0))
    down = CheckState(make_spec(ScriptCheck, name="down-check", failure_threshold=1))
    down.record(Result.fail("timeout", "no answer from s3cret.example", timestamp=2.0))
    views = Views(StateStore({"ok-check": ok, "down-check": down}))
    runner = web.AppRunner(make_app(views), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            yield views, f"http://127.0.0.1:{port}", session
    finally:
        await runner.cleanup()


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


async def test_every_endpoint_answers_from_the_views_alone(
    served: tuple[Views, str, aiohttp.ClientSession],
) -> None:
    views, url, session = served
    assert (await _get(session, url + "/health/live"))[0] == 200
    status, body = await _get(session, url + "/health/ready?verbose")
    assert status == 503 and "[-]down-check failed: no answer from s3cret.example" in body
    assert (await _get(session, url + "/health/ready?exclude=down-check"))[0] == 200
    assert (await _get(session, url + "/health/startup"))[0] == 200
    status, body = await _get(session, url + "/metrics")
    assert status == 200 and 'probed_check_up{check="down-check",type="script"} 0' in body
    status, body = await _get(session, url + "/api/v1/checks/down-check")
    assert status == 200 and "no answer from ***.example" in body and "s3cret" not in body
    async with session.post(url + "/-/reload") as resp:
        assert resp.status == 400
        assert await resp.json() == {
            "status": "error",
            "checks": 2,
            "errors": ["c.yaml:3: bad ***"],
        }
    assert views.config.reloads == 1


async def test_live_fails_from_the_heartbeat_view_alone(
    served: tuple[Views, str, aiohttp.ClientSession],
) -> None:
    views, url, session = served
    views.beat.late = STUCK_AFTER + 1
    status, body = await _get(session, url + "/health/live?verbose")
    assert status == 503 and "scheduler stuck: the earliest run is 61s overdue" in body
    views.beat.late, views.beat.alive = 0.0, False
    assert (await _get(session, url + "/health/live"))[0] == 503


def test_the_liveness_rule_is_scheduler_running_and_less_than_a_minute_late() -> None:
    assert liveness_verdict(Beat(True, STUCK_AFTER - 0.5)).passed
    late = liveness_verdict(Beat(True, STUCK_AFTER))
    assert not late.passed and late.note == "scheduler stuck: the earliest run is 60s overdue"
    assert not liveness_verdict(Beat(False, 0.0)).passed
    assert liveness_verdict(Beat(True, 0.0)).states == ()  # never depends on check results


def test_the_http_layer_does_not_import_the_daemon() -> None:
    tree = ast.parse(Path(probed.server.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert "probed.daemon" not in imported
    assert not {"probed.reload", "probed.scheduler", "probed.results"} & imported


async def test_a_big_scrape_trims_the_heap_by_itself_once_per_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trims: list[float] = []
    monkeypatch.setattr(probed.metrics, "trim", lambda: trims.append(1.0))
    monkeypatch.setattr(probed.metrics, "TRIM_DELAY", 0.01)
    states = {f"c{i}": CheckState(make_spec(ScriptCheck, name=f"c{i}")) for i in range(3)}
    store = StateStore(states)
    big = Exporter(store, TYPES, DaemonMetrics(store, lambda: True), trim_from=3)
    await big.render_async(False)
    await big.render_async(False)  # within the delay: still one trim pending
    await wait_for(lambda: len(trims) == 1, 5, "the trim")
    small = Exporter(store, TYPES, DaemonMetrics(store, lambda: True), trim_from=4)
    await small.render_async(False)
    untrimmed = Exporter(store, TYPES, DaemonMetrics(store, lambda: True))
    await untrimmed.render_async(False)
    await asyncio.sleep(0.05)  # let a wrongly scheduled trim come due (none may)
    assert len(trims) == 1


class Lifecycle:
    """Records the lifecycle hooks and closes of its checks."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def probed_register_check_types(self) -> list[type[Any]]:
        calls = self.calls

        class Closing(ScriptCheck):
            async def close(self) -> None:
                calls.append(f"close {self.spec.name}")

        return [Closing]

    @hookimpl
    def probed_configure(self) -> None:
        self.calls.append("configure")

    @hookimpl
    def probed_startup(self) -> None:
        self.calls.append("startup")

    @hookimpl
    def probed_shutdown(self) -> None:
        self.calls.append("shutdown")


async def test_a_daemon_that_cannot_bind_still_stops_what_it_started(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", "checks:\n  - {name: one, type: script, interval: 1s}\n")
    plugin = Lifecycle()
    pm = get_plugin_manager(builtins=(), extra=[("lifecycle", plugin)], entry_points=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = load_settings(
            None, {"listen": f"127.0.0.1:{port}", "checks_dirs": (tmp_path,), "watch": False}
        )
        daemon = Daemon(settings, pm)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await asyncio.wait_for(daemon.serve(make_app(daemon), install_signals=False), 30)
    assert plugin.calls == ["configure", "startup", "close one", "shutdown"]
    assert not daemon.scheduler.alive
