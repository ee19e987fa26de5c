"""Signals over a daemon's whole life: from the first line of ``probed run`` to its exit.

- :class:`EarlySignals` are plain handlers installed first thing, before settings are read and
  plugins imported: SIGHUP is remembered (the daemon reloads once it has started; a HUP is
  never fatal), SIGTERM/SIGINT end the process at once (nothing has started that needs
  stopping). :meth:`probed.daemon.Daemon.serve` replaces them with its event-loop handlers as
  its first step, before plugins start and checks load, and takes over a remembered HUP.
- :func:`exit_now` is the second SIGTERM/SIGINT during a slow stop: one log line, the queued
  log lines written (bounded wait), and ``os._exit(128 + signal)`` without waiting for checks,
  plugins or threads.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType
from typing import NoReturn

from probed.logs import flush_logs

__all__ = ["STOP_SIGNALS", "EarlySignals", "exit_now"]

log = logging.getLogger("probed")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class EarlySignals:
    """Handlers for the time before the event loop runs the daemon."""

    def __init__(self) -> None:
        self.hup = False

    def install(self) -> None:
        signal.signal(signal.SIGHUP, self._on_hup)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_stop)

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.hup = True

    def _on_stop(self, signum: int, _frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    def take_hup(self) -> bool:
        """Whether a SIGHUP came (and forget it)."""
        hup, self.hup = self.hup, False
        return hup


def exit_now(signum: int) -> NoReturn:
    """End the process at once: a second stop signal while a stop is under way."""
    name = signal.Signals(signum).name
    log.warning(
        "second %s while stopping: exiting now without waiting for checks and plugins to stop",
        name,
        extra={"event": "exit_now", "signal": name},
    )
    flush_logs(1.0)
    os._exit(128 + signum)
