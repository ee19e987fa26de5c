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
from typing import Any

from probed.check import Check, Result
from probed.runner import execute
from probed.spec import CheckSpec
from probed.state import CheckState

__all__ = ["Job", "Scheduler"]

log = logging.getLogger("probed.scheduler")

ResultHandler = Callable[["Job", Result], None]


def phase_fraction(name: str) -> float:
    """Deterministic position of a check in its interval, in [0, 1)."""
    return zlib.crc32(name.encode()) / 2**32


class Job:
    """One scheduled check: its spec, check instance, state and timing."""

    __slots__ = ("check", "due", "queued", "removed", "running", "spec", "state", "task")

    def __init__(self, spec: CheckSpec, check: Check[Any], state: CheckState) -> None:
        self.spec = spec
        self.check = check
        self.state = state
        self.due = 0.0
        self.running = False
        self.queued = False
        self.removed = False
        self.task: asyncio.Task[None] | None = None


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
    ) -> None:
        self._on_result = on_result
        self._max = max(1, max_concurrency)
        self._startup_spread = startup_spread
        self._observe_lag = observe_lag or (lambda _lag: None)
        self._runner = runner
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = 0
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
        """True unless stopped; the timer is armed whenever jobs exist."""
        return not self._stopped

    def overdue(self) -> float:
        """Seconds the earliest due run is late (0 if none): large means the timer is stuck."""
        if self._loop is None or not self._heap:
            return 0.0
        return max(0.0, self._loop.time() - self._heap[0][0])

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
        job.due = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, job))
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
        spread = min(self._startup_spread, job.spec.interval)
        self._push(job, self._loop.time() + phase_fraction(job.spec.name) * spread)

    def remove(self, job: Job) -> None:
        """Stop scheduling ``job``; a run in progress finishes but its result is dropped."""
        job.removed = True

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        self._timer_when = math.inf
        now = loop.time()
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, job = heapq.heappop(heap)
            if job.removed:
                continue
            interval = job.spec.interval
            nxt = due + interval
            if job.state.last is None and job.state.version == 0:
                # After the quick first run, move onto the check's own phase, at least half an
                # interval later so the first two runs are not back to back.
                nxt = self._next_phase(job, due + interval / 2)
            elif nxt <= now:
                nxt += math.ceil((now - nxt) / interval) * interval
                if nxt <= now:
                    nxt += interval
            self._push_quiet(job, nxt)
            if job.running or job.queued:
                job.state.skipped()
                continue
            if self._running >= self._max:
                job.queued = True
                self._waiting.append((job, due))
                continue
            self._start(job, due)
        self._arm()

    def _push_quiet(self, job: Job, due: float) -> None:
        job.due = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, job))

    def _start(self, job: Job, due: float) -> None:
        assert self._loop is not None
        job.running = True
        self._running += 1
        task = self._loop.create_task(self._run(job, due), name=f"check:{job.spec.name}")
        job.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job, due: float) -> None:
        assert self._loop is not None
        self._observe_lag(max(0.0, self._loop.time() - due))
        try:
            result = await self._runner(job.check, job.spec.timeout)
            if not job.removed:
                try:
                    self._on_result(job, result)
                except Exception:  # the documented boundary: a broken handler must not stop runs
                    log.exception("handling the result of check %s failed", job.spec.name)
        finally:
            job.running = False
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
