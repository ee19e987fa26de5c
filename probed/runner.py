"""Running one check once: the daemon-owned boundary around plugin code.

The daemon, not the plugin, owns timing, timeouts and exceptions. :func:`execute` never raises
(except ``CancelledError`` when the daemon itself cancels): a plugin that raises becomes a
``fail`` with reason ``exception``, one that hangs is cancelled at its timeout and becomes a
``fail`` with reason ``timeout``, and one that blocked the event loop past its timeout is
reported as a ``timeout`` that says so.

A check may declare what it is doing with :func:`probed.phase.set_phase` /
:func:`probed.phase.phase`; a timeout's message then names it: ``no answer within the timeout
of 5s while connecting``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from typing import Any, Final

from probed.check import Check, Reason, Result, Status, clean_reason
from probed.phase import CURRENT_PHASE, RunPhase
from probed.threads import run_blocking

__all__ = ["execute"]

log = logging.getLogger("probed.runner")

_MAX_MESSAGE: Final = 500
SETUP_TIMEOUT: Final = 10.0
"""Seconds a check's one-time ``setup()`` may take (at least its own timeout): importing a
driver or loading a CA bundle should not count against the first probe's timeout."""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


async def _setup(check: Check[Any], budget: float) -> Result | None:
    """Run ``check.setup()`` once; a failure is the run's result and setup is retried next run."""
    start = time.perf_counter()
    try:
        async with asyncio.timeout(budget):
            await check.setup()
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        message = f"setup did not finish within {budget:g}s"
    except Exception as exc:
        log.debug("setup of check %s raised", check.spec.name, exc_info=True)
        message = f"setup failed: {_describe(exc)}"
    else:
        check._probed_ready = True
        return None
    reason = Reason.TIMEOUT if message.startswith("setup did not") else Reason.EXCEPTION
    return Result.fail(reason, message, duration=time.perf_counter() - start, timestamp=time.time())


def _run_in_thread(check: Check[Any]) -> Result:
    """A ``blocking = True`` check's ``run()``, on a fresh event loop in a worker thread."""
    return asyncio.run(check.run())


