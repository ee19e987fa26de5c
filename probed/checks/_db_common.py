"""Helpers shared by the database check types (``postgres``, ``redis``).

- :class:`SecretUrl`: a connection URL option whose password never leaves the process in a
  ``repr``, ``str``, ``model_dump`` or JSON Schema example; it dumps as
  ``postgresql://user:***@host:5432/db``.
- :func:`network_failure`: turns an ``OSError`` somewhere in an exception chain into a bounded
  reason and a sentence.
- :func:`timed`: records a phase duration even when the phase fails.
- :func:`parse_quantity`: numbers with an optional size suffix (``512MB``, ``1.5GiB``).
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from probed.check import Reason
from probed.redact import is_secret_param, redact_url

__all__ = [
    "SecretUrl",
    "network_failure",
    "parse_quantity",
    "short",
    "timed",
]


class SecretUrl:
    """A connection URL that may carry a password; the password is never shown.

    ``str()``, ``repr()``, pydantic dumps (Python and JSON) and therefore the API all show
    :attr:`redacted`. Only :meth:`get_secret_value` returns the real URL, for the driver.
    Two values compare equal when the full URLs (passwords included) are equal, so a changed
    password counts as a changed configuration on reload.
    """

    __slots__ = ("_parts", "_url")

    def __init__(self, url: str) -> None:
        url = url.strip()
        parts = urlsplit(url)
        if not parts.scheme or "://" not in url:
            raise ValueError("expected a URL such as scheme://user@host:port/path")
        try:
            parts.port  # noqa: B018 - urlsplit validates the port lazily; fail at config time
        except ValueError:
            raise ValueError(
                "the port in the URL is not a number between 0 and 65535 (percent-encode "
                "characters such as # / ? @ : in the password, e.g. # as %23)"
            ) from None
        self._url = url
        self._parts = parts

    def get_secret_value(self) -> str:
        """The URL as configured, password included: pass it to the driver and nowhere else."""
        return self._url

    @property
    def scheme(self) -> str:
        """Lower-case scheme (``postgresql``, ``redis``, ``rediss``, ...)."""
        return self._parts.scheme.lower()

    @property
    def username(self) -> str | None:
        """Percent-decoded user name from the URL, if any."""
        return unquote(self._parts.username) if self._parts.username else None

    @property
    def password(self) -> str | None:
        """Percent-decoded password from the URL (userinfo or ``?password=``), if any."""
        if self._parts.password:
            return unquote(self._parts.password)
        for key, value in parse_qsl(self._parts.query):
            if key.lower() == "password" and value:
                return value
        return None

    @property
    def host(self) -> str:
        """Host name or address ('' when the driver's default applies)."""
        return self._parts.hostname or ""

    @property
    def port(self) -> int | None:
        """Port number, if given."""
        return self._parts.port

    def query(self) -> dict[str, str]:
        """Query parameters (last one wins)."""
        return dict(parse_qsl(self._parts.query))

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the URL, for a :class:`~probed.redact.Redactor`."""
        found = [self.password or ""]
        found += [v for k, v in parse_qsl(self._parts.query) if is_secret_param(k)]
        return tuple(s for s in found if s)

    @property
    def redacted(self) -> str:
        """The URL with the password and secret query values replaced by ``***``."""
        return redact_url(self._url)

    @property
    def endpoint(self) -> str:
        """``host:port`` for messages (no credentials)."""
        host = self.host or "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}" if self.port else host

    def __str__(self) -> str:
        return self.redacted

    def __repr__(self) -> str:
        return f"SecretUrl({self.redacted!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    @classmethod
    def _validate(cls, value: Any) -> SecretUrl:
        if isinstance(value, SecretUrl):
            return value
        if not isinstance(value, str):
            raise ValueError("expected a URL string")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: value.redacted, when_used="always"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "format": "uri", "writeOnly": True}


def short(text: str, limit: int = 160) -> str:
    """One line of at most ``limit`` characters (driver messages can be long or multi-line)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


_UNREACHABLE_ERRNOS: Final = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}
)


def network_failure(exc: BaseException, endpoint: str) -> tuple[str, str] | None:
    """Classify a network-level failure anywhere in ``exc``'s chain.

    :return: ``(reason, sentence)`` or ``None`` when the chain holds no network error.
    """
    for err in _chain(exc):
        if isinstance(err, ConnectionRefusedError):
            return Reason.CONNECTION_REFUSED, (
                f"connection refused by {endpoint}: nothing listens there "
                "(server down or wrong port)"
            )
        if isinstance(err, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return Reason.CONNECTION_RESET, f"{endpoint} closed the connection abruptly"
        if isinstance(err, socket.gaierror):
            return Reason.DNS, f"cannot resolve the host of {endpoint}: {err.strerror or err}"
        if isinstance(err, ssl.SSLCertVerificationError):
            detail = err.verify_message or err.reason or "verification failed"
            return Reason.TLS, f"TLS certificate of {endpoint} not accepted: {detail}"
        if isinstance(err, ssl.SSLError):
            return Reason.TLS, f"TLS handshake with {endpoint} failed: {err.reason or err}"
        if isinstance(err, OSError) and err.errno in _UNREACHABLE_ERRNOS:
            return Reason.UNREACHABLE, f"{endpoint} is unreachable: {err.strerror}"
    return None


@contextmanager
def timed(phases: MutableMapping[str, float], name: str) -> Iterator[None]:
    """Record the seconds spent in the ``with`` block as ``phases[name]``, even on failure."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start


_QUANTITY: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*")
_SUFFIXES: Final = {
    "": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_quantity(value: Any) -> float:
    """A number, or a string with an optional size suffix: ``100``, ``0.8``, ``512MB``, ``2GiB``.

    :raises ValueError: with the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError("expected a number such as 100, 0.8 or 512MB")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _QUANTITY.fullmatch(value)
        if match and match.group(2).lower() in _SUFFIXES:
            return float(match.group(1)) * _SUFFIXES[match.group(2).lower()]
    raise ValueError(
        f"invalid number {value!r}: use a number (100, 0.8) or a size (512MB, 1.5GiB, 100kB)"
    )
