"""Test-only check types and plugins whose behaviour a test controls by check name."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

from probed import Check, CheckOptions, MetricDef, Result, Sample, Status, hookimpl
from probed.spec import CheckSpec

Mode = Literal["ok", "warn", "fail", "unknown", "raise", "hang", "block", "gate"]

CONTROL: dict[str, Mode] = {}
"""Overrides the configured mode per check name, so a test can flip a check's outcome."""

GATES: dict[str, asyncio.Event] = {}
"""Checks in mode ``gate`` wait on the event of their name (created on demand)."""


class ScriptOptions(CheckOptions):
    """Options of the ``script`` test check."""

    mode: Mode = "ok"
    block: float = 0.0
    secret_echo: str = ""


class ScriptCheck(Check[ScriptOptions]):
    """A check that does what the test says: pass, warn, fail, raise, hang or block the loop."""

    type_name: ClassVar[str] = "script"
    options_model: ClassVar[type[CheckOptions]] = ScriptOptions
    description: ClassVar[str] = "test check with a scripted outcome"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_script_value", "A value reported by the script check."),
        MetricDef("probed_script_labelled", "A labelled value.", labels=("part",)),
    )

    async def run(self) -> Result:
        mode = CONTROL.get(self.spec.name, self.options.mode)
        echo = f" {self.options.secret_echo}" if self.options.secret_echo else ""
        if mode == "ok":
            return Result.ok(
                f"fine{echo}",
                phases={"work": 0.001},
                values={"probed_script_value": 42.0},
                samples=(Sample("probed_script_labelled", 1.5, ("a",)),),
            )
        if mode == "warn":
            return Result.warn("threshold", f"degraded{echo}")
        if mode == "fail":
            return Result.fail("assertion", f"it failed{echo}")
        if mode == "unknown":
            return Result(Status.UNKNOWN, "other", "cannot tell")
        if mode == "raise":
            raise RuntimeError(f"boom{echo}")
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "gate":
            await GATES.setdefault(self.spec.name, asyncio.Event()).wait()
            return Result.ok("gate opened")
        if mode == "block":
            time.sleep(self.options.block)  # deliberately blocks the loop
            return Result.ok("blocked and came back")
        raise AssertionError(mode)


class ScriptPlugin:
    """Registers the ``script`` check type."""

    @hookimpl
    def probed_register_check_types(self) -> list[type[Check[Any]]]:
        return [ScriptCheck]


class Recorder:
    """Records results and transitions through the notification hooks."""

    def __init__(self) -> None:
        self.results: list[tuple[str, Result]] = []
        self.transitions: list[tuple[str, Status, Status]] = []

    @hookimpl
    def probed_check_result(self, spec: CheckSpec, result: Result) -> None:
        self.results.append((spec.name, result))

    @hookimpl
    async def probed_check_state_changed(
        self, spec: CheckSpec, old: Status, new: Status, result: Result
    ) -> None:
        await asyncio.sleep(0)
        self.transitions.append((spec.name, old, new))
