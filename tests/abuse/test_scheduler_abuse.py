"""A scheduler that cannot die (issue 8).

Before: ``interval: .nan`` made the timer callback raise once (``cannot convert float NaN to
integer``) and it was never re-armed: no check ran again and ``/health/live`` stayed 200 for
~72 s. Now an error in one job (its next run time, its run, its result) is caught for that job,
counted in ``probed_scheduler_errors_total`` and logged once per check; the timer is always
re-armed, other checks keep their schedule, and liveness fails at once when the timer is not
armed (and within a few intervals when runs are late).

Faults come in through real plugin check types and hooks, registered like any plugin.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed import Check, CheckOptions, Result, Status, hookimpl
from probed.check import Sample
from probed.health import STUCK_AFTER, STUCK_MIN, liveness_verdict, stuck_after
from probed.scheduler import Job, Scheduler
from probed.spec import CheckSpec
from probed.state import CheckState
from probed.testing import make_spec
from tests.harness import running_daemon, wait_for, write

Fault = Literal["none", "raise", "status", "values", "samples", "exploding"]


class ExplodingPhases(Mapping[str, float]):
    """A mapping that raises when read: the result handler itself fails on it."""

    def __getitem__(self, key: str) -> float:
        raise RuntimeError("phases exploded")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("phases exploded")

    def __len__(self) -> int:
        return 1


class HostileOptions(CheckOptions):
    fault: Fault = "none"


class HostileCheck(Check[HostileOptions]):
    """A check type that gets its result wrong in the way its options say."""

    type_name: ClassVar[str] = "hostile"
    options_model: ClassVar[type[CheckOptions]] = HostileOptions
    description: ClassVar[str] = "test check returning malformed results"

    async def run(self) -> Result:
        fault = self.options.fault
        if fault == "raise":
            raise RuntimeError("run exploded")
        if fault == "status":
            return Result(7, "", "seven")  # type: ignore[arg-type]
        if fault == "values":
            return Result.ok("ok", values={"probed_x": "many"})  # type: ignore[dict-item]
        if fault == "samples":
            return Result.ok("ok", samples=(Sample("probed_x", None),))  # type: ignore[arg-type]
        if fault == "exploding":
            return Result.ok("ok", phases=ExplodingPhases())
        return Result.ok("fine")


class HostilePlugin:
    """Registers the check type; its notification hooks raise for every check."""

    @hookimpl
    def probed_register_check_types(self) -> list[type[Check[Any]]]:
        return [HostileCheck]

    @hookimpl
    def probed_check_result(self, spec: CheckSpec, result: Result) -> None:
        raise RuntimeError(f"result hook exploded for {spec.name}")

    @hookimpl
    def probed_check_state_changed(
        self, spec: CheckSpec, old: Status, new: Status, result: Result
    ) -> None:
        raise RuntimeError(f"state hook exploded for {spec.name}")


def _errors(text: str, stage: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "probed_scheduler_errors_total" and sample.labels == {"stage": stage}:
                return sample.value
    raise AssertionError(f"no probed_scheduler_errors_total{{stage={stage!r}}}")


async def test_faulty_check_types_and_hooks_never_stop_the_schedule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        defaults: {interval: 100ms, timeout: 50ms}
        checks:
          - {name: steady, type: hostile}
          - {name: raising, type: hostile, fault: raise}
          - {name: status, type: hostile, fault: status}
          - {name: values, type: hostile, fault: values}
          - {name: samples, type: hostile, fault: samples}
          - {name: exploding, type: hostile, fault: exploding}
        """,
    )
    with caplog.at_level(logging.DEBUG, logger="probed"):
        async with running_daemon(
            tmp_path, builtins=(), plugins=[("hostile", HostilePlugin())]
        ) as r:
            assert not r.daemon.errors
            scheduler = r.daemon.scheduler
            await wait_for(lambda: scheduler.errors >= 4, 10, "four faults of 'exploding'")
            steady = sum(r.state("steady").runs)
            await r.runs("steady", steady + 5)  # still on its 100 ms schedule
            for name in ("raising", "status", "values", "samples"):
                await r.runs(name, 3)
            status, text, _ = await r.get("/metrics")
            assert status == 200
            assert _errors(text, "result") >= 4 and _errors(text, "schedule") == 0
            assert (await r.get("/health/live"))[0] == 200
            assert (await r.get("/api/v1/checks"))[0] == 200
            for name, reason in (("raising", "exception"), ("status", "exception")):
                last = r.state(name).last
                assert last.status is Status.FAIL and last.reason == reason
            for name in ("values", "samples"):
                assert "returned a malformed result" in r.state(name).last.message
            assert r.state("exploding").last is None  # never folded into the state
    logged = [
        rec
        for rec in caplog.records
        if rec.levelno >= logging.ERROR and "exploding" in rec.getMessage()
    ]
    assert [rec.getMessage() for rec in logged] == ["handling the result of check exploding failed"]
    assert logged[0].exc_info is not None  # the traceback, once


