"""``type: memory`` against the real ``/proc/meminfo``: thresholds relative to what it says."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pydantic
import pytest

from probed import Reason, Status
from probed.checks._host import parse_meminfo, read_memory, read_memory_psutil
from probed.checks.memory import MemoryCheck, MemoryOptions
from probed.plugins import check_types, get_plugin_manager
from probed.testing import run_check
from tests._require import requires
from tests.checks._loop_guard import blocking_calls_on_loop_thread

MEMINFO = Path("/proc/meminfo")

pytestmark = requires(MEMINFO.exists(), "needs Linux /proc/meminfo")


def meminfo_bytes() -> dict[str, int]:
    """``/proc/meminfo`` parsed here independently of the check, in bytes."""
    out = {}
    for line in MEMINFO.read_text().splitlines():
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) * 1024
    return out


def used_percent() -> float:
    info = meminfo_bytes()
    return 100.0 * (1 - info["MemAvailable"] / info["MemTotal"])


NO_LIMITS: dict[str, Any] = {"warn_used_percent": None, "fail_used_percent": None}


async def test_memory_reports_total_available_and_use() -> None:
    info = meminfo_bytes()
    result = await run_check(MemoryCheck, **NO_LIMITS)
    assert result.status is Status.OK
    assert result.values["probed_memory_total_bytes"] == info["MemTotal"]
    assert result.values["probed_memory_available_bytes"] == pytest.approx(
        info["MemAvailable"], abs=info["MemTotal"] * 0.05
    )
    assert result.values["probed_memory_used_ratio"] == pytest.approx(
        used_percent() / 100, abs=0.05
    )
    assert 0.0 <= result.values["probed_swap_used_ratio"] <= 1.0
    assert result.message.startswith("memory: ")
    assert "available of" in result.message


async def test_memory_fails_when_use_is_above_the_fail_threshold() -> None:
    limit = used_percent() / 2
    result = await run_check(MemoryCheck, fail_used_percent=limit)
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert "memory: " in result.message
    assert f"used, above the fail threshold {limit:g}%" in result.message


async def test_memory_warns_between_warn_and_fail_thresholds() -> None:
    result = await run_check(
        MemoryCheck, warn_used_percent=used_percent() / 2, fail_used_percent=100
    )
    assert result.status is Status.WARN
    assert result.reason == Reason.THRESHOLD
    assert "above the warn threshold" in result.message


async def test_memory_passes_below_both_thresholds() -> None:
    result = await run_check(MemoryCheck, warn_used_percent=100, fail_used_percent=100)
    assert result.status is Status.OK


async def test_memory_fails_when_available_memory_is_below_the_minimum() -> None:
    total = meminfo_bytes()["MemTotal"]
    result = await run_check(MemoryCheck, **NO_LIMITS, fail_available_bytes=total + 1)
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert "available, below the fail threshold" in result.message


async def test_memory_available_threshold_accepts_units() -> None:
    options = MemoryOptions.model_validate({"warn_available_bytes": "2GiB"})
    assert options.warn_available_bytes == 2 * 2**30
    result = await run_check(MemoryCheck, **NO_LIMITS, fail_available_bytes="1KiB")
    assert result.status is Status.OK


async def test_memory_swap_thresholds_follow_the_hosts_swap() -> None:
    """With swap in use a 0% fail threshold fires; without swap, swap thresholds never fire.

    One test with both branches, so the suite never skips whichever this host lacks.
    """
    info = meminfo_bytes()
    swap_used = info["SwapTotal"] - info["SwapFree"]
    result = await run_check(
        MemoryCheck, **NO_LIMITS, warn_swap_used_percent=0, fail_swap_used_percent=0
    )
    if info["SwapTotal"] == 0:
        assert result.status is Status.OK
        assert result.values["probed_swap_used_ratio"] == 0.0
        assert "no swap" in result.message
    elif swap_used > 0:
        assert result.status is Status.FAIL
        assert "of swap used, above the fail threshold 0%" in result.message
    else:
        assert result.values["probed_swap_used_ratio"] == 0.0


def test_meminfo_without_memavailable_estimates_from_free_buffers_and_cache() -> None:
    text = MEMINFO.read_text()
    old_kernel = "\n".join(
        line for line in text.splitlines() if not line.startswith("MemAvailable")
    )
    info = meminfo_bytes()
    parsed = parse_meminfo(old_kernel)
    assert parsed.available == info["MemFree"] + info["Buffers"] + info["Cached"]
    assert parsed.total == info["MemTotal"]


def test_meminfo_without_memtotal_is_an_error() -> None:
    with pytest.raises(ValueError, match="MemTotal"):
        parse_meminfo("MemFree: 10 kB\n")


def test_psutil_fallback_reads_the_same_totals() -> None:
    proc, ps = read_memory(), read_memory_psutil()
    assert ps.total == proc.total
    assert ps.swap_total == proc.swap_total


def test_memory_rejects_warn_threshold_above_fail_threshold() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"warn_swap_used_percent .* must not be"):
        MemoryOptions.model_validate({"warn_swap_used_percent": 50, "fail_swap_used_percent": 10})
    with pytest.raises(pydantic.ValidationError, match=r"warn_available_bytes .* must not be"):
        MemoryOptions.model_validate(
            {"warn_available_bytes": "1GiB", "fail_available_bytes": "2GiB"}
        )


async def test_memory_reads_proc_off_the_event_loop_thread() -> None:
    with blocking_calls_on_loop_thread() as seen:
        # the guard does see a read made on this thread (deliberately blocking here)
        MEMINFO.read_text()  # noqa: ASYNC240
        assert seen == ["open"]
        seen.clear()
        await asyncio.to_thread(MEMINFO.read_text)  # and does not see a worker's
        result = await run_check(MemoryCheck)
    assert seen == []
    assert result.values["probed_memory_total_bytes"] > 0


async def test_memory_is_registered_as_a_builtin_plugin_and_reports_what_it_declares() -> None:
    pm = get_plugin_manager(builtins=("probed.checks.memory",), entry_points=False)
    info = check_types(pm)["memory"]
    assert info.cls is MemoryCheck
    assert info.missing_module is None and info.available
    # what a real run reports is exactly what the type declares (undeclared series are dropped)
    result = await run_check(MemoryCheck)
    declared = {m.name for m in MemoryCheck.metrics}
    assert declared == {
        "probed_memory_available_bytes",
        "probed_memory_total_bytes",
        "probed_memory_used_ratio",
        "probed_swap_used_ratio",
    }
    assert set(result.values) == declared
