"""The ``grpc`` check's own connection to the target, handed to grpcio through a private relay.

grpcio's client owns its sockets: it cannot say how long the TCP connect or the TLS handshake
took, cannot show the server's certificate, and cannot skip verification (``tls.verify:
false``). So the check connects by itself with :func:`probed.checks._net.open_connection`
(resolve, connect and TLS phases, the shared TLS options and messages, the certificate) and
lets grpcio speak HTTP/2 over that connection: grpcio is pointed at a listening socket in
Linux's abstract Unix namespace, and :class:`Relay` copies bytes between the one connection
grpcio makes to it and the target.

The relay is private to the run: it accepts one connection, and only from this process
(``SO_PEERCRED``), so another local process cannot ride the check's connection (and its
client certificate). Every byte from the target counts against ``limit``; past it both sides
are cut, so a server that never stops sending costs ``limit`` bytes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import struct
from typing import Final, cast

__all__ = ["Relay", "peer_pid"]

_PEERCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_pid(sock: socket.socket) -> int | None:
    """The process id at the other end of a Unix socket (Linux), or None when unknown."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, _PEERCRED.size)
    except OSError:
        return None
    return int(_PEERCRED.unpack(raw)[0])


class _Upstream(asyncio.Protocol):
    """The target's side: forwards what the server sends to grpcio's connection."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def data_received(self, data: bytes) -> None:
        self.relay.from_target(data)

    def eof_received(self) -> bool | None:
        self.relay.target_closed(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.target_closed(exc)


class _Local(asyncio.Protocol):
    """grpcio's side: forwards its requests to the target."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: typed, not checked
        self.transport = transport = cast(asyncio.Transport, transport)
        self.relay.local_connected(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport is self.relay.local:
            self.relay.to_target(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is self.relay.local:
            self.relay.local = None


class Relay:
    """Copies bytes between grpcio (on a private Unix socket) and the target connection.

    Use: ``relay = Relay(limit)``; connect to the target with ``relay.protocol`` as the
    protocol factory and hand the transport to :meth:`attach`; ``await relay.listen()``; point
    grpcio at :attr:`target`; :meth:`close` at the end.

    :param limit: bytes the target may send in total; past it both connections are cut and
        :attr:`exceeded` is set.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.name = f"probed-grpc-{os.getpid()}-{secrets.token_hex(8)}"
        self.target = f"unix-abstract:{self.name}"
        """The grpcio channel target of the relay."""
        self.received = 0
        self.exceeded = False
        self.upstream: asyncio.Transport | None = None
        self.local: asyncio.Transport | None = None
        self.target_error: Exception | None = None
        """Why the target's connection ended (a TLS alert, a reset), if it ended with an error."""
        self.target_gone = False
        self.strangers = 0
        """Connections refused because they came from another process (or came second)."""
        self._pending = bytearray()
        self._server: asyncio.AbstractServer | None = None

    def protocol(self) -> asyncio.Protocol:
        """The protocol factory for the target connection."""
        return _Upstream(self)

    def attach(self, transport: asyncio.Transport) -> None:
        """Use ``transport`` (the connected, possibly TLS, target connection) upstream."""
        self.upstream = transport

    async def listen(self) -> None:
        """Start the private listener grpcio connects to."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: _Local(self), path="\0" + self.name, backlog=4
        )

    def local_connected(self, transport: asyncio.Transport) -> None:
        """Accept grpcio's connection: the first one, and only from this process."""
        sock = transport.get_extra_info("socket")
        pid = peer_pid(sock) if sock is not None else None
        if self.local is not None or (pid is not None and pid != os.getpid()):
            self.strangers += 1
            transport.abort()
            return
        self.local = transport
        if self._pending:
            transport.write(bytes(self._pending))
            self._pending.clear()
        if self.target_gone:
            transport.close()

    def from_target(self, data: bytes) -> None:
        """Bytes from the target: count them, then pass them on (or hold them for grpcio)."""
        self.received += len(data)
        if self.received > self.limit:
            self.exceeded = True
            self._cut()
            return
        if self.local is not None:
            self.local.write(data)
        else:
            self._pending += data

    def to_target(self, data: bytes) -> None:
        """Bytes from grpcio: send them to the target."""
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.write(data)

    def target_closed(self, exc: Exception | None) -> None:
        """The target hung up (or its connection failed): let grpcio see the end too."""
        self.target_gone = True
        if exc is not None and self.target_error is None:
            self.target_error = exc
        if self.local is not None:
            self.local.close()

    def _cut(self) -> None:
        for transport in (self.upstream, self.local):
            if transport is not None:
                transport.abort()
        self._pending.clear()

    def close(self) -> None:
        """Stop listening and drop both connections (not awaitable, so a second cancellation
        of the run cannot leave the listener open)."""
        self._cut()
        if self._server is not None:
            self._server.close()
            self._server = None
