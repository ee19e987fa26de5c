"""``type: cpu`` against the real ``/proc/stat`` and load average, with a real busy process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from probed import Reason, Status
from probed.checks._host import parse_proc_stat, read_cpu_times, read_cpu_times_psutil
from probed.checks.cpu import CpuCheck, CpuOptions
from probed.checks.disk import DiskCheck
from probed.checks.memory import MemoryCheck
from probed.plugins import check_types, get_plugin_manager
from probed.testing import run_check
from tests._require import requires
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.servers._util import wait_until

PROC_STAT = Path("/proc/stat")

pytestmark = requires(PROC_STAT.exists(), "needs Linux /proc/stat")

NO_LIMITS: dict[str, Any] = {
    "warn_used_percent": None,
    "fail_used_percent": None,
    "warn_load_per_core": None,
    "fail_load_per_core": None,
}


def process_cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@pytest.fixture
def busy_process() -> Iterator[int]:
    """A process spinning on one CPU for the duration of the test."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        # Running, not just forked: it has burnt CPU time of its own.
        wait_until(lambda: process_cpu_ticks(proc.pid) > 0, 10, "the busy process to run")
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


async def test_cpu_reports_utilization_and_load_per_core() -> None:
    cores = os.cpu_count() or 1
    before = [x / cores for x in os.getloadavg()]
    result = await run_check(CpuCheck, window="200ms", **NO_LIMITS)
    after = [x / cores for x in os.getloadavg()]
    assert result.status is Status.OK
    assert 0.0 <= result.values["probed_cpu_utilization_ratio"] <= 1.0
    loads = {s.labels: s.value for s in result.samples if s.name == "probed_cpu_load_per_core"}
    assert set(loads) == {("1m",), ("5m",), ("15m",)}
    for i, window in enumerate(("1m", "5m", "15m")):
        low, high = sorted((before[i], after[i]))
        assert low - 0.01 <= loads[(window,)] <= high + 0.01
    assert result.message.startswith("cpu: ")
    assert "used over 200ms" in result.message


async def test_cpu_utilization_sees_a_busy_process(busy_process: int) -> None:
    cores = os.cpu_count() or 1
    result = await run_check(CpuCheck, window="500ms", **NO_LIMITS)
    # One spinning process keeps one core busy: at least half of it shows up.
    assert result.values["probed_cpu_utilization_ratio"] >= 0.5 / cores


async def test_cpu_fails_when_utilization_is_above_the_fail_threshold(busy_process: int) -> None:
    limit = 25 / (os.cpu_count() or 1)  # below the busy process's guaranteed share
    result = await run_check(CpuCheck, window="500ms", **{**NO_LIMITS, "fail_used_percent": limit})
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert "cpu: " in result.message
    assert f"used over 500ms, above the fail threshold {limit:g}%" in result.message


async def test_cpu_warns_between_warn_and_fail_thresholds(busy_process: int) -> None:
    limit = 25 / (os.cpu_count() or 1)
    result = await run_check(
        CpuCheck,
        window="500ms",
        **{**NO_LIMITS, "warn_used_percent": limit, "fail_used_percent": 100},
    )
    assert result.status is Status.WARN
    assert "above the warn threshold" in result.message


async def test_cpu_warns_when_load_per_core_is_above_the_threshold(busy_process: int) -> None:
    # The kernel refreshes the load average every 5 s; the busy process makes it non-zero.
    await asyncio.to_thread(wait_until, lambda: os.getloadavg()[0] > 0, 15, "a non-zero load")
    result = await run_check(
        CpuCheck, window="100ms", **{**NO_LIMITS, "warn_load_per_core": 0, "load_window": "1m"}
    )
    assert result.status is Status.WARN
    assert result.reason == Reason.THRESHOLD
    assert "load per core (1m), above the warn threshold 0" in result.message


async def test_cpu_passes_below_every_threshold() -> None:
    result = await run_check(
        CpuCheck, window="100ms", warn_used_percent=100, fail_used_percent=100,
        warn_load_per_core=1000, fail_load_per_core=1000,
    )  # fmt: skip
    assert result.status is Status.OK


async def test_cpu_window_not_shorter_than_timeout_fails_with_a_clear_message() -> None:
    result = await run_check(CpuCheck, timeout=1.0, window="1s")
    assert result.status is Status.FAIL
    assert result.reason == "config"
    assert "window 1s is not shorter than the check timeout 1s" in result.message


def test_cpu_window_is_a_duration_up_to_a_minute() -> None:
    assert CpuOptions.model_validate({"window": "1m"}).window == 60.0
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 60"):
        CpuOptions.model_validate({"window": "2m"})
    with pytest.raises(pydantic.ValidationError, match="invalid duration"):
        CpuOptions.model_validate({"window": "soon"})


def test_cpu_rejects_warn_threshold_above_fail_threshold() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"warn_load_per_core \(3\) must not be"):
        CpuOptions.model_validate({"warn_load_per_core": 3, "fail_load_per_core": 1})
    with pytest.raises(pydantic.ValidationError, match="load_window"):
        CpuOptions.model_validate({"load_window": "10m"})


def test_proc_stat_parse_counts_idle_and_iowait_as_idle() -> None:
    text = PROC_STAT.read_text()
    times = parse_proc_stat(text)
    fields = [float(v) for v in text.splitlines()[0].split()[1:9]]
    assert times.total == sum(fields)
    assert times.busy == sum(fields) - fields[3] - fields[4]
    with pytest.raises(ValueError, match="no aggregate cpu line"):
        parse_proc_stat("intr 1 2 3\n")


def test_psutil_fallback_counts_the_same_cpu_time() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    proc = read_cpu_times()
    ps = read_cpu_times_psutil()
    proc_again = read_cpu_times()
    # psutil counts seconds, /proc ticks; both cover the same time since boot.
    assert proc.total / ticks <= ps.total * 1.01
    assert ps.total <= proc_again.total / ticks * 1.01 + 1


async def test_host_checks_keep_the_event_loop_running() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    results = await asyncio.gather(
        run_check(CpuCheck, window="1s"), run_check(DiskCheck), run_check(MemoryCheck)
    )
    elapsed = time.perf_counter() - started
    stop.set()
    await beat
    assert all(r.reason not in (Reason.TIMEOUT, Reason.EXCEPTION) for r in results)
    # A check that blocked the loop for its window would leave the heartbeat at one tick.
    assert elapsed >= 1.0
    assert ticks >= 10


async def test_cpu_reads_proc_off_the_event_loop_thread() -> None:
    with blocking_calls_on_loop_thread() as seen:
        os.getloadavg()  # the guard sees this call on the loop thread
        assert seen == ["getloadavg"]
        seen.clear()
        result = await run_check(CpuCheck, window="50ms")
    assert seen == []
    assert "probed_cpu_utilization_ratio" in result.values


async def test_cpu_is_registered_as_a_builtin_plugin_and_reports_what_it_declares() -> None:
    pm = get_plugin_manager(builtins=("probed.checks.cpu",), entry_points=False)
    info = check_types(pm)["cpu"]
    assert info.cls is CpuCheck
    assert info.missing_module is None and info.available
    # what a real run reports is exactly what the type declares (undeclared series are dropped)
    result = await run_check(CpuCheck, window="50ms")
    declared = {m.name for m in CpuCheck.metrics}
    assert declared == {"probed_cpu_utilization_ratio", "probed_cpu_load_per_core"}
    assert set(result.values) | {s.name for s in result.samples} == declared
    windows = {s.labels for s in result.samples if s.name == "probed_cpu_load_per_core"}
    assert windows == {("1m",), ("5m",), ("15m",)}
