"""The ``memory`` check type: available memory and swap use.

Reads ``/proc/meminfo`` in a thread (``MemAvailable``, ``MemTotal``, ``SwapTotal``,
``SwapFree``), so no extra is needed on Linux; psutil is used where ``/proc`` is missing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import model_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Result
from probed.checks._host import HostUnsupportedError, read_memory
from probed.checks._reasons import UNSUPPORTED
from probed.options import Percent, Size, format_size
from probed.phase import set_phase
from probed.threads import run_blocking
from probed.thresholds import Limit, check_order, evaluate

__all__ = ["MemoryCheck", "MemoryOptions"]


class MemoryOptions(CheckOptions):
    """Options of ``type: memory``. Percent limits are exceeded when use goes *above* them,
    byte limits when available memory falls *below* them; ``null`` switches a level off."""

    warn_used_percent: Percent | None = 90.0
    fail_used_percent: Percent | None = 95.0
    warn_available_bytes: Size | None = None
    fail_available_bytes: Size | None = None
    warn_swap_used_percent: Percent | None = None
    fail_swap_used_percent: Percent | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MemoryOptions:
        check_order(self, "used_percent")
        check_order(self, "available_bytes", above=False)
        check_order(self, "swap_used_percent")
        return self


class MemoryCheck(Check[MemoryOptions]):
    """Memory use (from available memory) and swap use, held to warn/fail limits."""

    type_name: ClassVar[str] = "memory"
    options_model: ClassVar[type[CheckOptions]] = MemoryOptions
    description: ClassVar[str] = "available memory and swap use (/proc/meminfo)"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef(
            "probed_memory_available_bytes",
            "Memory available for new work without swapping (MemAvailable), in bytes",
        ),
        MetricDef("probed_memory_total_bytes", "Total usable physical memory, in bytes"),
        MetricDef("probed_memory_used_ratio", "1 - available / total, 0..1"),
        MetricDef("probed_swap_used_ratio", "Used share of swap, 0..1 (0 without swap)"),
    )

    async def run(self) -> Result:
        """Read memory statistics in a thread and compare them with the limits."""
        opts = self.options
        set_phase("reading the memory statistics")
        try:
            mem = await run_blocking(read_memory)
        except HostUnsupportedError as exc:
            return Result.unknown(UNSUPPORTED, str(exc))

        values = {
            "probed_memory_available_bytes": float(mem.available),
            "probed_memory_total_bytes": float(mem.total),
            "probed_memory_used_ratio": mem.used_ratio,
            "probed_swap_used_ratio": mem.swap_used_ratio,
        }
        limits = [
            Limit.percent(
                "memory", "used", mem.used_ratio, opts.warn_used_percent, opts.fail_used_percent
            ),
            Limit.size(
                "memory",
                "available",
                mem.available,
                opts.warn_available_bytes,
                opts.fail_available_bytes,
            ),
        ]
        if mem.swap_total > 0:
            swap = f"swap {mem.swap_used_ratio * 100:.1f}% used of {format_size(mem.swap_total)}"
            limits.append(
                Limit.percent(
                    "memory",
                    "of swap used",
                    mem.swap_used_ratio,
                    opts.warn_swap_used_percent,
                    opts.fail_swap_used_percent,
                )
            )
        else:
            swap = "no swap"
        verdict = evaluate(limits)
        if not verdict.message:
            summary = (
                f"memory: {mem.used_ratio * 100:.1f}% used, {format_size(mem.available)} "
                f"available of {format_size(mem.total)}; {swap}"
            )
            return Result.ok(summary, values=values)
        return Result(verdict.status, verdict.reason, verdict.message, values=values)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register ``type: memory``."""
    return [MemoryCheck]
