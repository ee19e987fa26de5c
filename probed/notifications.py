"""Direct notifications through Apprise: Slack, Teams, Discord, e-mail, PagerDuty, Telegram, ...

A built-in plugin on the same hook a third-party plugin would use
(``probed_check_state_changed``), configured by ``notifications:`` in ``probed.yaml``
(:mod:`probed._notify_settings`; docs/notifications.md is the manual). It stays inert, and
never imports Apprise, until a route is configured.

- the hook implementation is a plain function that only records the change in the
  :class:`~probed._notify_engine.Engine` and wakes a background task: a check run never waits
  for a notification;
- the background task asks the engine what is due (damping, reminders, digests) on a
  :class:`~probed._notify_clock.Clock` and hands messages to
  :class:`~probed._notify_delivery.Delivery` (bounded queue, workers, retries with backoff);
- ``probed_notifications_total{route,result}`` counts deliveries (``sent``, ``retried``,
  ``failed``, ``dropped``), ``probed_notifications_queued`` the messages waiting;
- Apprise URLs hold tokens: they are never logged, never in an error, a metric or the API;
  Apprise's own log records are masked (:mod:`probed._notify_apprise`).

One daemon per process runs notifications (the last one started), like the Sentry plugin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from probed import hookimpl
from probed._notify_clock import Clock, LoopClock
from probed._notify_delivery import RESULTS, Delivery, Sender
from probed._notify_engine import Engine, Message
from probed._notify_settings import Notifications
from probed.logs import current_redactor
from probed.threads import run_blocking

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from probed.check import Result, Status
    from probed.settings import Settings
    from probed.spec import CheckSpec
    from probed.state import StateStore

__all__ = ["Runner", "active_runner", "use_clock"]

log = logging.getLogger("probed.notifications")

STOP_GRACE: Final = 2.0
"""Seconds queued messages get at shutdown."""
POOL: Final = "notify"

_clock_factory: Callable[[], Clock] = LoopClock
_runner: Runner | None = None
_states: StateStore | None = None


def use_clock(factory: Callable[[], Clock] | None) -> None:
    """Make runners started from now on use ``factory()``'s clock (tests); ``None``: real time."""
    global _clock_factory
    _clock_factory = factory or LoopClock


def active_runner() -> Runner | None:
    """The running notifications of this process, if any (tests and diagnostics)."""
    return _runner


async def _apprise_send(message: Message, timeout: float) -> bool:
    from probed._notify_apprise import send

    redact = current_redactor()
    async with asyncio.timeout(timeout + 1.0):  # Apprise's own timeout, plus a margin
        return await run_blocking(
            send,
            message.route.urls,
            redact(message.title),
            redact(message.body),
            message.kind,
            timeout,
            pool=POOL,
        )


class Runner:
    """Notifications for one daemon: the engine, the delivery and the task between them."""

    def __init__(
        self,
        settings: Notifications,
        clock: Clock,
        exists: Callable[[str], bool] = bool,
        send: Sender | None = None,
    ) -> None:
        from probed._notify_apprise import mask, quiet_apprise_logs

        quiet_apprise_logs(u for r in settings.routes for u in r.urls)
        self.clock = clock
        self.engine = Engine(settings, exists)
        self._wake = asyncio.Event()
        self.delivery = Delivery(
            settings,
            send or _apprise_send,
            clock.now,
            mask,
            self._wake.set,
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task and the delivery workers (on the running loop)."""
        self.delivery.start()
        self._task = asyncio.get_running_loop().create_task(self._drive(), name="probed-notify")

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop deciding; give queued messages ``grace`` seconds; stop delivering."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await self.delivery.stop(grace)

    def configure(self, settings: Notifications) -> None:
        """New settings from a reload."""
        from probed._notify_apprise import quiet_apprise_logs

        quiet_apprise_logs(u for r in settings.routes for u in r.urls)
        self.engine.configure(settings)
        self.delivery.settings = settings
        self._wake.set()

    def observe(self, spec: CheckSpec, new: Status, result: Result) -> None:
        """Record a status change (no I/O; wakes the background task)."""
        self.engine.observe(spec, new, result, self.clock.now(), self.clock.wall())
        self._wake.set()

    async def _drive(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock.now()
            self.delivery.release_retries(now)
            for message in self.engine.due(now, self.clock.wall()):
                self.delivery.submit(message)
            deadlines = [self.engine.next_deadline(), self.delivery.next_retry()]
            await self.clock.wait(
                min((d for d in deadlines if d is not None), default=None), self._wake
            )

    def collect(self) -> Iterator[Metric]:
        """The notification metric families."""
        total = CounterMetricFamily(
            "probed_notifications",
            "Notification deliveries by route and result (sent, retried, failed, dropped).",
            labels=("route", "result"),
        )
        names = [r.name for r in self.engine.settings.routes]
        totals = self.delivery.counters.totals.copy()  # a scrape may run in another thread
        for route in sorted(set(names) | {r for r, _ in totals}):
            for result in RESULTS:
                total.add_metric((route, result), totals.get((route, result), 0))
        yield total
        yield GaugeMetricFamily(
            "probed_notifications_queued",
            "Notification messages waiting for delivery or a retry.",
            value=self.delivery.waiting,
        )


class _Collector:
    def collect(self) -> Iterable[Metric]:
        runner = _runner
        return runner.collect() if runner is not None else ()


async def _start(settings: Notifications, states: StateStore | None) -> None:
    global _runner
    if _runner is not None:
        await _runner.stop()
        _runner = None
    if not settings.active:
        return
    exists: Callable[[str], bool] = (lambda n: n in states) if states is not None else bool
    runner = Runner(settings, _clock_factory(), exists)
    runner.start()
    _runner = runner
    log.info(
        "notifications on: %d route(s): %s",
        len(settings.routes),
        ", ".join(r.name for r in settings.routes),
        extra={"event": "notifications_enabled"},
    )


@hookimpl
async def probed_configure(settings: Settings) -> None:
    """Apply ``notifications:`` on a reload (starting or stopping the runner as needed)."""
    wanted = settings.notifications
    if _runner is not None and wanted.active:
        _runner.configure(wanted)
    elif _runner is not None or (wanted.active and _states is not None):
        await _start(wanted, _states)


@hookimpl
async def probed_startup(settings: Settings, states: StateStore) -> None:
    """Start notifications if a route is configured."""
    global _states
    _states = states
    await _start(settings.notifications, states)


@hookimpl
async def probed_shutdown() -> None:
    """Give queued messages a moment, then stop."""
    global _runner, _states
    runner, _runner, _states = _runner, None, None
    if runner is not None:
        await runner.stop()


@hookimpl
def probed_check_state_changed(spec: CheckSpec, new: Status, result: Result) -> None:
    """Record the change for the notification engine (never waits)."""
    runner = _runner
    if runner is not None:
        runner.observe(spec, new, result)


@hookimpl
def probed_register_collectors() -> list[Collector]:
    """``probed_notifications_total`` and ``probed_notifications_queued`` (while active)."""
    return [_Collector()]
