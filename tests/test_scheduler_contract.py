"""The scheduler's promises, on a real event loop with a runner the test controls.

First run within ``startup_spread``, later runs on the check's wall-clock phase, missed slots
skipped and not caught up, overlap counted as skipped runs, a FIFO beyond the concurrency bound,
removed checks dropping their results, a broken result handler not stopping runs, and ``stop``
with its grace period. The runner here waits on events the test sets, so nothing depends on
how fast the machine is except where a test blocks the loop on purpose to make runs late.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from probed import Result
from probed.check import Check
from probed.scheduler import Job, Scheduler, phase_fraction
from probed.state import CheckState
from probed.testing import make_spec
from tests.fakes import ScriptCheck
from tests.harness import wait_for


@dataclass
class Runs:
    """A runner whose runs last until the test releases them."""

    started: list[tuple[str, float]] = field(default_factory=list)
    results: list[tuple[str, Result]] = field(default_factory=list)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    hold: set[str] = field(default_factory=set)
    lags: list[float] = field(default_factory=list)

    async def runner(self, check: Check[Any], timeout: float) -> Result:
        name = check.spec.name
        self.started.append((name, asyncio.get_running_loop().time()))
        if name in self.hold:
            await self.gates.setdefault(name, asyncio.Event()).wait()
            del self.gates[name]
        return Result.ok(f"run of {name}")

    def on_result(self, job: Job, result: Result) -> None:
        self.results.append((job.spec.name, result))
        job.state.record(result)

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.started if n == name)

    def release(self, name: str) -> None:
        self.gates.setdefault(name, asyncio.Event()).set()


def job(name: str, interval: float = 10.0) -> Job:
    spec = make_spec(ScriptCheck, name=name, interval=interval, timeout=min(interval, 5.0))
    return Job(spec, ScriptCheck(spec), CheckState(spec))


@pytest.fixture
def runs() -> Runs:
    return Runs()


def scheduler(runs: Runs, **kwargs: Any) -> Scheduler:
    return Scheduler(runs.on_result, runner=runs.runner, observe_lag=runs.lags.append, **kwargs)


async def test_a_job_added_before_start_waits_for_start_then_runs_within_the_spread(
    runs: Runs,
) -> None:
    sched = scheduler(runs, startup_spread=0.2)
    early = job("early", interval=0.05)
    sched.add(early)
    loop = asyncio.get_running_loop()
    until = loop.time() + 0.3
    await wait_for(lambda: loop.time() > until, 5, "0.3 s")
    assert runs.started == [] and early.due == 0.0  # not scheduled before start
    started = loop.time()
    sched.start()
    assert started <= early.due <= loop.time() + 0.2 * phase_fraction("early") + 1e-6
    await wait_for(lambda: runs.count("early") == 1, 5, "the first run after start")
    await sched.stop(1.0)


async def test_first_run_is_due_at_the_name_phase_of_the_startup_spread(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=4.0)
    sched.start()
    loop = asyncio.get_running_loop()
    a, short = job("alpha", interval=10.0), job("short", interval=1.0)
    before = loop.time()
    sched.add(a)
    sched.add(short)
    after = loop.time()
    # the spread is capped by the interval: a 1 s check's first run is within 1 s
    for j, spread in ((a, 4.0), (short, 1.0)):
        offset = phase_fraction(j.spec.name) * spread
        assert before + offset <= j.due <= after + offset
    await sched.stop(1.0)


async def test_after_the_quick_first_run_a_check_moves_onto_its_wall_clock_phase(
    runs: Runs,
) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    loop = asyncio.get_running_loop()
    sched.start()
    wall_offset = time.time() - loop.time()
    j = job("phased", interval=4.0)
    sched.add(j)
    first_due = j.due
    await wait_for(lambda: runs.count("phased") == 1, 5, "first run")
    # the next run: on the check's phase of the wall clock, at least half an interval later
    second = j.due
    assert first_due + 2.0 < second <= first_due + 2.0 + 4.0 + 1e-6
    slot = (second + wall_offset - phase_fraction("phased") * 4.0) / 4.0
    assert abs(slot - round(slot)) < 1e-3
    await sched.stop(1.0)


async def test_later_runs_come_exactly_one_interval_after_the_previous_due_time(
    runs: Runs,
) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    j = job("steady", interval=0.05)
    sched.add(j)
    await wait_for(lambda: runs.count("steady") == 1, 5, "first run")
    dues = [j.due]
    while len(dues) < 4:
        await wait_for(lambda: j.due != dues[-1], 5, "the next slot")
        dues.append(j.due)
    gaps = [b - a for a, b in itertools.pairwise(dues[1:])]
    assert gaps == pytest.approx([0.05, 0.05], abs=1e-9)
    assert all(lag >= 0.0 for lag in runs.lags)
    assert min(runs.lags) < 1.0  # the loop is not blocked: runs start about on time
    assert len(runs.lags) == runs.count("steady")
    await sched.stop(1.0)


async def test_missed_slots_are_skipped_not_caught_up(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    loop = asyncio.get_running_loop()
    sched.start()
    j = job("late", interval=0.05)
    sched.add(j)
    await wait_for(lambda: runs.count("late") == 2, 5, "two runs")
    due = j.due
    time.sleep(0.23)  # deliberately block the loop for more than four intervals
    blocked_until = loop.time()
    assert sched.overdue() >= blocked_until - due - 1e-9 > 0.15
    count = runs.count("late")
    await wait_for(lambda: j.due > blocked_until, 5, "the next slot after the stall")
    # one run for the late slot, then the next slot on the grid after now: no burst of runs
    assert runs.count("late") == count + 1
    slots = (j.due - due) / 0.05
    assert abs(slots - round(slots)) < 1e-6
    assert j.due - 0.05 <= blocked_until + 0.05
    assert j.state.skipped_runs == 0
    await sched.stop(1.0)


async def test_a_run_due_while_the_previous_still_runs_is_skipped_and_counted(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    j = job("slow", interval=0.02)
    runs.hold.add("slow")
    sched.add(j)
    await wait_for(lambda: j.running, 5, "the run to start")
    assert sched.running == 1
    await wait_for(lambda: j.state.skipped_runs >= 3, 5, "skipped runs")
    assert runs.count("slow") == 1
    runs.hold.clear()
    runs.release("slow")
    await wait_for(lambda: runs.results, 5, "the held result")
    await wait_for(lambda: runs.count("slow") >= 2, 5, "runs to resume")
    await sched.stop(1.0)


async def test_runs_beyond_the_concurrency_bound_wait_in_due_order(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.2, max_concurrency=0)  # 0 still means 1 at a time
    sched.start()
    names = ["q0", "q1", "q2", "q3"]
    runs.hold.update(names)
    for name in names:
        sched.add(job(name, interval=30.0))
    await wait_for(lambda: sched.queued == 3, 5, "three queued")
    assert sched.running == 1
    first = runs.started[0][0]
    waiting = [n for n in names if n != first]
    order = [first]
    for _ in waiting:
        runs.release(order[-1])
        await wait_for(lambda: len(runs.started) == len(order) + 1, 5, "the next queued run")
        order.append(runs.started[-1][0])
        assert sched.running == 1
    runs.release(order[-1])
    await wait_for(lambda: sched.running == 0, 5, "idle")
    # queued runs start in the order they fell due (the order of their first-run phases)
    assert order == sorted(names, key=phase_fraction)
    assert sched.queued == 0 and sched.running == 0
    await sched.stop(1.0)


async def test_a_removed_job_drops_its_running_result_and_is_not_run_again(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    gone, kept = job("gone", interval=0.02), job("kept", interval=0.02)
    runs.hold.add("gone")
    sched.add(gone)
    sched.add(kept)
    await wait_for(lambda: gone.running, 5, "gone to start")
    sched.remove(gone)
    runs.release("gone")
    await wait_for(lambda: not gone.running, 5, "gone to finish")
    before = runs.count("kept")
    await wait_for(lambda: runs.count("kept") >= before + 3, 5, "kept to keep running")
    assert runs.count("gone") == 1
    assert all(name == "kept" for name, _ in runs.results)
    await sched.stop(1.0)


async def test_a_result_handler_that_raises_is_logged_and_runs_go_on(
    runs: Runs, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken(job: Job, result: Result) -> None:
        calls.append(job.spec.name)
        raise ValueError("handler bug")

    sched = Scheduler(broken, runner=runs.runner, startup_spread=0.0)
    sched.start()
    sched.add(job("b", interval=0.02))
    with caplog.at_level(logging.ERROR, logger="probed.scheduler"):
        await wait_for(lambda: len(calls) >= 3, 5, "three results handled")
    assert sched.running == 0 or sched.running == 1
    records = [r for r in caplog.records if r.name == "probed.scheduler"]
    assert records and records[0].getMessage() == "handling the result of check b failed"
    assert records[0].exc_info is not None
    await sched.stop(1.0)


async def test_stop_waits_for_running_checks_within_the_grace_period(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    runs.hold.add("finishing")
    sched.add(job("finishing", interval=30.0))
    await wait_for(lambda: sched.running == 1, 5, "the run to start")
    assert sched.alive
    stopping = asyncio.ensure_future(sched.stop(30.0))
    await asyncio.sleep(0)
    assert not sched.alive and not stopping.done()
    runs.release("finishing")
    await asyncio.wait_for(stopping, 5)
    assert [name for name, _ in runs.results] == ["finishing"]
    assert sched.running == 0


async def test_stop_cancels_runs_still_going_after_the_grace_period(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    runs.hold.add("stuck")
    j = job("stuck", interval=30.0)
    sched.add(j)
    await wait_for(lambda: sched.running == 1, 5, "the run to start")
    task = j.task
    assert task is not None and task.get_name() == "check:stuck"  # named for stack dumps
    await asyncio.wait_for(sched.stop(0.01), 5)
    assert task.cancelled()
    assert runs.results == [] and sched.running == 0 and j.task is None


async def test_nothing_runs_after_stop(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    j = job("s", interval=0.02)
    sched.add(j)
    await wait_for(lambda: runs.count("s") >= 2, 5, "two runs")
    await sched.stop(1.0)
    count = runs.count("s")
    marker = asyncio.get_running_loop().time()
    await wait_for(lambda: asyncio.get_running_loop().time() > marker + 0.1, 5, "0.1 s to pass")
    assert runs.count("s") == count
    assert sched.overdue() >= 0.0


async def test_overdue_is_zero_without_jobs_and_before_start(runs: Runs) -> None:
    sched = scheduler(runs)
    assert sched.overdue() == 0.0
    sched.start()
    assert sched.overdue() == 0.0 and sched.running == 0
    sched.add(job("later", interval=60.0))
    assert sched.overdue() == 0.0  # due in the future
    await sched.stop(1.0)


def test_phase_fraction_is_the_crc32_of_the_name_scaled_into_zero_one() -> None:
    import zlib

    for name in ("a", "payments-api", "é"):
        assert phase_fraction(name) == zlib.crc32(name.encode()) / 2**32
        assert 0.0 <= phase_fraction(name) < 1.0
    assert not math.isclose(phase_fraction("a"), phase_fraction("b"))


def _names_by_phase() -> tuple[str, str]:
    """A name late in the interval and one early in it."""
    names = sorted((f"n{i}" for i in range(50)), key=phase_fraction)
    assert phase_fraction(names[0]) < 0.1 and phase_fraction(names[-1]) > 0.9
    return names[-1], names[0]


async def test_a_job_due_before_the_armed_timer_runs_at_its_own_time(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=30.0)
    sched.start()
    late, early = _names_by_phase()
    sched.add(job(late, interval=60.0))  # first run ~27 s away: the timer is armed for it
    sched.add(job(early, interval=60.0))  # first run within 3 s: the timer must be re-armed
    await wait_for(lambda: runs.count(early) == 1, 10, "the early job's first run")
    assert runs.count(late) == 0
    await sched.stop(1.0)


async def test_a_job_due_while_it_waits_in_the_queue_is_counted_as_skipped(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0, max_concurrency=1)
    sched.start()
    runs.hold.add("holder")
    holder, waiter = job("holder", interval=30.0), job("waiter", interval=0.02)
    sched.add(holder)
    await wait_for(lambda: holder.running, 5, "holder to run")
    sched.add(waiter)
    await wait_for(lambda: waiter.queued, 5, "waiter to queue")
    await wait_for(lambda: waiter.state.skipped_runs >= 2, 5, "skips while queued")
    assert sched.queued == 1  # queued once, not once per missed slot
    runs.release("holder")
    # once started, the waiter runs on its interval again: it is no longer "queued"
    await wait_for(lambda: runs.count("waiter") >= 3, 5, "the waiter's runs")
    assert not waiter.queued
    await sched.stop(1.0)


async def test_finished_runs_leave_no_task_behind(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    j = job("t", interval=0.02)
    sched.add(j)
    await wait_for(lambda: runs.count("t") >= 3, 5, "three runs")
    await sched.stop(1.0)
    assert sched._tasks == set()
    assert j.task is None and not j.running


def test_a_new_job_is_idle_and_has_no_task() -> None:
    j = job("fresh")
    assert (j.running, j.queued, j.removed, j.task) == (False, False, False, None)


async def test_an_idle_scheduler_sleeps_until_the_next_due_run(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=30.0)
    sched.start()
    late, _ = _names_by_phase()
    sched.add(job(late, interval=60.0))  # due in about 27 s
    loop = asyncio.get_running_loop()
    cpu, until = time.process_time(), loop.time() + 0.5
    await wait_for(lambda: loop.time() > until, 5, "half a second")
    # a timer armed for the wrong moment would fire again and again: a busy loop
    assert time.process_time() - cpu < 0.25
    assert runs.started == []
    await sched.stop(1.0)


async def test_a_job_added_after_stop_never_runs(runs: Runs) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    await sched.stop(1.0)
    sched.add(job("late-comer", interval=0.02))
    loop = asyncio.get_running_loop()
    until = loop.time() + 0.2
    await wait_for(lambda: loop.time() > until, 5, "0.2 s")
    assert runs.started == []


async def test_every_check_waits_at_least_half_an_interval_after_its_quick_first_run(
    runs: Runs,
) -> None:
    sched = scheduler(runs, startup_spread=0.0)
    sched.start()
    jobs = [job(f"spread-{i}", interval=4.0) for i in range(24)]
    firsts = {}
    for j in jobs:
        sched.add(j)
        firsts[j.spec.name] = j.due
    await wait_for(lambda: len(runs.started) == len(jobs), 5, "every first run")
    # the second run sits on the check's phase, in (first + 2 s, first + 6 s]: with 24 names
    # the phases cover the interval, so a shorter minimum gap would show on some of them
    gaps = [j.due - firsts[j.spec.name] for j in jobs]
    assert all(2.0 < gap <= 6.0 + 1e-6 for gap in gaps), gaps
    await sched.stop(1.0)