class _Deadline:
    """A run's timeout, with :func:`asyncio.timeout`'s semantics at a fraction of its cost.

    Every run of every check has one, so it is a plain object, made and settled without the
    two coroutines (``__aenter__``, ``__aexit__``) of an ``asyncio.timeout`` block and without
    a timer of its own (:class:`_Deadlines` keeps one for all). As there: at ``timeout`` the
    task is cancelled, and the ``CancelledError`` this caused (no other cancellation requested
    meanwhile) becomes the run's timeout; any other is passed on.
    """

    __slots__ = ("_cancelling", "expired", "task", "when")

    def __init__(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a check runs inside a task")
        self.task: asyncio.Task[Any] | None = task
        self._cancelling = task.cancelling()
        self.expired = False
        self.when = loop.time() + timeout
        deadlines = getattr(loop, "_probed_deadlines", None)
        if deadlines is None:
            deadlines = _Deadlines(loop)
            with contextlib.suppress(AttributeError):  # else this run's own (a timer per run)
                loop._probed_deadlines = deadlines  # type: ignore[attr-defined]
        deadlines.add(self, timeout)

    def expire(self) -> None:
        """The timeout: cancel the run."""
        assert self.task is not None
        self.expired = True
        self.task.cancel()

    def settle(self, exc: BaseException | None) -> bool:
        """The run ended (``exc``: how); True when ``exc`` is the cancellation the timeout
        caused. The task is let go of (its entry waits for the timer to pass it)."""
        task, self.task = self.task, None
        if not self.expired or task is None:
            return False
        # Take back the cancellation requested at the timeout (as asyncio.timeout does).
        return task.uncancel() <= self._cancelling and type(exc) is asyncio.CancelledError


class _Deadlines:
    """The deadlines of the runs on one event loop, behind a single timer.

    Runs with the same timeout reach their deadlines in the order they started, so each
    timeout's deadlines wait in a FIFO. A run that ends only lets go of its task (no timer to
    cancel); the timer, armed for the earliest deadline of a run still going, drops the
    entries of ended runs as it passes them and cancels the runs whose deadline came. With
    runs much shorter than their timeout it fires about once per timeout, where a timer per
    run was made and cancelled for every run.
    """

    __slots__ = ("_loop", "_queues", "_timer", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[float, deque[_Deadline]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._when = math.inf

    def add(self, deadline: _Deadline, timeout: float) -> None:
        """Watch ``deadline`` (``timeout`` seconds from now)."""
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        queue.append(deadline)
        if deadline.when < self._when:
            if self._timer is not None:
                self._timer.cancel()
            self._arm(deadline.when)

    def _arm(self, when: float) -> None:
        self._when = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        # Every deadline up to the time this timer was armed for has come, as with a timer of
        # its own (the loop may run a timer a hair before loop.time() reaches it).
        limit = max(self._when, self._loop.time())
        self._timer = None
        self._when = math.inf
        earliest = math.inf
        for timeout, queue in list(self._queues.items()):
            while queue:
                deadline = queue[0]
                if deadline.task is not None and deadline.when > limit:
                    earliest = min(earliest, deadline.when)
                    break
                queue.popleft()
                if deadline.task is not None:
                    deadline.expire()
            if not queue:
                del self._queues[timeout]
        if earliest < math.inf:
            self._arm(earliest)


async def execute(check: Check[Any], timeout: float) -> Result:
    """Run ``check`` once under ``timeout`` seconds and return its result with timing filled.

    The check's :meth:`~probed.Check.setup` runs once before its first run, under its own
    budget (:data:`SETUP_TIMEOUT`, or the check's timeout if longer), not counted in the run.

    :param check: the check instance.
    :param timeout: seconds before the run is cancelled.
    :return: the plugin's result, or a ``fail`` describing the timeout or exception.
    """
    if not getattr(check, "_probed_ready", False):
        failed = await _setup(check, max(timeout, SETUP_TIMEOUT))
        if failed is not None:
            return failed
    start = time.perf_counter()
    phase = RunPhase(check.spec.type)
    token = CURRENT_PHASE.set(phase)
    try:
        deadline = _Deadline(timeout)
        try:
            if check.blocking:  # run() on its own loop in the type's bounded thread pool
                result = await run_blocking(_run_in_thread, check)
            else:
                result = await check.run()
        except BaseException as exc:
            if deadline.settle(exc):
                raise TimeoutError from exc
            raise
        deadline.settle(None)
        if not isinstance(result, Result):
            result = Result.fail(
                Reason.EXCEPTION,
                f"check type {check.spec.type!r} returned {type(result).__name__}, not a Result",
            )
    except TimeoutError:
        during = f" while {phase.name}" if phase.name else ""
        result = Result.fail(
            Reason.TIMEOUT, f"no answer within the timeout of {timeout:g}s{during}"
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.debug("check %s raised", check.spec.name, exc_info=True)
        result = Result.fail(Reason.EXCEPTION, f"check raised {_describe(exc)}")
    finally:
        CURRENT_PHASE.reset(token)
    duration = time.perf_counter() - start
    if duration > timeout and result.reason != Reason.TIMEOUT:
        # The coroutine finished without yielding to the loop in time: it blocked the loop.
        result = Result.fail(
            Reason.TIMEOUT,
            f"run took {duration:.3f}s, over the timeout of {timeout:g}s, without yielding: "
            "the check blocked the event loop (blocking calls belong in probed.run_blocking)",
            phases=result.phases,
        )
    message = result.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    reason = "" if result.status is Status.OK and not result.reason else clean_reason(result.reason)
    if result.status is not Status.OK and not reason:
        reason = Reason.OTHER
    # Built directly: dataclasses.replace costs more than the rest of this wrapper.
    return Result(
        result.status,
        reason,
        message,
        result.phases,
        result.values,
        result.samples,
        duration,
        time.time(),
    )
