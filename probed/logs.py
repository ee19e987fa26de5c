"""Logging: one JSON object per line (default) or plain text, with secrets redacted.

Every line, exception text included, goes through the redactor installed with
:func:`set_redactor` (a :class:`probed.redact.Redactor` built from the loaded configuration's
secrets; before the first load, one that knows no values but still masks URL passwords,
``?token=``, DSN ``password=`` and credential headers). It is one per process, like the
configuration it comes from, and it is the only one: Sentry reads it with
:func:`current_redactor`, since its callbacks run outside any daemon context.

JSON lines carry ``ts``, ``level``, ``logger``, ``msg`` and any structured fields passed as
``extra={...}`` (for example ``event``, ``check``, ``old``, ``new``, ``reason``), so Loki and
friends can label by them without parsing prose. Keys that ``logging`` reserves (``message``)
go in ``extra={"fields": {...}}``.

Two bounds keep logging from flooding the output or blocking the daemon:

- ``probed run`` logs through a bounded queue (:func:`configure_logging` with ``queued=True``):
  the event loop only puts records on it, a thread formats and writes them. When the output
  does not keep up (a pipe nobody reads, a stuck terminal) the queue fills and further lines
  are dropped and counted (``probed_log_lines_dropped_total``) instead of blocking probing;
  once the output moves again one line says how many were dropped. :func:`flush_logs` writes
  what is queued on exit, waiting a bounded time.
- State changes (``event: check_state_changed``) are rate-limited per check: at most
  ``state_change_log_limit`` lines per check in :data:`STATE_CHANGE_WINDOW` seconds, then one
  line ``N state changes of CHECK suppressed in the last 60s`` when the window ends (counted in
  ``probed_log_state_changes_suppressed_total``).
"""

from __future__ import annotations

import copy
import json
import logging
import queue
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from logging.handlers import QueueHandler
from typing import Any, Final, TextIO

from probed._logqueue import (
    QUEUE_SIZE,
    STATE_CHANGE_WINDOW,
    Listener,
    LogCollector,
    StateChangeLimiter,
    drops,
)
from probed.redact import Redactor

__all__ = [
    "QUEUE_SIZE",
    "STATE_CHANGE_WINDOW",
    "LogCollector",
    "configure_logging",
    "current_redactor",
    "flush_logs",
    "log_counts",
    "set_redactor",
    "set_state_change_limit",
    "state_changes",
]

_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)

_redact: Callable[[str], str] = Redactor(())  # replaced on each (re)load


def set_redactor(redactor: Callable[[str], str]) -> None:
    """Install the function that scrubs secrets from every log line (called on each load)."""
    global _redact
    _redact = redactor


def current_redactor() -> Callable[[str], str]:
    """The function currently scrubbing secrets from log lines (for integrations that ship logs
    elsewhere, such as Sentry); read it at use time, since every reload replaces it."""
    return _redact


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD and k != "fields" and not k.startswith("_")
    }
    # ``extra={"fields": {...}}`` carries keys LogRecord reserves, such as ``message``.
    nested = getattr(record, "fields", None)
    if isinstance(nested, dict):
        out.update(nested)
    return out


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The record's traceback text: formatted now, or already (by :class:`_QueueHandler`)."""
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or None


def _redactor(record: logging.LogRecord) -> Callable[[str], str]:
    """The redactor current when the record was made (a queued record may be formatted after a
    reload replaced it, and the new one may not know a secret the line carries)."""
    redact = getattr(record, "_probed_redact", None)
    return redact if callable(redact) else _redact


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(_fields(record))
        exc = _exception(self, record)
        if exc:
            data["exc"] = exc
        return _redactor(record)(json.dumps(data, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{ts}Z {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            line += f"  {extra}"
        exc = _exception(self, record)
        if exc:
            line += "\n" + exc
        return _redactor(record)(line)


state_changes = StateChangeLimiter(logging.getLogger("probed"))
"""The per-check rate limit of state-change lines (one per process, like the handler)."""

_listener: Listener | None = None


def log_counts() -> tuple[int, int]:
    """Lines dropped by a full queue and state-change lines suppressed, since the start (for
    ``LogCollector(log_counts)`` on the daemon's registry)."""
    return drops.total, state_changes.suppressed_total


def set_state_change_limit(limit: int) -> None:
    """Allow at most ``limit`` state-change lines per check per minute (0: no limit)."""
    state_changes.limit = limit


class _QueueHandler(QueueHandler):
    """Puts records on a bounded queue without ever waiting: a full queue drops and counts."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Only what must happen now: the message merged with its arguments (they may change
        # later), the traceback rendered (its frames go away) and the redactor pinned. JSON,
        # redaction and the write happen in the listener's thread.
        message = record.getMessage()
        out = copy.copy(record)
        out.msg, out.args, out.message = message, None, message
        if record.exc_info:
            out.exc_text = logging.Formatter().formatException(record.exc_info)
            out.exc_info = None
        out._probed_redact = _redact
        return out

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            drops.dropped()


def flush_logs(timeout: float = 2.0) -> None:
    """Write the queued lines and stop the log thread, waiting at most ``timeout`` seconds
    (an output that stays blocked loses them rather than hanging the exit)."""
    global _listener
    listener, _listener = _listener, None
    if listener is not None:
        listener.stop(timeout)


def configure_logging(
    fmt: str = "json",
    level: str = "INFO",
    stream: TextIO | None = None,
    *,
    queued: bool = False,
    queue_size: int = QUEUE_SIZE,
) -> None:
    """Send probed's logs to ``stream`` (stderr by default) in ``fmt`` at ``level``.

    :param queued: write from a thread fed by a bounded queue of ``queue_size`` records (the
        daemon's way: a blocked output never blocks the event loop; lines that do not fit are
        dropped and counted); otherwise write in the logging thread (tests, short commands).
    """
    global _listener
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_probed", False):
            root.removeHandler(old)
    flush_logs()  # the previous queue's lines, if any, before the new handler takes over
    writer = logging.StreamHandler(stream or sys.stderr)
    writer.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler: logging.Handler = writer
    if queued:
        records: queue.Queue[logging.LogRecord] = queue.Queue(queue_size)
        handler = _QueueHandler(records)
        _listener = Listener(records, writer, logging.getLogger("probed"))
        _listener.start()
    state_changes.reset()
    handler.addFilter(state_changes)
    handler._probed = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
