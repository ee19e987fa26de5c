"""The clock notifications wait on: the loop's monotonic time, or one a test moves by hand.

Damping, reminders, digests and retry backoff are minutes and hours in real use; with
:class:`ManualClock` a test moves time forward with :meth:`ManualClock.advance` and everything
that was due runs at once, deterministically.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "LoopClock", "ManualClock"]


class Clock(Protocol):
    """What notifications read time from and wait on."""

    def now(self) -> float:
        """Monotonic seconds."""

    def wall(self) -> float:
        """Unix seconds (shown in messages)."""

    async def wait(self, until: float | None, wake: asyncio.Event) -> None:
        """Return once ``now() >= until`` or ``wake`` is set (``until`` ``None``: only ``wake``)."""


class LoopClock:
    """Real time: the event loop's clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    async def wait(self, until: float | None, wake: asyncio.Event) -> None:
        timeout = None if until is None else max(0.0, until - self.now())
        try:
            async with asyncio.timeout(timeout):
                await wake.wait()
        except TimeoutError:
            pass


class ManualClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._now = start
        self._offset = wall - start
        self._moved = asyncio.Event()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._offset

    def advance(self, seconds: float) -> None:
        """Move time forward; whoever waits for a moment now past wakes up."""
        self._now += seconds
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait(self, until: float | None, wake: asyncio.Event) -> None:
        while not wake.is_set() and (until is None or self._now < until):
            moved = self._moved
            waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(moved.wait())]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
