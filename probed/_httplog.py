"""Logs a client can provoke, bounded: a malformed request is one warning line without a
traceback, and asyncio's ``socket.accept() out of system resource`` (fds exhausted) at most one
line per :data:`LOG_EVERY` seconds with the number of lines suppressed."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Final

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["ACCEPT_ERRORS", "BAD_REQUESTS", "LOG_EVERY", "http_log", "install_log_filters"]

http_log = logging.getLogger("probed.http")
"""The logger of aiohttp's request handlers on probed's listeners."""

LOG_EVERY: Final = 10.0
"""Seconds between two log lines of the same client-provoked kind."""


class _Throttle(logging.Filter):
    """Lets one matching record through every ``every`` seconds, the next one saying how many
    were suppressed; ``shorten`` turns a kept record into one line without a traceback."""

    def __init__(
        self,
        matches: Callable[[logging.LogRecord], bool],
        shorten: Callable[[logging.LogRecord], None],
        every: float = LOG_EVERY,
    ) -> None:
        super().__init__()
        self._matches, self._shorten, self._every = matches, shorten, every
        self._next = 0.0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._matches(record):
            return True
        now = time.monotonic()
        if now < self._next:
            self.suppressed += 1
            return False
        self._next = now + self._every
        self._shorten(record)
        if self.suppressed:
            record.msg = f"{record.msg} ({self.suppressed} similar lines suppressed)"
            self.suppressed = 0
        return True


def _accept_error(record: logging.LogRecord) -> bool:
    return str(record.msg).startswith("socket.accept() out of system resource")


def _shorten_accept(record: logging.LogRecord) -> None:
    exc = record.exc_info[1] if record.exc_info else None
    record.msg = "socket.accept() out of system resource: %s; new connections wait"
    record.args = (exc.strerror if isinstance(exc, OSError) else exc,)
    record.exc_info = None
    record.exc_text = None


def _bad_request(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return isinstance(exc, HttpProcessingError)


# aiohttp's "Got more than 8190 bytes when reading: b'...'" echoes the start of the line it
# refused: a URL with ?token=, an Authorization header. Request bytes are never logged.
_ECHOED: Final = re.compile(r":\s*(?:bytearray\()?b['\"].*$")


def _shorten_bad_request(record: logging.LogRecord) -> None:
    exc = record.exc_info[1] if record.exc_info else None
    remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
    reason = getattr(exc, "message", "") or type(exc).__name__
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    record.msg = "bad request from %s: %s"
    text = _ECHOED.sub("", str(reason).splitlines()[0]) if reason else ""
    record.args = (remote, text[:200])
    record.exc_info = None
    record.exc_text = None


ACCEPT_ERRORS: Final = _Throttle(_accept_error, _shorten_accept)
BAD_REQUESTS: Final = _Throttle(_bad_request, _shorten_bad_request, every=1.0)


def install_log_filters() -> None:
    """Put the throttles on the asyncio logger and the request handlers' one (once)."""
    asyncio_log = logging.getLogger("asyncio")
    if ACCEPT_ERRORS not in asyncio_log.filters:
        asyncio_log.addFilter(ACCEPT_ERRORS)
    if BAD_REQUESTS not in http_log.filters:
        http_log.addFilter(BAD_REQUESTS)
