"""Options of the ``websocket`` check type, and close codes named for messages.

Kept apart from :mod:`probed.checks.websocket` (the probe itself) to keep both short.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from probed.check import CheckOptions
from probed.checks._net import IpVersion
from probed.checks._tls import TlsOptions
from probed.options import Regex, Size
from probed.redact import CREDENTIAL_HEADERS

__all__ = ["WebSocketOptions", "close_name"]

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SET_BY_CHECK: Final = frozenset(
    {
        "upgrade",
        "connection",
        "host",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
    }
)
_CLOSE_NAMES: Final = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status code",
    1006: "abnormal closure: the connection ended without a close frame",
    1007: "invalid payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal server error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}


def close_name(code: int) -> str:
    """``1011 (internal server error)``: a close code for a message."""
    name = _CLOSE_NAMES.get(code)
    if name is None:
        name = "application-defined" if 4000 <= code <= 4999 else "unregistered code"
    return f"{code} ({name})"


class WebSocketOptions(CheckOptions):
    """Options of the ``websocket`` check type."""

    url: str = Field(description="ws:// or wss:// URL; IPv6 literals in brackets.")
    ip_version: IpVersion = Field(default="any", description="any, ip4 or ip6.")
    tls: TlsOptions = Field(
        default_factory=lambda: TlsOptions(), description="TLS settings for wss:// URLs."
    )
    subprotocol: str | None = Field(
        default=None,
        description="Subprotocol to ask for (Sec-WebSocket-Protocol); fails unless the server "
        "selects it.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers of the upgrade request (Origin, ...)."
    )
    secret_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Upgrade request headers with secret values (Authorization, API keys).",
    )
    send: str | None = Field(default=None, description="Text message to send once connected.")
    expect: Regex | None = Field(
        default=None, description="Regex a message from the server must match."
    )
    max_messages: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Messages read at most looking for expect (greetings and the like first).",
    )
    max_message_size: Size = Field(
        default=65536,
        gt=0,
        le=64 * 1024 * 1024,
        description="Largest message accepted; a larger one fails with reason body_size.",
    )
    expect_close_code: int | None = Field(
        default=None,
        ge=1000,
        le=4999,
        description="Close code the server must answer our close frame with (default: "
        "1000 or 1001).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"URL scheme must be ws or wss, got {parts.scheme or 'none'!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "credentials in the URL are not allowed: use secret_headers with a value "
                "from ${ENV} or ${file:...}"
            )
        if not parts.hostname:
            raise ValueError("URL has no host")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError("URL port must be a number from 1 to 65535") from None
        return value.strip()

    @field_validator("subprotocol")
    @classmethod
    def _subprotocol(cls, value: str | None) -> str | None:
        if value is not None and not _TOKEN_RE.fullmatch(value):
            raise ValueError(f"invalid subprotocol {value!r}: must be an HTTP token")
        return value

    @field_validator("headers", "secret_headers")
    @classmethod
    def _headers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, val in value.items():
            if not _TOKEN_RE.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in _SET_BY_CHECK:
                raise ValueError(
                    f"header {name!r} is set by the check (use subprotocol for "
                    "Sec-WebSocket-Protocol)"
                )
            text = val.get_secret_value() if isinstance(val, SecretStr) else str(val)
            if "\r" in text or "\n" in text:
                raise ValueError(f"header {name!r}: value must not contain line breaks")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WebSocketOptions:
        for name in self.headers:
            if name.lower() in CREDENTIAL_HEADERS:
                # Not "headers.<name>: ...": redaction masks text after "Authorization:".
                raise ValueError(
                    f"header {name!r} carries credentials: put it in secret_headers "
                    "so it stays secret"
                )
        host = urlsplit(self.url).hostname or ""
        if ":" in host and self.ip_version == "ip4":
            raise ValueError(f"url host {host} is an IPv6 address but ip_version is ip4")
        return self
