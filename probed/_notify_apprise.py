"""Apprise behind a small door: imported only when a route is configured, its URLs never shown.

Apprise logs to the ``apprise`` logger, and at ``DEBUG`` (and in its parse errors) it writes the
URLs it posts to, tokens and all. :func:`quiet_apprise_logs` puts a filter on that logger which
masks every ``scheme://...`` and every known URL part before a handler sees the record, and
(unless set already) raises that logger's level to ``ERROR``: probed reports failed deliveries
itself, once per route and quiet period.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterable
from typing import Any, Final

from probed.logs import current_redactor
from probed.redact import MASK, Redactor

__all__ = [
    "INSTALL_HINT",
    "apprise_available",
    "check_url",
    "quiet_apprise_logs",
    "send",
    "url_parts",
]

INSTALL_HINT: Final = "notifications need Apprise: pip install 'probed[notify]'"
_ANY_URL: Final = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{0,31}://)[^\s'\"<>]+")
_PARTS: Final = re.compile(r"[/:@?&=#,;]+")

_redactor = Redactor(())
_lock = threading.RLock()
_filtered = False
_module: Any = None


def url_parts(url: str) -> set[str]:
    """What in an Apprise URL may be secret: the whole URL and every piece between
    separators after the scheme (tokens sit in the host, user, password, path and query)."""
    rest = url.partition("://")[2]
    return {url, rest, *(p for p in _PARTS.split(rest) if p)}


def _mask(text: str) -> str:
    return current_redactor()(_redactor(_ANY_URL.sub(lambda m: m[1] + MASK, text)))


class _AppriseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: keep nothing of it
            message = "(unformattable apprise log record)"
        record.msg, record.args = _mask(message), None
        record.exc_info = record.exc_text = None  # exception text may quote the URL
        return True


def quiet_apprise_logs(urls: Iterable[str] = ()) -> None:
    """Mask ``urls`` (and any URL at all) in what Apprise logs, from now on."""
    parts: set[str] = set()
    for url in urls:
        parts |= url_parts(url)
    _redactor.add_secret(*parts)
    global _filtered
    with _lock:
        if not _filtered:
            logger = logging.getLogger("apprise")
            logger.addFilter(_AppriseFilter())
            if logger.level == logging.NOTSET:
                # One warning per failed attempt is Apprise's way; probed logs a route's
                # failures itself, once per quiet period (probed._notify_delivery).
                logger.setLevel(logging.ERROR)
            _filtered = True


def mask(text: str) -> str:
    """``text`` with every URL and URL part of a configured route masked."""
    return _mask(text)


def _apprise() -> Any:
    """Import Apprise (``ImportError`` when the extra is missing), without its import-time
    deprecation warnings (``imghdr`` on Python 3.11+): they are Apprise's, not the user's.
    The warning filters are global, so they are touched once, not on every send."""
    global _module
    if _module is not None:
        return _module
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        # Its e-mail plugin (loaded on first use, in a sending thread) imports imghdr.
        if "imghdr" not in sys.modules:
            with contextlib.suppress(ImportError):
                importlib.import_module("imghdr")
        _module = apprise
    return apprise


def apprise_available() -> bool:
    """Whether the ``notify`` extra (Apprise) is installed."""
    try:
        _apprise()
    except ImportError:
        return False
    return True


def check_url(url: str) -> None:
    """Raise ``ValueError`` (never quoting ``url``) unless Apprise can send to ``url``."""
    try:
        apprise = _apprise()
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    quiet_apprise_logs((url,))
    if apprise.Apprise.instantiate(url) is None:
        scheme = url.partition("://")[0][:32]
        raise ValueError(
            f"Apprise cannot send to this {scheme}:// URL (unknown service or a part missing; "
            "see https://github.com/caronc/apprise/wiki)"
        )


def send(urls: tuple[str, ...], title: str, body: str, kind: str, timeout: float) -> bool:
    """Deliver one message to every URL of a route (blocking: run it in a thread).

    :param kind: ``info``, ``success``, ``warning`` or ``failure`` (Apprise's notify types).
    :return: whether every URL accepted it.
    """
    box: Any = _apprise().Apprise()
    for url in urls:
        box.add(url)
    result = box.notify(body=body, title=title, notify_type=kind, timeout=timeout)
    return bool(result)