# -- the scheduler alone, with a spec whose interval slipped past validation ------------------


def _job(name: str, interval: float) -> Job:
    spec = make_spec(HostileCheck, name=name, interval=1.0, timeout=0.5)
    spec = dataclasses.replace(spec, interval=interval)  # as if validation had let it through
    return Job(spec, HostileCheck(spec), CheckState(spec))


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e308])
async def test_a_non_finite_interval_is_one_jobs_error_and_the_timer_stays_armed(
    bad: float, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    errors: list[str] = []

    async def runner(check: Check[Any], timeout: float) -> Result:
        ran.append(check.spec.name)
        return Result.ok("fine")

    sched = Scheduler(
        lambda job, result: job.state.record(result),
        runner=runner,
        startup_spread=0.0,
        on_error=errors.append,
    )
    sched.start()
    with caplog.at_level(logging.ERROR, logger="probed.scheduler"):
        sched.add(_job("bad", bad))
        sched.add(_job("good", 0.02))
        await wait_for(lambda: ran.count("good") >= 5, 5, "five runs of the good check")
    assert sched.alive and sched.armed
    assert ran.count("bad") <= 1  # its first run; then it waits RETRY_AFTER, not forever
    if bad != 1e308:  # a huge finite interval is only far away, not an error
        assert errors and set(errors) == {"schedule"}
        assert [r.getMessage() for r in caplog.records] == ["scheduling check bad failed"]
    await sched.stop(1.0)


# -- liveness ---------------------------------------------------------------------------------


async def test_live_fails_at_once_when_the_timer_is_not_armed(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        "checks:\n  - {name: tick, type: hostile, interval: 100ms, timeout: 50ms}\n",
    )
    async with running_daemon(tmp_path, builtins=(), plugins=[("hostile", HostilePlugin())]) as r:
        await r.runs("tick", 2)
        assert (await r.get("/health/live"))[0] == 200
        scheduler = r.daemon.scheduler
        assert scheduler._timer is not None
        scheduler._timer.cancel()  # what a timer callback that died left behind before
        status, body, _ = await r.get("/health/live?verbose")
        assert status == 503 and "timer is not armed" in body


class Beat:
    def __init__(self, late: float, interval: float, alive: bool = True) -> None:
        self.alive, self.late, self.interval = alive, late, interval

    def overdue(self) -> float:
        return self.late

    def earliest_interval(self) -> float:
        return self.interval


def test_liveness_allows_three_intervals_late_between_ten_and_sixty_seconds() -> None:
    assert stuck_after(0.1) == STUCK_MIN == 10.0
    assert stuck_after(5.0) == 15.0
    assert stuck_after(30.0) == STUCK_AFTER == 60.0
    assert stuck_after(math.inf) == STUCK_AFTER
    assert liveness_verdict(Beat(9.9, 1.0)).passed
    assert not liveness_verdict(Beat(10.0, 1.0)).passed
    assert liveness_verdict(Beat(14.0, 5.0)).passed
    late = liveness_verdict(Beat(15.0, 5.0))
    assert not late.passed and late.note == "scheduler stuck: the earliest run is 15s overdue"
    assert not liveness_verdict(Beat(0.0, 1.0, alive=False)).passed
