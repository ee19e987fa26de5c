"""The bounded SSH identification exchange of the ``ssh`` check, and its hand-over to asyncssh.

RFC 4253 section 4.2: after the TCP connection the server sends its identification line,
``SSH-protoversion-softwareversion [comments]`` ended by CRLF, and may send other lines before
it. :class:`BannerProtocol` buffers at most :data:`MAX_PRELUDE` bytes looking for that line,
so a server that sends megabytes of garbage (or an HTTP server that sends nothing) costs a
bounded amount, and without asyncssh: a banner-only check needs no extra.

When the check goes on to the key exchange, :class:`Handoff` gives the *same* TCP connection to
asyncssh through its tunnel interface (an object with ``create_connection``): asyncssh's
connection object becomes the protocol and receives everything buffered so far, identification
line included, so the banner is read (and timed) once and asyncssh still parses it itself.

Host key fingerprints are handled here too: :func:`parse_fingerprint` reads what people paste
(``ssh-keygen -lf`` output, with or without the key size and comment).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from time import perf_counter
from typing import Any, Final

from probed.check import Reason
from probed.checks._endpoint import BufferProtocol
from probed.checks._failures import describe
from probed.options import format_duration, format_size

__all__ = [
    "MAX_LINE_SHOWN",
    "MAX_PRELUDE",
    "BannerProtocol",
    "Handoff",
    "RunError",
    "excerpt",
    "find_identification",
    "parse_fingerprint",
    "read_banner",
]

MAX_PRELUDE: Final = 8192
"""Most bytes read looking for the identification line (asyncssh's own line limit)."""

MAX_VERSION_LINE: Final = 255
"""RFC 4253: the identification line, CRLF included, is at most 255 characters."""

MAX_LINE_SHOWN: Final = 200
"""Longest banner or output line quoted in a message."""

_FINGERPRINT_RE: Final = re.compile(r"SHA256:([A-Za-z0-9+/]{43})=?")


class RunError(Exception):
    """An expected failure of an ``ssh`` run: reason and sentence (without the address)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_fingerprint(text: str) -> str:
    """``SHA256:<43 base64 characters>`` from a fingerprint or a whole ``ssh-keygen -lf`` line.

    :raises ValueError: naming the accepted forms (MD5 fingerprints are refused with a hint).
    """
    found = _FINGERPRINT_RE.findall(text)
    if len(found) == 1:
        return f"SHA256:{found[0]}"
    if len(found) > 1:
        raise ValueError(f"{text!r} holds {len(found)} fingerprints: give one per list item")
    if text.strip().upper().startswith("MD5:") or re.search(r"([0-9a-f]{2}:){15}", text):
        raise ValueError(
            f"{text!r} is an MD5 fingerprint: give the SHA256 one, as "
            "'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' prints it (SHA256:...)"
        )
    raise ValueError(
        f"invalid host key fingerprint {text!r}: expected SHA256: followed by 43 base64 "
        "characters, as 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub' prints it"
    )


def excerpt(data: bytes, limit: int = 60) -> str:
    """A short, printable quote of what a server sent."""
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > limit else ""))


def find_identification(data: bytes) -> tuple[str, bytes] | None:
    """The identification line (``SSH-...`` without CRLF) if a whole one is in ``data``.

    Lines before it that do not start with ``SSH-`` are skipped (the RFC allows them).

    :return: (line, the skipped lines joined), or ``None`` when no whole line starts with
        ``SSH-`` yet.
    """
    start = 0
    while (end := data.find(b"\n", start)) >= 0:
        line = data[start:end].rstrip(b"\r")
        if line.startswith(b"SSH-"):
            return line.decode("utf-8", "replace"), data[:start]
        start = end + 1
    return None


class BannerProtocol(BufferProtocol):
    """Buffers what the server sends (at most :data:`MAX_PRELUDE` bytes) until handed over.

    After :meth:`hand_over` every event goes to the new protocol (asyncssh's connection).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, MAX_PRELUDE)
        self._target: Any = None

    def data_received(self, data: bytes) -> None:
        if self._target is not None:
            self._target.data_received(data)
        else:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        if self._target is not None:
            return bool(self._target.eof_received())
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._target is not None:
            self._target.connection_lost(exc)
        else:
            super().connection_lost(exc)

    def hand_over(self, target: Any) -> None:
        """From now on ``target`` is the connection's protocol; it gets the buffered bytes."""
        assert self.transport is not None
        self._target = target
        target.connection_made(self.transport)
        data, self.buffer = bytes(self.buffer), bytearray()
        if data:
            target.data_received(data)


class Handoff:
    """asyncssh's tunnel interface over a connection whose banner was already read.

    asyncssh calls :meth:`create_connection` with its connection factory instead of opening a
    socket; the factory's protocol takes over :class:`BannerProtocol`'s transport.
    """

    def __init__(self, transport: asyncio.Transport, protocol: BannerProtocol) -> None:
        self.transport = transport
        self.protocol = protocol
        self.used = False

    async def create_connection(
        self, session_factory: Any, remote_host: str, remote_port: int
    ) -> tuple[Any, Any]:
        """Hand the connection to the session ``session_factory`` makes (once)."""
        if self.used:
            raise OSError("the SSH connection was already handed over")
        if self.protocol.closed:
            raise ConnectionResetError("the server closed the connection after its banner")
        self.used = True
        session = session_factory()
        self.protocol.hand_over(session)
        return self.transport, session

    def close(self) -> None:
        """Close the connection (asyncssh's tunnel interface)."""
        self.transport.abort()

    async def wait_closed(self) -> None:
        """Nothing to wait for: the connection is asyncssh's own."""


async def read_banner(
    proto: BannerProtocol, deadline: float, timeout: float, expect: re.Pattern[str] | None
) -> str:
    """Wait (until ``deadline``, a :func:`~time.perf_counter` time) for the identification line.

    :param timeout: the span up to ``deadline``, for messages.
    :param expect: the ``expect_banner`` pattern, if any.
    :return: the line, cut for a message.
    :raises RunError: ``protocol`` (not SSH, or not SSH 2), ``assertion`` (``expect``
        does not match), ``timeout`` (nothing arrived), or the reason of a reset connection.
    """
    while True:
        data = bytes(proto.buffer)
        found = find_identification(data)
        if found is not None:
            return _judge(found[0], expect)
        if len(data) >= MAX_PRELUDE:
            raise RunError(
                Reason.PROTOCOL,
                f"no SSH identification line in the first {format_size(MAX_PRELUDE)}, got "
                f"{excerpt(data)}: is it an SSH server on that port?",
            )
        if proto.closed:
            failure = describe(proto.error, "") if proto.error is not None else None
            if not data and failure is not None and failure[0] != Reason.CONNECTION_RESET:
                raise RunError(failure[0], failure[1].strip())
            if not data:
                raise RunError(
                    Reason.CONNECTION_RESET if failure else Reason.PROTOCOL,
                    "the server closed the connection without sending an SSH identification "
                    "line (MaxStartups reached, TCP wrappers, or not an SSH server)",
                )
            raise RunError(
                Reason.PROTOCOL,
                f"not an SSH server: it sent {excerpt(data)} and closed the connection",
            )
        remaining = deadline - perf_counter()
        if remaining <= 0:
            if not data:
                raise RunError(
                    Reason.TIMEOUT,
                    "connected, but no SSH identification line arrived within "
                    f"{format_duration(timeout)} (server overloaded, or a service that waits "
                    "for the client to speak first)",
                )
            raise RunError(
                Reason.PROTOCOL,
                f"not an SSH server: it sent {excerpt(data)} and no SSH identification line "
                "within the timeout",
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await proto.wait()


def _judge(line: str, expect: re.Pattern[str] | None) -> str:
    shown = line if len(line) <= MAX_LINE_SHOWN else line[:MAX_LINE_SHOWN] + "…"
    if len(line) + 2 > MAX_VERSION_LINE:
        raise RunError(
            Reason.PROTOCOL,
            f"the identification line is {len(line) + 2} bytes long, more than the "
            f"{MAX_VERSION_LINE} SSH allows: {shown!r}",
        )
    version = line[4:].split("-", 1)[0]
    if version not in ("2.0", "1.99"):
        raise RunError(
            Reason.PROTOCOL,
            f"the server speaks SSH protocol {version} only ({shown!r}); probed speaks SSH 2",
        )
    if expect is not None and not expect.search(line):
        raise RunError(
            Reason.ASSERTION, f"banner {shown!r} does not match /{expect.pattern}/ (expect_banner)"
        )
    return shown
