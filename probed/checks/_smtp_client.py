"""The bounded SMTP client of the ``smtp`` check type: reply reading, commands, STARTTLS.

Enough SMTP (RFC 5321) to say hello, upgrade, log in and try an envelope, and nothing that can
make a broken or hostile server cost more than a few kilobytes and the check's timeout:

- a reply line may be at most :data:`MAX_LINE` bytes, a reply at most :data:`MAX_REPLY_LINES`
  lines, a whole run at most :data:`MAX_RUN_BYTES` bytes; beyond that the run fails with reason
  ``protocol`` (a server that sends one endless line is read into a buffer of at most
  ``2 * MAX_LINE`` bytes: reading pauses until the line is judged);
- every read waits at most until the run's own deadline (a little before the daemon's timeout),
  so a silent server is reported as "no reply to EHLO within ..." with reason ``timeout``;
- what the server said is quoted in messages cut to :data:`MAX_SHOWN` characters, control
  characters escaped.

Failures are raised as :class:`SmtpError` (reason + sentence without the address prefix).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from typing import Final

from probed.check import Reason
from probed.checks._endpoint import BufferProtocol
from probed.checks._failures import classify
from probed.checks._tls import describe_ssl_error
from probed.checks._tlschain import Chain, read_chain
from probed.phase import format_elapsed, set_phase

__all__ = [
    "MAX_LINE",
    "MAX_REPLY_LINES",
    "MAX_RUN_BYTES",
    "MAX_SHOWN",
    "Reply",
    "SmtpError",
    "SmtpProtocol",
    "SmtpSession",
    "excerpt",
    "shown",
]

MAX_LINE: Final = 2048
"""Longest reply line accepted, CRLF included (RFC 5321 allows 512; real servers stay below)."""
MAX_REPLY_LINES: Final = 100
"""Most lines of one (multi-line) reply; an EHLO reply has about a dozen."""
MAX_RUN_BYTES: Final = 256 * 1024
"""Most bytes one run reads from the server, all replies together."""
MAX_SHOWN: Final = 200
"""Most characters of server text quoted in a message."""


def excerpt(data: bytes, limit: int = 60) -> str:
    """The start of raw server bytes for a message, quoted: ``'garbage\\x00...'``."""
    return "'" + shown(data[:limit].decode("utf-8", "replace"), limit) + "'"


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` for a message: control characters escaped, cut to ``limit`` characters."""
    clean = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class SmtpError(Exception):
    """An expected failure of the exchange: a bounded ``reason`` and a sentence for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: its three-digit code and the text of each line (without the code)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The whole reply for a message: ``250 first line / second line``, bounded."""
        return shown(f"{self.code} " + " / ".join(line for line in self.lines if line))


