"""The ``cpu`` check type: CPU utilisation over a window and load average per core.

Utilisation comes from two reads of ``/proc/stat`` taken ``window`` apart (the wait between
them is an ``asyncio.sleep``, so the loop keeps running); load per core is ``os.getloadavg()``
divided by ``os.cpu_count()``. Both reads run in a thread. No extra is needed on Linux; psutil
is used where ``/proc`` is missing.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, model_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Result, Sample
from probed.checks._host import HostUnsupportedError, load_per_core, read_cpu_times
from probed.checks._reasons import CONFIG, UNSUPPORTED
from probed.options import Duration, Percent, format_duration
from probed.threads import run_blocking
from probed.thresholds import Limit, WarnFail, check_order, evaluate

__all__ = ["CpuCheck", "CpuOptions"]

LOAD_WINDOWS: Final = ("1m", "5m", "15m")


class CpuOptions(CheckOptions):
    """Options of ``type: cpu``. Limits are exceeded when a value goes *above* them;
    ``null`` switches a level off."""

    window: Duration = Field(default=1.0, le=60.0)
    warn_used_percent: Percent | None = 90.0
    fail_used_percent: Percent | None = None
    warn_load_per_core: float | None = Field(default=2.0, ge=0)
    fail_load_per_core: float | None = Field(default=4.0, ge=0)
    load_window: Literal["1m", "5m", "15m"] = "5m"

    @model_validator(mode="after")
    def _ordered(self) -> CpuOptions:
        check_order(self, "used_percent")
        check_order(self, "load_per_core")
        return self


def _format_load_limit(value: float) -> str:
    return f"{value:g}"


class CpuCheck(Check[CpuOptions]):
    """CPU utilisation over ``window`` and load per core, held to warn/fail limits."""

    type_name: ClassVar[str] = "cpu"
    options_model: ClassVar[type[CheckOptions]] = CpuOptions
    description: ClassVar[str] = "CPU utilisation over a window and load average per core"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef(
            "probed_cpu_utilization_ratio",
            "Busy share of all CPUs over the check's window, 0..1",
        ),
        MetricDef(
            "probed_cpu_load_per_core",
            "Load average divided by the number of CPUs",
            labels=("window",),
        ),
    )

    @classmethod
    def timing_problem(cls, options: Any, interval: float, timeout: float) -> str | None:
        """The measurement window must end before the check's timeout."""
        if options.window >= timeout:
            return (
                f"cpu window {format_duration(options.window)} is not shorter than the check "
                f"timeout {format_duration(timeout)}; lower window or raise timeout"
            )
        return None

    async def run(self) -> Result:
        """Sample CPU times twice ``window`` apart, read the load, compare with the limits."""
        opts = self.options
        if opts.window >= self.spec.timeout:
            return Result.fail(
                CONFIG,
                f"cpu window {format_duration(opts.window)} is not shorter than the check "
                f"timeout {format_duration(self.spec.timeout)}; lower window or raise timeout",
            )
        try:
            before = await run_blocking(read_cpu_times)
            # The measurement window: the loop stays free while the CPUs do their work.
            await asyncio.sleep(opts.window)
            after = await run_blocking(read_cpu_times)
        except HostUnsupportedError as exc:
            return Result.unknown(UNSUPPORTED, str(exc))
        loads = await run_blocking(load_per_core)

        utilization = after.utilization_since(before)
        values = {"probed_cpu_utilization_ratio": utilization}
        limits: list[Limit] = [
            Limit.percent(
                "cpu",
                f"used over {format_duration(opts.window)}",
                utilization,
                opts.warn_used_percent,
                opts.fail_used_percent,
            )
        ]
        summary = f"cpu: {utilization * 100:.1f}% used over {format_duration(opts.window)}"
        samples: tuple[Sample, ...] = ()
        if loads is not None:
            samples = tuple(
                Sample("probed_cpu_load_per_core", load, (window,))
                for window, load in zip(LOAD_WINDOWS, loads, strict=True)
            )
            load = loads[LOAD_WINDOWS.index(opts.load_window)]
            limits.append(
                Limit(
                    f"cpu: {load:.2f} load per core ({opts.load_window})",
                    load,
                    WarnFail(opts.warn_load_per_core, opts.fail_load_per_core),
                    _format_load_limit,
                )
            )
            summary += f", load per core {loads[0]:.2f} {loads[1]:.2f} {loads[2]:.2f}"

        verdict = evaluate(limits)
        if not verdict.message:
            return Result.ok(summary, values=values, samples=samples)
        return Result(
            verdict.status, verdict.reason, verdict.message, values=values, samples=samples
        )


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register ``type: cpu``."""
    return [CpuCheck]
