"""Sending messages in the background: a bounded queue, a few workers, retries with backoff.

Nothing here ever blocks a check run: :meth:`Delivery.submit` only puts a message on a bounded
queue (a full one drops it, counted); :data:`WORKERS` tasks take messages off and send each in
a thread of probed's bounded ``notify`` pool (:func:`probed.threads.run_blocking`; Apprise is
blocking), under ``timeout``. A failed attempt is retried after ``backoff``, doubling each
time up to :data:`MAX_BACKOFF`, at most ``retries`` times; waiting retries count against the
queue's size. Failures are logged once per route, then again only after a quiet period that
doubles each time (with how many were not logged); a route that delivers again says so.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from probed._notify_engine import Message
    from probed._notify_settings import Notifications

__all__ = ["RESULTS", "Delivery", "Sender"]

log = logging.getLogger("probed.notifications")

WORKERS: Final = 4
"""Messages in flight at once (the ``notify`` thread pool has as many threads)."""
MAX_BACKOFF: Final = 300.0
FIRST_LOG_QUIET: Final = 60.0
MAX_LOG_QUIET: Final = 3600.0
RESULTS: Final = ("sent", "retried", "failed", "dropped")
"""``result`` label values of ``probed_notifications_total``."""

Sender = Callable[["Message", float], Awaitable[bool]]
"""Delivers one message within a timeout; true if every URL of its route took it."""


@dataclass(slots=True)
class _RouteLog:
    quiet_until: float = 0.0
    quiet: float = FIRST_LOG_QUIET
    unlogged: int = 0
    failing: bool = False


@dataclass(slots=True)
class Counters:
    """``probed_notifications_total{route,result}`` and the messages waiting."""

    totals: dict[tuple[str, str], int] = field(default_factory=dict)

    def inc(self, route: str, result: str, n: int = 1) -> None:
        key = (route, result)
        self.totals[key] = self.totals.get(key, 0) + n


class Delivery:
    """The background side of notifications for one daemon."""

    def __init__(
        self,
        settings: Notifications,
        send: Sender,
        now: Callable[[], float],
        mask: Callable[[str], str],
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.counters = Counters()
        self._send = send
        self._now = now
        self._mask = mask
        self._wake = wake
        self._queue: asyncio.Queue[tuple[Message, int]] = asyncio.Queue()
        self._retries: list[tuple[float, int, Message, int]] = []
        self._seq = 0
        self._workers: list[asyncio.Task[None]] = []
        self._logs: dict[str, _RouteLog] = {}
        self.in_flight = 0

    @property
    def waiting(self) -> int:
        """Messages queued or waiting for a retry (bounded by ``queue_size``)."""
        return self._queue.qsize() + len(self._retries)

    @property
    def queued(self) -> int:
        """Messages queued for a worker now (not counting retries waiting for their time)."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the workers (on the running loop)."""
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._work(), name=f"probed-notify-{i}") for i in range(WORKERS)
        ]

    async def stop(self, grace: float) -> None:
        """Give queued messages up to ``grace`` seconds, then cancel the workers."""
        if grace > 0 and self._queue.qsize():
            deadline = asyncio.get_running_loop().time() + grace
            while self._queue.qsize() or self.in_flight:
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.01)
        for task in self._workers:
            task.cancel()
        if self._workers:
            await asyncio.wait(self._workers)
        self._workers = []

    def submit(self, message: Message, attempt: int = 0) -> bool:
        """Queue ``message`` unless the queue is full (then it is dropped and counted)."""
        if self.waiting >= self.settings.queue_size:
            self.counters.inc(message.route.name, "dropped")
            self._failed(message.route.name, "the delivery queue is full; message dropped")
            return False
        self._queue.put_nowait((message, attempt))
        return True

    def next_retry(self) -> float | None:
        """When the next waiting retry is due."""
        return self._retries[0][0] if self._retries else None

    def release_retries(self, now: float) -> None:
        """Queue the retries that are due at ``now``."""
        while self._retries and self._retries[0][0] <= now:
            _, _, message, attempt = heapq.heappop(self._retries)
            self._queue.put_nowait((message, attempt))

    async def _work(self) -> None:
        while True:
            message, attempt = await self._queue.get()
            self.in_flight += 1
            try:
                await self._deliver(message, attempt)
            finally:
                self.in_flight -= 1

    async def _deliver(self, message: Message, attempt: int) -> None:
        route = message.route.name
        try:
            ok = await self._send(message, self.settings.timeout)
            problem = "the service did not accept it"
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            ok, problem = False, f"no answer within {self.settings.timeout:g}s"
        except Exception as exc:  # the documented boundary: a sender must not kill a worker
            ok, problem = False, f"{type(exc).__name__}: {exc}"
        if ok:
            self.counters.inc(route, "sent")
            self._delivered(route)
            return
        if attempt < self.settings.retries:
            self.counters.inc(route, "retried")
            delay = min(self.settings.backoff * 2**attempt, MAX_BACKOFF)
            self._seq += 1
            heapq.heappush(self._retries, (self._now() + delay, self._seq, message, attempt + 1))
            self._wake()  # the scheduler of retries has a new deadline
            self._failed(route, f"{problem}; retrying in {delay:g}s")
        else:
            self.counters.inc(route, "failed")
            self._failed(route, f"{problem}; gave up after {attempt + 1} attempts")

    def _failed(self, route: str, problem: str) -> None:
        state = self._logs.setdefault(route, _RouteLog())
        now = self._now()
        state.failing = True
        if now < state.quiet_until:
            state.unlogged += 1
            return
        more = f" ({state.unlogged} more failures not logged)" if state.unlogged else ""
        log.warning(
            "notification route %s: delivery failed: %s%s",
            route,
            self._mask(problem),
            more,
            extra={"event": "notification_failed", "route": route},
        )
        state.unlogged = 0
        state.quiet_until = now + state.quiet
        state.quiet = min(state.quiet * 2, MAX_LOG_QUIET)

    def _delivered(self, route: str) -> None:
        state = self._logs.get(route)
        if state is None or not state.failing:
            return
        del self._logs[route]
        log.info(
            "notification route %s delivers again",
            route,
            extra={"event": "notification_recovered", "route": route},
        )