class SmtpProtocol(BufferProtocol):
    """The shared buffering protocol, but nothing is dropped: once a line's worth
    (plus one) is waiting, reading pauses until :meth:`resume` after the reader took lines."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, 2 * MAX_LINE)
        self.received = 0
        self.paused = False

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.buffer += data
        if len(self.buffer) >= self.limit and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake()

    def resume(self) -> None:
        """Read again after the buffer was drained below the pause mark."""
        if self.paused and self.transport is not None and len(self.buffer) < self.limit:
            self.paused = False
            self.transport.resume_reading()


def _parse_line(raw: bytes) -> tuple[int, bool, str]:
    """(code, more lines follow, text) of one reply line without its line end.

    :raises SmtpError: the line is not ``ddd[ -]text``.
    """
    head = raw[:3]
    sep = raw[3:4]
    if (
        len(head) < 3
        or not head.isdigit()
        or sep not in (b"", b" ", b"-")
        or head[0] not in b"2345"
    ):
        raise SmtpError(
            Reason.PROTOCOL,
            f"the server does not speak SMTP: it sent {excerpt(raw)}",
        )
    return int(head), sep == b"-", raw[4:].decode("utf-8", "replace").strip()


class SmtpSession:
    """Commands and replies over one connection, within one deadline (``loop.time()`` based)."""

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: SmtpProtocol,
        deadline: float,
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.deadline = deadline
        self.loop = protocol.loop
        self.chain: Chain | None = None

    async def reply(self, waiting_for: str) -> Reply:
        """Read one whole reply; ``waiting_for`` completes "no reply to ...": ``EHLO``.

        :raises SmtpError: timeout, closed connection, malformed or oversized reply.
        """
        set_phase(f"waiting for the reply to {waiting_for}")
        since = self.loop.time()
        lines: list[str] = []
        code = 0
        while True:
            raw = await self._line(waiting_for, since)
            this, more, text = _parse_line(raw)
            if lines and this != code:
                raise SmtpError(
                    Reason.PROTOCOL,
                    f"the reply to {waiting_for} mixes codes {code} and {this} "
                    "(not an SMTP server?)",
                )
            code = this
            lines.append(text)
            if not more:
                return Reply(code, tuple(lines))
            if len(lines) >= MAX_REPLY_LINES:
                raise SmtpError(
                    Reason.PROTOCOL,
                    f"the reply to {waiting_for} has more than {MAX_REPLY_LINES} lines; "
                    "probed stopped reading there",
                )

    async def _line(self, waiting_for: str, since: float) -> bytes:
        proto = self.protocol
        while True:
            end = proto.buffer.find(b"\n", 0, MAX_LINE)
            if end >= 0:
                raw = bytes(proto.buffer[:end]).rstrip(b"\r")
                del proto.buffer[: end + 1]
                proto.resume()
                return raw
            if len(proto.buffer) >= MAX_LINE:
                raise SmtpError(
                    Reason.PROTOCOL,
                    f"a line of the reply to {waiting_for} is longer than {MAX_LINE} bytes "
                    f"(it starts {excerpt(bytes(proto.buffer))}); "
                    "probed stopped reading there",
                )
            if proto.received > MAX_RUN_BYTES:
                raise SmtpError(
                    Reason.PROTOCOL,
                    f"the server sent more than {MAX_RUN_BYTES // 1024} KiB; "
                    "probed stopped reading there",
                )
            if proto.closed:
                raise self._closed(waiting_for)
            remaining = self.deadline - self.loop.time()
            if remaining <= 0:
                raise SmtpError(
                    Reason.TIMEOUT,
                    f"no reply to {waiting_for} within "
                    f"{format_elapsed(self.loop.time() - since)}"
                    + (f" (got {excerpt(bytes(proto.buffer))} so far)" if proto.buffer else ""),
                )
            try:
                async with asyncio.timeout(remaining):
                    await proto.wait()
            except TimeoutError:
                continue

    def _closed(self, waiting_for: str) -> SmtpError:
        error = self.protocol.error
        if error is not None and classify(error) == Reason.TLS:
            return SmtpError(Reason.TLS, describe_ssl_error(error))
        if error is not None and classify(error) == Reason.CONNECTION_RESET:
            return SmtpError(
                Reason.CONNECTION_RESET,
                f"connection reset while waiting for the reply to {waiting_for}",
            )
        return SmtpError(
            Reason.PROTOCOL,
            f"the server closed the connection instead of replying to {waiting_for}",
        )

    def send(self, line: str) -> None:
        """Write one command line (CRLF added)."""
        if self.transport.is_closing():
            return  # the next reply() reports the closed connection
        self.transport.write(line.encode("utf-8") + b"\r\n")

    async def command(self, line: str, name: str | None = None) -> Reply:
        """Send ``line`` and read its reply; ``name`` is what messages call the command
        (defaults to ``line``; pass it whenever the line holds anything secret)."""
        self.send(line)
        return await self.reply(name or line)

    async def starttls(self, context: ssl.SSLContext, server_name: str) -> None:
        """Upgrade the connection after the server's 220 to STARTTLS.

        Anything the server sent after that 220 is dropped unread (it arrived before the
        handshake, so it cannot be trusted: the STARTTLS command-injection attacks).

        :raises SmtpError: reason ``tls`` when the handshake or verification fails.
        """
        set_phase("in the TLS handshake after STARTTLS")
        began = self.loop.time()
        self.protocol.buffer.clear()
        self.protocol.resume()
        remaining = max(self.deadline - self.loop.time(), 0.001)
        try:
            async with asyncio.timeout(remaining):
                upgraded = await self.loop.start_tls(
                    self.transport, self.protocol, context, server_hostname=server_name
                )
        except TimeoutError:
            raise SmtpError(
                Reason.TIMEOUT,
                f"the TLS handshake after STARTTLS did not finish within "
                f"{format_elapsed(self.loop.time() - began)}",
            ) from None
        except (ssl.SSLError, OSError, EOFError) as exc:
            raise SmtpError(Reason.TLS, describe_ssl_error(exc) + " (after STARTTLS)") from None
        if upgraded is None:
            raise SmtpError(Reason.TLS, "TLS handshake failed: connection closed")
        self.transport = upgraded
        self.protocol.transport = upgraded
        self.read_chain(context)

    def read_chain(self, context: ssl.SSLContext) -> None:
        """Note the certificate chain of the TLS connection (STARTTLS or implicit TLS)."""
        sslobj = self.transport.get_extra_info("ssl_object")
        self.chain = read_chain(sslobj, verified=context.verify_mode != ssl.CERT_NONE)

    async def quit(self, budget: float = 0.5) -> None:
        """Say QUIT and wait briefly for 221; the connection is aborted afterwards anyway."""
        if self.transport.is_closing():
            return
        self.deadline = min(self.deadline, self.loop.time() + budget)
        with contextlib.suppress(SmtpError):
            await self.command("QUIT")

    def close(self) -> None:
        """Drop the connection (no TLS close_notify wait: the run is over)."""
        self.transport.abort()
