"""What the check types that connect to one ``host:port`` share (``tcp``, ``grpc``, ``smtp``...).

- :func:`parse_address`: ``host:port`` / ``[v6addr]:port`` with a sentence on error;
  :func:`split_address` splits what :func:`probed.checks._net.format_addr` wrote, cheaply.
- :class:`EndpointOptions`: the ``address``, ``ip_version`` and ``tls`` options; subclass it
  (:class:`AddressOptions` without ``tls``).
- :class:`BufferProtocol`: an ``asyncio.Protocol`` that buffers what the server sends, at most
  ``limit`` bytes, and wakes a reader.

A check type module must not import another (tests/checks/test_consistency.py), so these live
here rather than in ``tcp``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Final, cast

from pydantic import Field, field_validator, model_validator

from probed.check import CheckOptions
from probed.checks._net import IpVersion
from probed.checks._tls import TlsOptions, tls_shorthand

__all__ = [
    "AddressOptions",
    "BufferProtocol",
    "EndpointOptions",
    "parse_address",
    "split_address",
]

_ADDRESS_RE: Final = re.compile(r"\[([0-9a-fA-F:.%a-zA-Z]+)\]:(\d+)|([^:\[\]\s]+):(\d+)")


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from ``host:port`` or ``[v6addr]:port``.

    :raises ValueError: explaining the expected form.
    """
    match = _ADDRESS_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(
            f"invalid address {text!r}: use host:port, or [::1]:port for IPv6 addresses"
        )
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 1 <= port <= 65535:
        raise ValueError(f"invalid port {port} in {text!r}: must be 1-65535")
    return host, port


def split_address(where: str) -> tuple[str, int]:
    """(host, port) from what :func:`probed.checks._net.format_addr` wrote (``host:port``, or
    ``[v6addr]:port`` for a host with a colon): cheaper than :func:`parse_address`, for a
    check that keeps its address as text and splits it on each run."""
    host, _, port = where.rpartition(":")
    return (host[1:-1] if host[0] == "[" else host), int(port)


class AddressOptions(CheckOptions):
    """``address`` and ``ip_version``: the options of a check that connects to one
    ``host:port`` (``ssh``); :class:`EndpointOptions` adds ``tls``. Subclass it to add your own
    (name your validators differently: a method of the same name replaces these)."""

    address: str = Field(description="host:port, or [IPv6]:port.")
    ip_version: IpVersion = Field(default="any", description="any, ip4 or ip6.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_address(value)
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> AddressOptions:
        host, _ = parse_address(self.address)
        if ":" in host and self.ip_version == "ip4":
            raise ValueError(f"address {host} is an IPv6 address but ip_version is ip4")
        return self


class EndpointOptions(AddressOptions):
    """``address``, ``ip_version`` and ``tls``: the options of a check that connects to one
    ``host:port``, optionally over TLS (``tcp``, ``grpc``); subclass it to add your own."""

    tls: TlsOptions | None = Field(
        default=None,
        description="Wrap the connection in TLS: true, or a mapping of TLS settings.",
    )

    @field_validator("tls", mode="before")
    @classmethod
    def _tls(cls, value: Any) -> Any:
        return tls_shorthand(value)


class BufferProtocol(asyncio.Protocol):
    """Buffers what the server sends (at most ``limit`` bytes) and wakes the reader.

    Once ``limit`` bytes are in, reading is paused and anything more is dropped: a server that
    never stops sending costs ``limit`` bytes, not what it managed to send before the reader
    woke up.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.buffer = bytearray()
        self.closed = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: typed, not checked
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        room = self.limit - len(self.buffer)
        if room > 0:
            self.buffer += data[:room]
        if len(self.buffer) >= self.limit and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.closed = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self) -> None:
        """Wait for more data or the end of the connection."""
        self.waiter = self.loop.create_future()
        await self.waiter
