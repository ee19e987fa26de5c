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
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from probed.redact import Redactor

__all__ = ["configure_logging", "current_redactor", "set_redactor"]

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
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return _redact(json.dumps(data, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``TIME LEVEL logger: message key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{ts}Z {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extra:
            line += f"  {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return _redact(line)


def configure_logging(fmt: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send probed's logs to ``stream`` (stderr by default) in ``fmt`` at ``level``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_probed", False):
            root.removeHandler(old)
    handler._probed = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
