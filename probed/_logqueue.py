"""The two bounds on logging (see :mod:`probed.logs`): the thread that writes queued lines,
counting those a full queue dropped, and the per-check rate limit of state-change lines.

Both keep process-wide counts, read by :class:`LogCollector` for ``/metrics``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "QUEUE_SIZE",
    "STATE_CHANGE_LIMIT",
    "STATE_CHANGE_WINDOW",
    "Listener",
    "LogCollector",
    "StateChangeLimiter",
    "drops",
]

QUEUE_SIZE: Final = 10_000
"""Log records the queue holds while the output is blocked; more are dropped and counted."""

STATE_CHANGE_LIMIT: Final = 5
"""Default state-change lines per check per :data:`STATE_CHANGE_WINDOW`."""

STATE_CHANGE_WINDOW: Final = 60.0
"""Seconds of the state-change rate limit's window."""


class _Drops:
    """Lines a full queue dropped: the total (for the metric) and those not yet reported."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self._unreported = 0

    def dropped(self) -> None:
        with self._lock:
            self.total += 1
            self._unreported += 1

    def take(self) -> int:
        """The drops since the last call (the listener reports them in one line)."""
        with self._lock:
            n, self._unreported = self._unreported, 0
        return n


drops = _Drops()


class Listener:
    """Writes queued records to ``handler`` from a daemon thread; after a line that follows
    drops, one warning says how many lines were dropped."""

    def __init__(
        self,
        records: queue.Queue[logging.LogRecord],
        handler: logging.Handler,
        logger: logging.Logger,
    ) -> None:
        self._queue = records
        self._handler = handler
        self._logger = logger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probed-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                record = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._handler.handle(record)
                dropped = drops.take()
                if dropped:
                    self._handler.handle(self._dropped_record(dropped))
            except Exception:  # the writer thread must outlive any one line
                continue
        self._handler.flush()

    def _dropped_record(self, n: int) -> logging.LogRecord:
        return self._logger.makeRecord(
            self._logger.name,
            logging.WARNING,
            __file__,
            0,
            "%d log lines dropped: the log output was not keeping up",
            (n,),
            None,
            extra={"event": "log_lines_dropped", "dropped": n},
        )

    def stop(self, timeout: float) -> None:
        """Write what is queued and end the thread, waiting at most ``timeout`` seconds."""
        self._stop.set()
        self._thread.join(timeout)


class StateChangeLimiter(logging.Filter):
    """Lets at most ``limit`` ``check_state_changed`` records per check through in a window of
    ``window`` seconds; when the window ends, one warning counts the ones held back."""

    def __init__(
        self,
        logger: logging.Logger,
        limit: int = STATE_CHANGE_LIMIT,
        window: float = STATE_CHANGE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.limit = limit
        self.window = window
        self.suppressed_total = 0
        self._logger = logger
        self._clock = clock
        self._lock = threading.Lock()
        # check name -> [window start, lines let through, lines suppressed]
        self._windows: dict[str, list[float]] = {}
        self._swept = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        if not isinstance(fields, dict) or fields.get("event") != "check_state_changed":
            return True
        if self.limit <= 0:
            return True
        check = str(fields.get("check"))
        now = self._clock()
        with self._lock:
            ended = self._sweep(now) if now - self._swept >= 1.0 else []
            counts = self._windows.get(check)
            if counts is not None and now - counts[0] >= self.window:
                if counts[2]:
                    ended.append((check, int(counts[2])))
                counts = None
            if counts is None:
                counts = self._windows[check] = [now, 0, 0]
            allowed = counts[1] < self.limit
            counts[1 if allowed else 2] += 1
            if not allowed:
                self.suppressed_total += 1
        self._summarize(ended)
        return allowed

    def _sweep(self, now: float) -> list[tuple[str, int]]:
        """Forget ended windows (with the lock held); return those that suppressed lines."""
        self._swept = now
        ended = [name for name, c in self._windows.items() if now - c[0] >= self.window]
        out = []
        for name in ended:
            suppressed = int(self._windows.pop(name)[2])
            if suppressed:
                out.append((name, suppressed))
        return out

    def reset(self) -> None:
        """Forget every window (a new log output starts with a clean slate)."""
        with self._lock:
            self._windows.clear()

    def sweep(self) -> None:
        """Report the windows that ended (call periodically: flapping may have stopped)."""
        with self._lock:
            ended = self._sweep(self._clock())
        self._summarize(ended)

    def _summarize(self, ended: list[tuple[str, int]]) -> None:
        for check, n in ended:
            self._logger.warning(
                "%d state changes of %s suppressed in the last %gs",
                n,
                check,
                self.window,
                extra={"event": "state_changes_suppressed", "check": check, "suppressed": n},
            )


class LogCollector(Collector):
    """``probed_log_lines_dropped_total`` and ``probed_log_state_changes_suppressed_total``."""

    def __init__(self, read: Callable[[], tuple[int, int]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        dropped, suppressed = self._read()
        yield CounterMetricFamily(
            "probed_log_lines_dropped",
            "Log lines dropped because the log output was not keeping up (queue full).",
            value=dropped,
        )
        yield CounterMetricFamily(
            "probed_log_state_changes_suppressed",
            "State-change log lines held back by the per-check rate limit.",
            value=suppressed,
        )
