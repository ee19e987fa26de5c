"""A byte budget for one ``postgres`` run: a hostile server cannot make asyncpg buffer gigabytes.

asyncpg trusts the length of every message: a "server" that answers the startup, or the
query, with a message header announcing 2 GiB and then streams bytes made the process grow to
1.7 GB within a 5 s timeout. asyncpg offers no limit and swaps its protocol objects during
the TLS negotiation, so the budget is enforced below it, on the socket: :class:`BoundedLoop`
is handed to ``asyncpg.connect(loop=...)``; it opens the TCP or unix socket itself as a
:class:`CountingSocket` (a ``socket.socket`` whose ``recv``/``recv_into`` count bytes) and
lets the real event loop build the transport on it. Every byte asyncpg receives, before or
after TLS, plain or encrypted, is counted; past the budget the next read raises
:class:`BudgetExceededError` (an ``OSError``, so asyncio closes the transport quietly) and the check
reports it from :attr:`Budget.exceeded`.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import socket
from collections.abc import Callable
from typing import Any, cast

__all__ = ["BoundedLoop", "Budget", "BudgetExceededError", "CountingSocket"]


class BudgetExceededError(OSError):
    """More bytes arrived than the run's budget allows."""


class Budget:
    """Bytes one run may receive; :attr:`exceeded` once a read went past :attr:`limit`."""

    __slots__ = ("exceeded", "limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.exceeded = False

    def take(self, size: int) -> None:
        """Count ``size`` received bytes; raise :class:`BudgetExceededError` past the limit."""
        self.used += size
        if self.used > self.limit:
            self.exceeded = True
            raise BudgetExceededError(f"received more than {self.limit} bytes")


class CountingSocket(socket.socket):
    """A socket whose reads are counted against a :class:`Budget`."""

    budget: Budget

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        if self.budget.exceeded:
            raise BudgetExceededError("budget exhausted")
        data = super().recv(bufsize, flags)
        self.budget.take(len(data))
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> int:
        if self.budget.exceeded:
            raise BudgetExceededError("budget exhausted")
        size = super().recv_into(buffer, nbytes, flags)
        self.budget.take(size)
        return size


def _counting(family: int, kind: int, proto: int, budget: Budget) -> CountingSocket:
    sock = CountingSocket(family, kind, proto)
    sock.budget = budget
    sock.setblocking(False)
    return sock


def _reads_python_sockets(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` reads a transport's socket through the socket object's own methods
    (asyncio's selector loops: a :class:`CountingSocket` sees every byte). uvloop reads the
    descriptor in C, so there the count is taken in the protocol (:func:`_counted`)."""
    return isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)


class _Counting:
    """What both counting protocols share: passing calls on to ``inner``, and the count."""

    inner: Any
    budget: Budget
    transport: asyncio.Transport | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.inner.connection_made(transport)

    def _spend(self, size: int) -> bool:
        """Count ``size`` bytes; past the budget, abort the connection and return False."""
        try:
            self.budget.take(size)
        except BudgetExceededError:
            if self.transport is not None:
                self.transport.abort()
            return False
        return True

    def eof_received(self) -> bool | None:
        return cast("bool | None", self.inner.eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and self.budget.exceeded:
            exc = BudgetExceededError(f"received more than {self.budget.limit} bytes")
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Counted(_Counting, asyncio.Protocol):
    """Counts what reaches ``inner`` (a plain protocol) against a budget; past it, aborts."""

    def __init__(self, inner: asyncio.Protocol, budget: Budget) -> None:
        self.inner, self.budget, self.transport = inner, budget, None

    def data_received(self, data: bytes) -> None:
        if self._spend(len(data)):
            self.inner.data_received(data)


class _CountedBuffered(_Counting, asyncio.BufferedProtocol):
    """The same for a buffered protocol (a TLS layer's): counted in ``buffer_updated``."""

    def __init__(self, inner: asyncio.BufferedProtocol, budget: Budget) -> None:
        self.inner, self.budget, self.transport = inner, budget, None

    def get_buffer(self, sizehint: int) -> Any:
        return self.inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        if self._spend(nbytes):
            self.inner.buffer_updated(nbytes)


def _counted(
    inner: asyncio.BaseProtocol, budget: Budget, transport: asyncio.BaseTransport | None = None
) -> asyncio.BaseProtocol:
    """``inner`` behind a counting protocol (``transport``: the one it already serves)."""
    counted: _Counted | _CountedBuffered
    # uvloop's own TLS layer has get_buffer/buffer_updated without deriving from the class
    if isinstance(inner, asyncio.BufferedProtocol) or hasattr(inner, "buffer_updated"):
        counted = _CountedBuffered(cast(asyncio.BufferedProtocol, inner), budget)
    else:
        counted = _Counted(cast(asyncio.Protocol, inner), budget)
    counted.transport = cast("asyncio.Transport | None", transport)
    return counted


class _CountingTransport:
    """A raw transport as asyncpg sees it on a loop that reads in C: a protocol asyncpg sets
    on it (its plain fallback after an SSL request the server declined) is counted too."""

    def __init__(self, real: asyncio.BaseTransport, budget: Budget) -> None:
        self.real, self._budget = real, budget

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.real.set_protocol(_counted(protocol, self._budget, self.real))

    def get_protocol(self) -> asyncio.BaseProtocol:
        protocol = self.real.get_protocol()
        return protocol.inner if isinstance(protocol, (_Counted, _CountedBuffered)) else protocol


class BoundedLoop:
    """The running loop, except that the connections asyncpg opens count what they receive.

    Everything but :meth:`create_connection` and :meth:`create_unix_connection` is the real
    loop's (futures, timers and TLS belong to it).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, budget: Budget) -> None:
        self._loop = loop
        self.budget = budget
        self.tcp = False
        """Whether the last connection opened is a TCP one (not a unix socket)."""
        self.tls = False
        """Whether TLS was started on the last connection opened."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def _connect(self, host: str, port: int) -> CountingSocket:
        infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        errors: list[OSError] = []
        for family, kind, proto, _, address in infos:
            sock = _counting(family, kind, proto, self.budget)
            try:
                await self._loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                errors.append(exc)
            except BaseException:
                sock.close()
                raise
            else:
                return sock
        if len(errors) == 1:
            raise errors[0]
        raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """Connect a :class:`CountingSocket` to ``host:port``, then the real loop's transport."""
        if kwargs.get("sock") is not None or host is None or port is None:
            return await self._loop.create_connection(
                protocol_factory,
                host,  # type: ignore[arg-type]
                port,  # type: ignore[arg-type]
                **kwargs,
            )
        sock = await self._connect(host, port)
        self.tcp, self.tls = True, bool(kwargs.get("ssl"))
        if kwargs.get("ssl") and "server_hostname" not in kwargs:
            kwargs["server_hostname"] = host  # implied by host, but not with sock=
        try:
            if _reads_python_sockets(self._loop):
                return await self._loop.create_connection(protocol_factory, sock=sock, **kwargs)
            made: list[asyncio.BaseProtocol] = []

            def counted() -> asyncio.BaseProtocol:
                made.append(protocol_factory())
                return _counted(made[0], self.budget)

            transport, _ = await self._loop.create_connection(counted, sock=sock, **kwargs)
            return _CountingTransport(transport, self.budget), made[0]  # type: ignore[return-value]
        except BaseException:
            sock.close()
            raise

    async def start_tls(self, transport: asyncio.BaseTransport, *args: Any, **kwargs: Any) -> Any:
        """The real loop's ``start_tls``, noting that the connection is now TLS (and, on a
        loop that reads in C, counting again below the new TLS layer it put in place)."""
        if isinstance(transport, _CountingTransport):
            transport = transport.real
        tls = await self._loop.start_tls(transport, *args, **kwargs)  # type: ignore[arg-type]
        self.tls = True
        if not _reads_python_sockets(self._loop):
            layer = transport.get_protocol()  # the TLS layer start_tls put in place
            if not isinstance(layer, (_Counted, _CountedBuffered)):
                transport.set_protocol(_counted(layer, self.budget, transport))
        return tls

    async def create_unix_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        path: str | None = None,
        **kwargs: Any,
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """The same for a unix socket path."""
        if kwargs.get("sock") is not None or path is None:
            return await self._loop.create_unix_connection(protocol_factory, path, **kwargs)
        sock = _counting(socket.AF_UNIX, socket.SOCK_STREAM, 0, self.budget)
        self.tcp = self.tls = False
        try:
            await self._loop.sock_connect(sock, path)
            if _reads_python_sockets(self._loop):
                return await self._loop.create_unix_connection(
                    protocol_factory, sock=sock, **kwargs
                )
            made: list[asyncio.BaseProtocol] = []

            def counted() -> asyncio.BaseProtocol:
                made.append(protocol_factory())
                return _counted(made[0], self.budget)

            transport, _ = await self._loop.create_unix_connection(counted, sock=sock, **kwargs)
            return _CountingTransport(transport, self.budget), made[0]  # type: ignore[return-value]
        except BaseException:
            sock.close()
            raise
