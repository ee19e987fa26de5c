"""Blocking readers of host statistics for the ``disk``, ``cpu`` and ``memory`` check types.

Everything here blocks (``statvfs``, reading ``/proc``) and is meant to be called through
:func:`probed.run_blocking`. On Linux only the standard library is used, so the embedded host checks
work after a plain ``pip install probed``. Where ``/proc`` is missing (macOS, BSD, Windows)
the readers fall back to psutil when it is installed (``probed[system]``), and otherwise raise
:class:`HostUnsupportedError`, which the checks report as ``unknown``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final

__all__ = [
    "CpuTimes",
    "DiskUsage",
    "HostUnsupportedError",
    "MemoryInfo",
    "load_per_core",
    "parse_meminfo",
    "parse_proc_stat",
    "read_cpu_times",
    "read_disk_usage",
    "read_memory",
]

PROC_MEMINFO: Final = Path("/proc/meminfo")
PROC_STAT: Final = Path("/proc/stat")


class HostUnsupportedError(Exception):
    """This platform offers neither ``/proc`` nor psutil for the statistic asked for."""


def _psutil_or_unsupported(what: str) -> ModuleType:
    try:
        import psutil
    except ImportError:
        raise HostUnsupportedError(
            f"reading {what} needs /proc (Linux) or psutil; install probed[system]"
        ) from None
    return psutil


# -- disk --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """Space and inode use of the filesystem holding a path.

    ``free`` is what unprivileged users may still write (``f_bavail``), and ``used_ratio``
    follows ``df``: used / (used + available), so space reserved for root counts neither way.
    """

    size: int
    used: int
    free: int
    inodes_total: int
    inodes_used: int

    @property
    def used_ratio(self) -> float:
        """Used share of the space available to users, 0..1 (``df``'s ``Use%``)."""
        usable = self.used + self.free
        return self.used / usable if usable > 0 else 0.0

    @property
    def inodes_used_ratio(self) -> float | None:
        """Used share of inodes, 0..1; ``None`` when the filesystem has no fixed inode table."""
        if self.inodes_total <= 0:
            return None
        return self.inodes_used / self.inodes_total


def read_disk_usage(path: str) -> DiskUsage:
    """``statvfs(path)`` as a :class:`DiskUsage` (psutil where ``statvfs`` does not exist).

    :raises OSError: the path does not exist or cannot be read.
    """
    if hasattr(os, "statvfs"):
        st = os.statvfs(path)
        return DiskUsage(
            size=st.f_blocks * st.f_frsize,
            used=(st.f_blocks - st.f_bfree) * st.f_frsize,
            free=st.f_bavail * st.f_frsize,
            inodes_total=st.f_files,
            inodes_used=st.f_files - st.f_ffree,
        )
    psutil = _psutil_or_unsupported("disk usage")
    usage = psutil.disk_usage(path)
    return DiskUsage(int(usage.total), int(usage.used), int(usage.free), 0, 0)


# -- memory ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    """Physical memory and swap, in bytes."""

    total: int
    available: int
    swap_total: int
    swap_free: int

    @property
    def used_ratio(self) -> float:
        """Share of memory not available to new work, 0..1 (1 - available / total)."""
        return 1.0 - self.available / self.total if self.total > 0 else 0.0

    @property
    def swap_used_ratio(self) -> float:
        """Share of swap in use, 0..1; 0 on a host without swap."""
        if self.swap_total <= 0:
            return 0.0
        return (self.swap_total - self.swap_free) / self.swap_total


def parse_meminfo(text: str) -> MemoryInfo:
    """Parse ``/proc/meminfo`` (values in kB).

    ``MemAvailable`` exists since Linux 3.14; on older kernels it is estimated as
    free + buffers + page cache.

    :raises ValueError: ``MemTotal`` is missing.
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
            fields[key.strip()] = int(parts[0]) * scale
    if "MemTotal" not in fields:
        raise ValueError("/proc/meminfo has no MemTotal line")
    available = fields.get("MemAvailable")
    if available is None:
        available = sum(fields.get(k, 0) for k in ("MemFree", "Buffers", "Cached"))
    return MemoryInfo(
        total=fields["MemTotal"],
        available=available,
        swap_total=fields.get("SwapTotal", 0),
        swap_free=fields.get("SwapFree", 0),
    )


def read_memory() -> MemoryInfo:
    """Memory and swap from ``/proc/meminfo``, or psutil where ``/proc`` is missing."""
    if PROC_MEMINFO.exists():
        with open(PROC_MEMINFO, encoding="ascii") as f:
            return parse_meminfo(f.read())
    return read_memory_psutil()


def read_memory_psutil() -> MemoryInfo:
    """Memory and swap from psutil (the non-Linux path).

    :raises HostUnsupportedError: psutil is not installed.
    """
    psutil = _psutil_or_unsupported("memory statistics")
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return MemoryInfo(int(vm.total), int(vm.available), int(sw.total), int(sw.free))


# -- cpu ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Cumulative CPU time of all cores since boot, in the source's units (ticks or seconds)."""

    busy: float
    total: float

    def utilization_since(self, earlier: CpuTimes) -> float:
        """Busy share of CPU time between ``earlier`` and this sample, 0..1."""
        total = self.total - earlier.total
        if total <= 0:
            return 0.0
        return min(1.0, max(0.0, (self.busy - earlier.busy) / total))


def parse_proc_stat(text: str) -> CpuTimes:
    """Parse the aggregate ``cpu`` line of ``/proc/stat``.

    Columns are user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice.
    Guest time is already counted in user and nice, so it is left out of the total; idle and
    iowait are the idle part.

    :raises ValueError: there is no aggregate ``cpu`` line.
    """
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = [float(v) for v in parts[1:9]]
            total = sum(ticks)
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)
            return CpuTimes(busy=total - idle, total=total)
    raise ValueError("/proc/stat has no aggregate cpu line")


def read_cpu_times() -> CpuTimes:
    """Cumulative CPU times from ``/proc/stat``, or psutil where ``/proc`` is missing."""
    if PROC_STAT.exists():
        with open(PROC_STAT, encoding="ascii") as f:
            return parse_proc_stat(f.read())
    return read_cpu_times_psutil()


def read_cpu_times_psutil() -> CpuTimes:
    """Cumulative CPU times from psutil (the non-Linux path).

    :raises HostUnsupportedError: psutil is not installed.
    """
    psutil = _psutil_or_unsupported("CPU times")
    times = psutil.cpu_times()
    total = float(sum(times))
    idle = float(times.idle) + float(getattr(times, "iowait", 0.0))
    # On Linux psutil exposes guest times, already included in user/nice.
    total -= float(getattr(times, "guest", 0.0)) + float(getattr(times, "guest_nice", 0.0))
    return CpuTimes(busy=total - idle, total=total)


def load_per_core() -> tuple[float, float, float] | None:
    """The 1, 5 and 15 minute load averages divided by the number of CPUs.

    Blocking: glibc reads ``/proc/loadavg``. ``None`` where the platform has no load average.
    """
    try:
        loads = os.getloadavg()
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    return (loads[0] / cores, loads[1] / cores, loads[2] / cores)
