"""When checks run: one timer heap for all checks, deterministic spread, a concurrency bound.

There is no task per check. A single heap orders jobs by due time and one ``call_at`` timer
handle wakes the scheduler for the earliest; a task exists only while a check is running.
That keeps 50,000 idle checks at a few hundred bytes each.

- **Spread.** Each check has a phase in its interval derived from a hash of its name, aligned
  to the wall clock, so load is smooth and restarts land on the same phases instead of
  synchronising. The first run happens sooner, within ``startup_spread`` seconds, so
  ``/health/startup`` opens quickly; later runs sit on the check's phase.
- **No overlap.** A run that is due while the previous one is still going is skipped and
  counted (``probed_check_skipped_runs_total``). Missed slots are not caught up.
- **Concurrency.** At most ``max_concurrency`` runs at once; due runs beyond that wait in a
  FIFO and their wait shows in the lag histogram.
- **Cannot die.** An error while scheduling, starting or handling one job (a next run time
  that is not finite, a result handler that raises) is caught for that job, counted
  (``on_error``, ``probed_scheduler_errors_total``) and logged once per check and stage; the
  job is tried again :data:`RETRY_AFTER` seconds later and the timer is always re-armed, so
  other checks keep their schedule.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final

from probed.check import Check, Result
from probed.runner import execute
from probed.spec import CheckSpec
from probed.state import CheckState

__all__ = ["Job", "Scheduler"]

log = logging.getLogger("probed.scheduler")

ResultHandler = Callable[["Job", Result], None]

RETRY_AFTER: Final = 60.0
"""Seconds before a job whose next run time could not be computed is tried again."""


def phase_fraction(name: str) -> float:
    """Deterministic position of a check in its interval, in [0, 1)."""
    return zlib.crc32(name.encode()) / 2**32


_QUEUED: Final = 1
_REMOVED: Final = 2


class Job:
    """One scheduled check: its check instance, state (and through it, its spec) and timing.

    Small, as every configured check has one: five slots; ``running``, ``queued`` and
    ``removed`` are read from ``task`` and one small int of flags. In the scheduler's heap a
    job is ordered by its due time, then (equal due times: rare, two checks on the same phase)
    by check name.
    """

    __slots__ = ("_flags", "check", "due", "state", "task")

    def __init__(self, spec: CheckSpec, check: Check[Any], state: CheckState) -> None:
        if state.spec is not spec and state.spec != spec:
            raise ValueError(f"the state of check {state.spec.name} is not for {spec.name}")
        self.check = check
        self.state = state
        self.due = 0.0
        self._flags = 0
        self.task: asyncio.Task[None] | None = None
        """The run in progress, if any."""

    @property
    def spec(self) -> CheckSpec:
        """The check's spec (its state's)."""
        return self.state.spec

    @property
    def running(self) -> bool:
        """A run is in progress."""
        return self.task is not None

    @property
    def queued(self) -> bool:
        """A due run waits for a concurrency slot."""
        return self._flags & _QUEUED != 0

    @queued.setter
    def queued(self, value: bool) -> None:
        self._flags = self._flags | _QUEUED if value else self._flags & ~_QUEUED

    @property
    def removed(self) -> bool:
        """No longer scheduled (a run in progress finishes; its result is dropped)."""
        return self._flags & _REMOVED != 0

    @removed.setter
    def removed(self, value: bool) -> None:
        self._flags = self._flags | _REMOVED if value else self._flags & ~_REMOVED

    def __lt__(self, other: Job) -> bool:
        # Only for equal due times (the heap compares (due, job) tuples): by name, stable.
        return self.state.spec.name < other.state.spec.name


class Scheduler:
    """Runs jobs on their intervals. Call :meth:`add`, :meth:`remove`, :meth:`stop`."""

    def __init__(
        self,
        on_result: ResultHandler,
        *,
        max_concurrency: int = 512,
        startup_spread: float = 2.0,
        observe_lag: Callable[[float], None] | None = None,
        runner: Callable[[Check[Any], float], Awaitable[Result]] = execute,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._on_result = on_result
        self._on_error = on_error or (lambda _stage: None)
        self._reported: set[tuple[str, str]] = set()
        self.errors = 0
        self._max = max(1, max_concurrency)
        self._startup_spread = startup_spread
        self._observe_lag = observe_lag or (lambda _lag: None)
        self._runner = runner
        self._heap: list[tuple[float, Job]] = []
        self._waiting: deque[tuple[Job, float]] = deque()
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wall_offset = 0.0
        self._stopped = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._before_start: list[Job] = []

    @property
    def running(self) -> int:
        """Runs in progress."""
        return self._running

    @property
    def queued(self) -> int:
        """Due runs waiting for a concurrency slot."""
        return len(self._waiting)

    @property
    def alive(self) -> bool:
        """True unless stopped or the timer is not armed for the earliest due run."""
        return not self._stopped and self.armed

    @property
    def armed(self) -> bool:
        """True when a timer will fire for the earliest due run (or there is nothing due)."""
        if self._loop is None or not self._heap:
            return True
        timer = self._timer
        return timer is not None and not timer.cancelled() and self._timer_when <= self._heap[0][0]

    def overdue(self) -> float:
        """Seconds the earliest due run is late (0 if none): large means the timer is stuck."""
        if self._loop is None or not self._heap:
            return 0.0
        return max(0.0, self._loop.time() - self._heap[0][0])

    def earliest_interval(self) -> float:
        """The interval of the check whose run is due first (infinite when none is)."""
        if not self._heap:
            return math.inf
        return self._heap[0][1].state.spec.interval

    def _fault(self, job: Job, stage: str, what: str) -> None:
        """Count an error of one job; log it with its traceback once per check and stage."""
        self.errors += 1
        try:
            self._on_error(stage)
        except Exception:  # a broken counter must not make the scheduler's error handling fail
            log.debug("counting a scheduler error failed", exc_info=True)
        key = (job.spec.name, stage)
        if key in self._reported:
            log.debug("%s (again)", what, exc_info=True)
            return
        self._reported.add(key)
        log.error(
            "%s",
            what,
            exc_info=True,
            extra={"fields": {"event": "scheduler_error", "check": job.spec.name, "stage": stage}},
        )

    def start(self) -> None:
        """Bind to the running loop and start running. Jobs added before are scheduled now, so
        a configuration can be loaded (and plugins started) before the first run."""
        self._loop = asyncio.get_running_loop()
        self._wall_offset = time.time() - self._loop.time()
        waiting, self._before_start = self._before_start, []
        for job in waiting:
            self.add(job)
        self._arm()

    def _push(self, job: Job, due: float) -> None:
        self._push_quiet(job, due)
        if due < self._timer_when:
            self._arm()

    def _arm(self) -> None:
        if self._loop is None or self._stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_when = math.inf
        if self._heap:
            self._timer_when = self._heap[0][0]
            self._timer = self._loop.call_at(self._timer_when, self._tick)

    def _next_phase(self, job: Job, after: float) -> float:
        """The first loop time after ``after`` on the job's wall-clock phase."""
        interval = job.spec.interval
        offset = phase_fraction(job.spec.name) * interval
        wall = after + self._wall_offset
        slots = math.floor((wall - offset) / interval) + 1
        return slots * interval + offset - self._wall_offset

    def add(self, job: Job) -> None:
        """Schedule a new job; its first run comes within ``startup_spread`` (of :meth:`start`,
        for a job added before it)."""
        if self._loop is None:
            self._before_start.append(job)
            return
        now = self._loop.time()
        try:
            spread = min(self._startup_spread, job.spec.interval)
            self._push(job, now + phase_fraction(job.spec.name) * spread)
        except Exception:
            self._fault(job, "schedule", f"scheduling check {job.spec.name} failed")
            self._push(job, now + RETRY_AFTER)

    def remove(self, job: Job) -> None:
        """Stop scheduling ``job``; a run in progress finishes but its result is dropped."""
        job.removed = True
        name = job.spec.name
        self._reported -= {key for key in self._reported if key[0] == name}

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        self._timer_when = math.inf
        try:
            now = loop.time()
            heap = self._heap
            while heap and heap[0][0] <= now:
                due, job = heapq.heappop(heap)
                if job._flags & _REMOVED:
                    continue
                pushed = False
                try:
                    self._push_quiet(job, self._next_due(job, due, now))
                    pushed = True
                    self._due(job, due)
                except Exception:  # one job's error: counted, logged once, the others go on
                    self._fault(job, "schedule", f"scheduling check {job.spec.name} failed")
                    if not pushed:
                        self._push_quiet(job, now + RETRY_AFTER)
        finally:
            self._arm()

    def _next_due(self, job: Job, due: float, now: float) -> float:
        interval = job.state.spec.interval
        nxt = due + interval
        if job.state.last is None and job.state.version == 0:
            # After the quick first run, move onto the check's own phase, at least half an
            # interval later so the first two runs are not back to back.
            nxt = self._next_phase(job, due + interval / 2)
        elif nxt <= now:
            nxt += math.ceil((now - nxt) / interval) * interval
            if nxt <= now:
                nxt += interval
        return nxt

    def _due(self, job: Job, due: float) -> None:
        """Start a due job, queue it for a free slot, or count it as skipped."""
        if job.task is not None or job._flags & _QUEUED:  # running or queued
            job.state.skipped()
        elif self._running >= self._max:
            job.queued = True
            self._waiting.append((job, due))
        else:
            self._start(job, due)

    def _push_quiet(self, job: Job, due: float) -> None:
        if not math.isfinite(due):  # a NaN or infinity would stop the heap (and the timer)
            raise ValueError(f"next run time is not finite (interval {job.spec.interval!r}s)")
        job.due = due
        heapq.heappush(self._heap, (due, job))

    def _start(self, job: Job, due: float) -> None:
        assert self._loop is not None
        self._running += 1
        task = self._loop.create_task(self._run(job, due), name=f"check:{job.state.spec.name}")
        job.task = task  # running until _run clears it
        self._tasks.add(task)  # until _run ends (no done callback: one loop turn less a run)

    async def _run(self, job: Job, due: float) -> None:
        assert self._loop is not None
        try:
            self._observe_lag(max(0.0, self._loop.time() - due))
            result = await self._runner(job.check, job.state.spec.timeout)
            if not job._flags & _REMOVED:
                try:
                    self._on_result(job, result)
                except Exception:  # the documented boundary: a broken handler must not stop runs
                    self._fault(
                        job, "result", f"handling the result of check {job.spec.name} failed"
                    )
        except Exception:  # the runner never raises; the lag observer might
            self._fault(job, "run", f"running check {job.spec.name} failed")
        finally:
            if job.task is not None:
                self._tasks.discard(job.task)
            job.task = None
            self._running -= 1
            self._start_waiting()

    def _start_waiting(self) -> None:
        while self._waiting and self._running < self._max and not self._stopped:
            job, due = self._waiting.popleft()
            job.queued = False
            if not job.removed:
                self._start(job, due)

    async def stop(self, grace: float) -> None:
        """Stop scheduling; wait up to ``grace`` seconds for running checks, then cancel them."""
        self._stopped = True
        self._before_start.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting.clear()
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
