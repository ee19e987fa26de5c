"""The one failure classifier of the network check types: exception -> bounded reason + sentence.

Every check type that talks to a network peer (``http``, ``json_api``, ``tcp``, ``dns``,
``postgres``, ``redis``, ``icmp``) turns the ``OSError`` family, TLS errors, timeouts and
resolver errors into a :class:`~probed.check.Reason` here, so the same failure carries the same
reason and the same words whichever type saw it:

- ``ConnectionRefusedError``: ``connection_refused``
- ``ConnectionResetError``, ``BrokenPipeError``, ``ConnectionAbortedError``: ``connection_reset``
- ``socket.gaierror``: ``dns``
- ``ssl.SSLError``, certificate verification errors included: ``tls``
- ``TimeoutError`` (which ``asyncio.TimeoutError`` is): ``timeout``
- an ``OSError`` whose errno is in :data:`UNREACHABLE_ERRNOS`: ``unreachable``

Any other exception is not classified (``None``): the caller knows what it was doing and picks
the reason.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from typing import Final

from probed.check import Reason
from probed.checks._tls import describe_ssl_error

__all__ = ["UNREACHABLE_ERRNOS", "classify", "describe", "network_failure"]

UNREACHABLE_ERRNOS: Final = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}
)
"""Errors saying no route leads to the peer (as opposed to a peer that refused)."""


def classify(exc: BaseException) -> str | None:
    """The reason for ``exc`` itself (not its cause), or ``None`` when it is not a known shape."""
    if isinstance(exc, ConnectionRefusedError):
        return Reason.CONNECTION_REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return Reason.CONNECTION_RESET
    if isinstance(exc, socket.gaierror):
        return Reason.DNS
    if isinstance(exc, ssl.SSLError):
        return Reason.TLS
    if isinstance(exc, TimeoutError):
        return Reason.TIMEOUT
    if isinstance(exc, OSError) and exc.errno in UNREACHABLE_ERRNOS:
        return Reason.UNREACHABLE
    return None


def describe(exc: BaseException, where: str) -> tuple[str, str] | None:
    """``(reason, sentence)`` for ``exc`` itself, naming the peer ``where``; ``None`` if unknown."""
    reason = classify(exc)
    if reason is None:
        return None
    strerror = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if reason == Reason.CONNECTION_REFUSED:
        text = f"connection refused by {where}: nothing listens there (server down or wrong port)"
    elif reason == Reason.CONNECTION_RESET:
        text = f"{where} closed the connection abruptly (connection reset)"
    elif reason == Reason.DNS:
        text = f"cannot resolve the host of {where}: {strerror}"
    elif reason == Reason.TLS:
        text = f"{where}: {describe_ssl_error(exc)}"
    elif reason == Reason.TIMEOUT:
        text = f"connection to {where} timed out"
    else:
        text = f"{where} is unreachable: {strerror}"
    return reason, text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def network_failure(exc: BaseException, where: str) -> tuple[str, str] | None:
    """:func:`describe` the first known failure in ``exc``'s chain (drivers wrap ``OSError``).

    Timeouts are left to the caller (a driver's timeout names the phase it cut), so only
    network-level shapes are looked for.
    """
    for err in _chain(exc):
        if isinstance(err, TimeoutError):
            continue
        found = describe(err, where)
        if found is not None:
            return found
    return None
