"""``probed gate``: run checks repeatedly for a window and pass or fail on the failure ratio.

Made for deploy pipelines: after switching traffic to a new version, ``probed gate --for 5m
--max-failure-ratio 0.01`` watches the service and exits non-zero as soon as the window can no
longer pass, so the pipeline rolls back without waiting for the rest of the window.

Rounds start at fixed offsets from the start, ``0, every, 2*every, ...``, and the last one at
the end of the window itself (``--for 20s --every 7s``: 0, 7, 14 and 20 s), so a gate that
passes has watched for the whole window; only a failing gate ends early.

The configuration is read once, when the gate starts (the checks a deploy is judged by do not
change during its window), and plugins see the same lifecycle as in ``probed run`` and
``probed once`` (:func:`probed.once.checks_session`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from probed.check import Result, Status
from probed.once import checks_session, select
from probed.plugins import ProbedPluginManager
from probed.settings import Settings
from probed.spec import CheckSpec

__all__ = ["GateReport", "round_line", "round_offsets", "run_gate", "verdict"]


@dataclass
class GateReport:
    """What a gate window saw."""

    rounds: int = 0
    runs: int = 0
    failures: int = 0
    planned_runs: int = 0
    by_check: dict[str, list[int]] = field(default_factory=dict)  # name -> [runs, failures]
    aborted: bool = False
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # seconds from the first round's start to the end of the last

    @property
    def ratio(self) -> float:
        """Failed runs over runs so far."""
        return self.failures / self.runs if self.runs else 0.0


async def run_gate(
    settings: Settings,
    pm: ProbedPluginManager,
    names: Sequence[str],
    *,
    window: float,
    every: float,
    max_failure_ratio: float,
    extra_files: Sequence[Path] = (),
    on_round: Callable[[GateReport, list[tuple[str, Status, str]]], None] | None = None,
    readiness_only: bool = False,
) -> tuple[int, GateReport]:
    """Run the checks every ``every`` seconds for ``window`` seconds.

    A run counts as failed when its status is ``fail`` or ``unknown``. The gate stops early once
    the failures exceed what ``max_failure_ratio`` allows over the whole planned window;
    otherwise its last round starts ``window`` seconds after its first.

    :return: exit code (0 passed, 2 failed, 3 configuration problem) and the report.
    """
    report = GateReport()
    async with checks_session(settings, pm, extra_files) as session:
        selection = select(session, names, readiness_only=readiness_only)
        report.errors = selection.messages
        if not selection.specs or (names and len(selection.specs) < len(set(names))):
            report.errors = selection.messages or ["no checks selected"]
            return 3, report
        code = await _watch(
            session.run, selection.specs, report, window, every, max_failure_ratio, on_round
        )
    return code, report


async def _watch(
    run: Callable[[Sequence[CheckSpec]], Awaitable[list[tuple[CheckSpec, Result]]]],
    specs: Sequence[CheckSpec],
    report: GateReport,
    window: float,
    every: float,
    max_failure_ratio: float,
    on_round: Callable[[GateReport, list[tuple[str, Status, str]]], None] | None,
) -> int:
    offsets = round_offsets(window, every)
    report.planned_runs = len(offsets) * len(specs)
    start = time.monotonic()
    for index, offset in enumerate(offsets):
        delay = start + offset - time.monotonic()
        if delay > 0:  # a round that ran late starts the next one at once
            await asyncio.sleep(delay)
        outcomes = await run(specs)
        report.rounds += 1
        line = []
        for spec, result in outcomes:
            failed = not result.status.passed
            counts = report.by_check.setdefault(spec.name, [0, 0])
            counts[0] += 1
            report.runs += 1
            if failed:
                counts[1] += 1
                report.failures += 1
            line.append((spec.name, result.status, result.message))
        report.elapsed = time.monotonic() - start
        if on_round is not None:
            on_round(report, line)
        allowed = max_failure_ratio * report.planned_runs
        if report.failures > allowed:
            report.aborted = index < len(offsets) - 1
            return 2
    return 0 if report.ratio <= max_failure_ratio else 2


def round_offsets(window: float, every: float) -> list[float]:
    """When each round starts, in seconds from the first: every ``every`` seconds, and a last
    round at ``window`` itself (``round_offsets(20, 7)`` is ``[0, 7, 14, 20]``)."""
    # A hair below the quotient, so 0.6/0.2 = 2.9999999999999996 still means 3 steps.
    steps = max(1, math.ceil(window / every - 1e-9))
    return [min(k * every, window) for k in range(steps + 1)]


def round_line(report: GateReport, line: Sequence[tuple[str, Status, str]]) -> str:
    """What a round saw: ``round 2: 3/4 passed, 1/8 failed so far (12.50%)`` and a line per
    failed run."""
    bad = [
        f"{name} {status.label}: {message}" for name, status, message in line if not status.passed
    ]
    return (
        f"round {report.rounds}: {len(line) - len(bad)}/{len(line)} passed, "
        f"{report.failures}/{report.runs} failed so far ({report.ratio:.2%})"
        + "".join(f"\n  {b}" for b in bad)
    )


def verdict(code: int, report: GateReport, max_failure_ratio: float) -> str:
    """The last line: passed or FAILED (early), failed runs over runs, rounds and time."""
    outcome = "passed" if code == 0 else "FAILED"
    if report.aborted:
        outcome += " early: the failure budget is spent"
    return (
        f"gate {outcome}: {report.failures}/{report.runs} runs failed ({report.ratio:.2%}, "
        f"max {max_failure_ratio:.2%}) over {report.rounds} round(s) in {report.elapsed:.1f}s"
    )
