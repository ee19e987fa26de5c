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
import logging
import time
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
        async with asyncio.timeout(timeout):
            if check.blocking:  # run() on its own loop in the type's bounded thread pool
                result = await run_blocking(_run_in_thread, check)
            else:
                result = await check.run()
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
