"""``type: disk`` against the real filesystem: thresholds are set relative to what statvfs says."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest

from probed import Reason, Status
from probed.checks.disk import DiskCheck, DiskOptions
from probed.plugins import check_types, get_plugin_manager
from probed.testing import run_check
from tests._require import require
from tests.checks._loop_guard import blocking_calls_on_loop_thread


def used_percent(path: Path) -> float:
    """``df``'s Use% computed here independently of the check."""
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    return 100.0 * used / (used + st.f_bavail)


def inodes_used_percent(path: Path) -> float:
    st = os.statvfs(path)
    return 100.0 * (st.f_files - st.f_ffree) / st.f_files


async def test_disk_reports_size_free_and_use_of_the_filesystem(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    result = await run_check(
        DiskCheck, path=str(tmp_path), warn_used_percent=None, fail_used_percent=None,
        warn_inodes_used_percent=None, fail_inodes_used_percent=None,
    )  # fmt: skip
    assert result.status is Status.OK
    assert result.values["probed_disk_size_bytes"] == st.f_blocks * st.f_frsize
    # Other processes write meanwhile: allow a little drift, not a different filesystem.
    assert result.values["probed_disk_free_bytes"] == pytest.approx(
        st.f_bavail * st.f_frsize, abs=256 * 2**20
    )
    assert result.values["probed_disk_used_ratio"] == pytest.approx(
        used_percent(tmp_path) / 100, abs=0.01
    )
    assert 0.0 <= result.values["probed_disk_inodes_used_ratio"] <= 1.0
    assert result.message.startswith(f"{tmp_path}: ")
    assert "free of" in result.message


async def test_disk_fails_when_use_is_above_the_fail_threshold(tmp_path: Path) -> None:
    limit = used_percent(tmp_path) / 2
    result = await run_check(DiskCheck, path=str(tmp_path), fail_used_percent=limit)
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert f"{tmp_path}: " in result.message
    assert f"used, above the fail threshold {limit:g}%" in result.message


async def test_disk_warns_between_warn_and_fail_thresholds(tmp_path: Path) -> None:
    used = used_percent(tmp_path)
    result = await run_check(
        DiskCheck, path=str(tmp_path), warn_used_percent=used / 2, fail_used_percent=100
    )
    assert result.status is Status.WARN
    assert result.reason == Reason.THRESHOLD
    assert "above the warn threshold" in result.message


async def test_disk_passes_when_use_is_below_both_thresholds(tmp_path: Path) -> None:
    result = await run_check(
        DiskCheck, path=str(tmp_path), warn_used_percent=100, fail_used_percent=100,
        warn_inodes_used_percent=100, fail_inodes_used_percent=100,
    )  # fmt: skip
    assert result.status is Status.OK
    assert result.reason == ""


async def test_disk_fails_when_free_space_is_below_min_free_bytes(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    size = st.f_blocks * st.f_frsize
    result = await run_check(
        DiskCheck, path=str(tmp_path), fail_used_percent=None, fail_free_bytes=size + 1
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert "free, below the fail threshold" in result.message


async def test_disk_byte_thresholds_accept_sizes_with_units(tmp_path: Path) -> None:
    assert DiskOptions.model_validate({"warn_free_bytes": "10GiB"}).warn_free_bytes == 10 * 2**30
    assert DiskOptions.model_validate({"fail_free_bytes": "500MB"}).fail_free_bytes == 500 * 10**6
    result = await run_check(
        DiskCheck, path=str(tmp_path), warn_used_percent=100, fail_used_percent=100,
        warn_free_bytes="2KiB", fail_free_bytes="1 KB",
    )  # fmt: skip
    assert result.status is Status.OK


async def test_disk_fails_when_inode_use_is_above_the_fail_threshold(tmp_path: Path) -> None:
    require(os.statvfs(tmp_path).f_files > 0, "the filesystem of tmp_path has no inode table")
    limit = inodes_used_percent(tmp_path) / 2
    result = await run_check(
        DiskCheck, path=str(tmp_path), fail_used_percent=None, fail_inodes_used_percent=limit
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert "of inodes used, above the fail threshold" in result.message


async def test_disk_reports_every_breach_worst_first(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    result = await run_check(
        DiskCheck, path=str(tmp_path), warn_used_percent=used_percent(tmp_path) / 2,
        fail_used_percent=100, fail_free_bytes=st.f_blocks * st.f_frsize + 1,
    )  # fmt: skip
    assert result.status is Status.FAIL
    fail_part, warn_part = result.message.split("; ")
    assert "fail threshold" in fail_part
    assert "warn threshold" in warn_part


async def test_disk_missing_path_fails_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    result = await run_check(DiskCheck, path=str(missing))
    assert result.status is Status.FAIL
    assert result.reason == "not_found"
    assert str(missing) in result.message


def test_disk_rejects_a_relative_path() -> None:
    with pytest.raises(pydantic.ValidationError, match="path must be absolute"):
        DiskOptions.model_validate({"path": "var/lib"})


def test_disk_rejects_warn_threshold_above_fail_threshold() -> None:
    with pytest.raises(
        pydantic.ValidationError,
        match=r"warn_used_percent \(95\) must not be above fail_used_percent \(90\)",
    ):
        DiskOptions.model_validate({"warn_used_percent": 95, "fail_used_percent": 90})
    with pytest.raises(pydantic.ValidationError, match=r"warn_free_bytes .* must not be below"):
        DiskOptions.model_validate({"warn_free_bytes": 1, "fail_free_bytes": 2})


def test_disk_accepts_a_fail_threshold_below_the_default_warn_threshold() -> None:
    options = DiskOptions.model_validate({"fail_used_percent": 50})
    assert options.fail_used_percent == 50
    assert options.warn_used_percent == 80


def test_disk_rejects_percentages_outside_0_to_100() -> None:
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 100"):
        DiskOptions.model_validate({"fail_used_percent": 150})


async def test_disk_does_not_call_statvfs_on_the_event_loop_thread(tmp_path: Path) -> None:
    with blocking_calls_on_loop_thread() as seen:
        os.statvfs(tmp_path)  # the guard does see a call made on this thread
        assert seen == ["statvfs"]
        seen.clear()
        await asyncio.to_thread(os.statvfs, tmp_path)  # and does not see a worker's
        result = await run_check(DiskCheck, path=str(tmp_path))
    assert seen == []
    assert "probed_disk_size_bytes" in result.values


async def test_disk_is_registered_as_a_builtin_plugin_and_reports_what_it_declares(
    tmp_path: Path,
) -> None:
    pm = get_plugin_manager(builtins=("probed.checks.disk",), entry_points=False)
    info = check_types(pm)["disk"]
    assert info.cls is DiskCheck
    assert info.missing_module is None and info.available
    # what a real run reports is exactly what the type declares (undeclared series are dropped)
    declared = {m.name for m in DiskCheck.metrics}
    assert declared == {
        "probed_disk_used_ratio",
        "probed_disk_free_bytes",
        "probed_disk_size_bytes",
        "probed_disk_inodes_used_ratio",
    }
    result = await run_check(DiskCheck, path=str(tmp_path))
    if os.statvfs(tmp_path).f_files == 0:  # documented: no inode ratio without an inode table
        declared.discard("probed_disk_inodes_used_ratio")
    assert set(result.values) == declared
    assert result.values["probed_disk_size_bytes"] == pytest.approx(
        os.statvfs(tmp_path).f_blocks * os.statvfs(tmp_path).f_frsize
    )


NO_PSUTIL_SCRIPT = """
import asyncio, sys
sys.modules["psutil"] = None  # as after a plain `pip install probed`: importing it fails
from probed import Status
from probed.checks._host import HostUnsupportedError, read_memory_psutil
from probed.checks.cpu import CpuCheck
from probed.checks.disk import DiskCheck
from probed.checks.memory import MemoryCheck
from probed.testing import run_check

async def main():
    for check, options in ((DiskCheck, {}), (MemoryCheck, {}), (CpuCheck, {"window": "100ms"})):
        result = await run_check(check, **options)
        assert result.status is not Status.UNKNOWN and result.values, (check, result)
    try:
        read_memory_psutil()
    except HostUnsupportedError as exc:
        print(exc)

asyncio.run(main())
"""


def test_host_checks_work_on_linux_without_psutil() -> None:
    require(Path("/proc/meminfo").exists(), "needs Linux /proc")
    done = subprocess.run(
        [sys.executable, "-c", NO_PSUTIL_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # Where /proc is missing, the same readers would say what to install.
    assert "needs /proc (Linux) or psutil; install probed[system]" in done.stdout
