"""Scheduling: spread, overlap, timeouts, raising and loop-blocking plugins, concurrency."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest

from probed import Status
from probed.scheduler import phase_fraction
from tests.fakes import CONTROL, GATES, ScriptPlugin
from tests.harness import running_daemon, wait_for, write

SCRIPT = [("script", ScriptPlugin())]
BUILTINS = ("probed.checks.tcp",)


def test_phase_is_deterministic_per_name_and_spread() -> None:
    assert phase_fraction("payments-api") == phase_fraction("payments-api")
    phases = {round(phase_fraction(f"check-{i}"), 2) for i in range(200)}
    assert len(phases) > 60, "phases of 200 names should spread over the interval"


async def test_overlapping_run_is_skipped_while_previous_still_runs(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: gated, type: script, mode: gate, interval: 50ms, timeout: 45ms}
        """,
    )
    async with running_daemon(
        tmp_path, builtins=BUILTINS, plugins=SCRIPT, startup_spread=0.01
    ) as r:
        job = r.daemon.jobs["gated"]
        # Hold the run past its interval by replacing the timeout of this one job's runs:
        # the scheduler sees it still running at the next due time.
        original = r.daemon.scheduler._runner

        async def slow_runner(check, timeout):  # type: ignore[no-untyped-def]
            await GATES.setdefault("gated", asyncio.Event()).wait()
            return await original(check, timeout)

        r.daemon.scheduler._runner = slow_runner
        await wait_for(lambda: job.running, 5, "gated to start")
        await wait_for(lambda: r.state("gated").skipped_runs >= 2, 5, "skipped runs")
        assert job.running
        GATES["gated"].set()
        await r.runs("gated", 1)
        _, metrics, _ = await r.get("/metrics")
        skipped = re.search(
            r'^probed_check_skipped_runs_total\{check="gated",type="script"\} (\d+)$', metrics, re.M
        )
        assert skipped is not None and int(skipped[1]) >= 2, metrics
        _, body, _ = await r.get("/api/v1/checks/gated")
        assert json.loads(body)["skipped_runs"] >= 2


async def test_plugin_that_hangs_is_cut_at_its_timeout(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: hangs, type: script, mode: hang, interval: 1s, timeout: 100ms}
        """,
    )
    async with running_daemon(tmp_path, builtins=BUILTINS, plugins=SCRIPT) as r:
        await r.runs("hangs", 1)
        last = r.state("hangs").last
        assert last.status is Status.FAIL and last.reason == "timeout"
        assert 0.09 < last.duration < 0.5


async def test_plugin_that_raises_becomes_a_failed_result_and_others_keep_running(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: raises, type: script, mode: raise, interval: 100ms, timeout: 50ms}
          - {name: healthy, type: script, mode: ok, interval: 100ms, timeout: 50ms}
        """,
    )
    async with running_daemon(tmp_path, builtins=BUILTINS, plugins=SCRIPT) as r:
        await r.runs("raises", 3)
        await r.runs("healthy", 3)
        last = r.state("raises").last
        assert last.status is Status.FAIL and last.reason == "exception"
        assert "RuntimeError: boom" in last.message
        assert r.state("healthy").up


async def test_plugin_that_blocks_the_loop_past_its_timeout_fails_with_timeout(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: blocker, type: script, mode: block, block: 0.3, interval: 2s, timeout: 100ms}
          - {name: healthy, type: script, mode: ok, interval: 100ms, timeout: 50ms}
        """,
    )
    async with running_daemon(tmp_path, builtins=BUILTINS, plugins=SCRIPT) as r:
        await r.runs("blocker", 1)
        last = r.state("blocker").last
        assert last.status is Status.FAIL and last.reason == "timeout"
        assert "blocked the event loop" in last.message
        before = sum(r.state("healthy").runs)
        await r.runs("healthy", before + 3)


async def test_concurrency_bound_is_respected(tmp_path: Path) -> None:
    lines = "\n".join(
        f"  - {{name: g{i}, type: script, mode: gate, interval: 5s, timeout: 4s}}" for i in range(6)
    )
    write(tmp_path / "c.yaml", "checks:\n" + lines + "\n")
    async with running_daemon(tmp_path, builtins=BUILTINS, plugins=SCRIPT, max_concurrency=2) as r:
        sched = r.daemon.scheduler
        await wait_for(lambda: sched.running == 2 and sched.queued == 4, 5, "2 running, 4 queued")
        for i in range(6):
            GATES.setdefault(f"g{i}", asyncio.Event()).set()
        for i in range(6):
            await r.runs(f"g{i}", 1)
        assert sched.running == 0


async def test_state_transition_is_logged_and_notified(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.fakes import Recorder

    recorder = Recorder()
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: flip, type: script, interval: 50ms, timeout: 40ms, failure_threshold: 1}
        """,
    )
    caplog.set_level(logging.INFO, logger="probed")
    async with running_daemon(
        tmp_path, builtins=BUILTINS, plugins=[*SCRIPT, ("recorder", recorder)]
    ) as r:
        await r.runs("flip", 1)
        CONTROL["flip"] = "fail"
        await wait_for(lambda: r.state("flip").status is Status.FAIL, 5, "flip to fail")
        await wait_for(lambda: ("flip", Status.OK, Status.FAIL) in recorder.transitions, 5)
        assert ("flip", Status.UNKNOWN, Status.OK) in recorder.transitions
        assert any(name == "flip" for name, _ in recorder.results)
    # what the daemon logged: one record per transition, with structured fields; going
    # down is a warning, coming up is info
    changes = [
        (record.levelno, record.getMessage(), record.fields)  # type: ignore[attr-defined]
        for record in caplog.records
        if getattr(record, "fields", {}).get("event") == "check_state_changed"
    ]
    assert [(level, fields["old"], fields["new"]) for level, _, fields in changes] == [
        (logging.INFO, "unknown", "ok"),
        (logging.WARNING, "ok", "fail"),
    ]
    _, message, fields = changes[-1]
    assert message == "check flip is now fail (was ok): it failed"
    assert {"check": "flip", "type": "script", "reason": "assertion"}.items() <= fields.items()
