"""Helpers shared by the database check types (``postgres``, ``redis``).

- :class:`SecretUrl`: a connection URL option whose password never leaves the process in a
  ``repr``, ``str``, ``model_dump`` or JSON Schema example; it dumps as
  ``postgresql://user:***@host:5432/db``.
- :func:`timed`: records a phase duration even when the phase fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from probed.redact import is_secret_param, redact_url

__all__ = [
    "SecretUrl",
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


def format_ms(seconds: float) -> str:
    """A phase time in a result message of a database check: ``12.3 ms``."""
    return f"{seconds * 1000:.1f} ms"


def short(text: str, limit: int = 160) -> str:
    """One line of at most ``limit`` characters (driver messages can be long or multi-line)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@contextmanager
def timed(phases: MutableMapping[str, float], name: str) -> Iterator[None]:
    """Record the seconds spent in the ``with`` block as ``phases[name]``, even on failure."""
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start
