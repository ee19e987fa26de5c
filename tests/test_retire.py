"""Closing the checks of retired jobs: bounded at once, and a hung close holds only itself.

A stop (or a reload that removes every check) of a large daemon used to make one task per
check at once (~75 MB at 50,000 checks); closes now run :data:`probed.reload.CLOSE_AT_ONCE`
at a time from one queue, each bounded by :data:`probed.reload.CLOSE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

import probed.reload
from probed import hookimpl
from probed.config import load_settings
from probed.daemon import Daemon
from probed.plugins import get_plugin_manager
from probed.server import make_app
from tests.fakes import ScriptCheck
from tests.harness import wait_for, write
from tests.servers._util import free_port


class Closes:
    """A check type whose close yields a few times and records how many close at once."""

    def __init__(self, hang: str = "") -> None:
        self.hang = hang
        self.closed: list[str] = []
        self.in_flight = 0
        self.most = 0
        self.never = asyncio.Event()

    @hookimpl
    def probed_register_check_types(self) -> list[type[Any]]:
        plugin = self

        class Closing(ScriptCheck):
            async def close(self) -> None:
                plugin.in_flight += 1
                plugin.most = max(plugin.most, plugin.in_flight)
                try:
                    if self.spec.name == plugin.hang:
                        await plugin.never.wait()
                    for _ in range(3):
                        await asyncio.sleep(0)
                    plugin.closed.append(self.spec.name)
                finally:
                    plugin.in_flight -= 1

        return [Closing]


async def _run_and_stop(tmp_path: Path, plugin: Closes, checks: int) -> Daemon:
    lines = "".join(f"  - {{name: c{i}, type: script, interval: 1h}}\n" for i in range(checks))
    write(tmp_path / "checks" / "c.yaml", "checks:\n" + lines)
    pm = get_plugin_manager(builtins=(), extra=[("closes", plugin)], entry_points=False)
    settings = load_settings(
        None,
        {
            "listen": f"127.0.0.1:{free_port()}",
            "checks_dirs": (tmp_path / "checks",),
            "watch": False,
            "use_embedded_checks": False,
        },
    )
    daemon = Daemon(settings, pm)
    serving = asyncio.create_task(daemon.serve(make_app(daemon), install_signals=False))
    await wait_for(lambda: len(daemon.config.jobs) == checks, 30, "the checks loaded")
    daemon.request_stop()
    await asyncio.wait_for(serving, 60)
    return daemon


async def test_a_stop_closes_every_check_once_at_most_close_at_once_at_a_time(
    tmp_path: Path,
) -> None:
    plugin = Closes()
    await _run_and_stop(tmp_path, plugin, 300)
    assert sorted(plugin.closed) == sorted(f"c{i}" for i in range(300))
    assert 1 < plugin.most <= probed.reload.CLOSE_AT_ONCE


async def test_a_hung_close_is_left_after_its_timeout_and_the_others_still_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(probed.reload, "CLOSE_TIMEOUT", 0.2)
    plugin = Closes(hang="c0")
    with caplog.at_level(logging.WARNING, logger="probed"):
        await _run_and_stop(tmp_path, plugin, 200)
    assert sorted(plugin.closed) == sorted(f"c{i}" for i in range(1, 200))
    assert plugin.in_flight == 0  # the hung close was cancelled at its timeout
    assert "closing check c0 took longer than 0.2s; left behind" in caplog.text
