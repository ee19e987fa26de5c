"""What a running check is doing right now, for the runner's timeout message; elapsed times.

The runner (:func:`probed.runner.execute`) cancels a check at its timeout. To say *where* it
stalled ("no answer within the timeout of 5s while waiting for the response headers") it reads
the phase the check last declared::

    from probed.phase import phase, set_phase

    async def run(self) -> Result:
        with phase("connecting"):
            reader, writer = await asyncio.open_connection(host, port)
        set_phase("waiting for the reply")
        line = await reader.readline()

A phase is a short present-participle clause that reads after "while". Declaring one is
optional and cheap (one context-variable lookup and an attribute store); outside a run
(``probed once`` helpers, tests calling ``check.run()`` directly) it does nothing. Tasks the
check creates inherit the run's holder, so a phase declared in a sub-task counts too.

:func:`format_elapsed` is the one way to print a measured time in a message: ``12.3 ms``,
``4.95s``, ``12.3s``, ``2m5s`` (never ``4.9517879049999465s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from probed.options import format_duration

__all__ = ["CURRENT_PHASE", "RunPhase", "current_phase", "format_elapsed", "phase", "set_phase"]

_MAX_PHASE: Final = 80


class RunPhase:
    """The mutable phase of one run; the runner makes one per run and reads it at a timeout.

    ``kind`` is the running check's type (:func:`probed.threads.run_blocking` picks its pool
    by it).
    """

    __slots__ = ("kind", "name")

    def __init__(self, kind: str = "") -> None:
        self.name = ""
        self.kind = kind


CURRENT_PHASE: ContextVar[RunPhase | None] = ContextVar("probed_run_phase", default=None)
"""The holder of the running check's phase; the runner sets a fresh one around each run."""


def set_phase(name: str) -> None:
    """Declare what the current check run is doing now (``"connecting"``); ``""`` clears it."""
    holder = CURRENT_PHASE.get()
    if holder is not None:
        holder.name = name[:_MAX_PHASE]


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Declare ``name`` for the ``with`` block; the previous phase is restored after it
    (not when the block is cancelled, so a timeout still names the phase that stalled)."""
    holder = CURRENT_PHASE.get()
    if holder is None:
        yield
        return
    previous = holder.name
    holder.name = name[:_MAX_PHASE]
    try:
        yield
    except Exception:
        holder.name = previous
        raise
    # Not restored when the block is cancelled (the runner's timeout): the runner reads the
    # phase after the cancellation has unwound the check, and must see the one that stalled.
    holder.name = previous


def current_phase() -> str:
    """The phase last declared in the current run (``""`` if none, or outside a run)."""
    holder = CURRENT_PHASE.get()
    return holder.name if holder is not None else ""


def format_elapsed(seconds: float) -> str:
    """A measured duration for a message: ``12.3 ms``, ``4.95s``, ``12.3s``, ``2m5s``."""
    if seconds != seconds or seconds < 0:  # NaN or a clock step: say nothing precise
        return "0 ms"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_duration(round(seconds))
