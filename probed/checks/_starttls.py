"""STARTTLS: the plain-text exchange that asks a server to switch to TLS on the same connection.

:func:`negotiate` speaks one of :data:`PROTOCOLS` on an asyncio stream until the server has
agreed to start TLS, and raises :class:`StartTlsError` (a bounded reason and a sentence) when it
does not. Every exchange is small and bounded: lines of at most :data:`MAX_LINE` bytes, replies
of at most :data:`MAX_REPLY_LINES` lines, an LDAP response of at most :data:`MAX_LDAP` bytes.
Timeouts are the check's: each wait declares its phase, so a server that never answers is
reported as "timeout while waiting for the SMTP greeting".

- ``smtp`` (RFC 3207): greeting 220, ``EHLO``, 250 listing STARTTLS, ``STARTTLS``, 220.
- ``imap`` (RFC 3501): greeting ``* OK``, ``a1 STARTTLS``, ``a1 OK``.
- ``pop3`` (RFC 2595): greeting ``+OK``, ``STLS``, ``+OK``.
- ``ftp`` (RFC 4217): greeting 220, ``AUTH TLS``, 234.
- ``postgres``: the SSLRequest message, answer ``S`` (``N``: the server has ``ssl = off``).
- ``ldap`` (RFC 4511): the StartTLS extended request, an extended response with resultCode 0.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Final, Literal

from probed.check import Reason
from probed.phase import set_phase

__all__ = [
    "MAX_LDAP",
    "MAX_LINE",
    "MAX_REPLY_LINES",
    "PROTOCOLS",
    "StartTls",
    "StartTlsError",
    "negotiate",
]

StartTls = Literal["smtp", "imap", "pop3", "postgres", "ldap", "ftp"]
PROTOCOLS: Final[tuple[str, ...]] = ("smtp", "imap", "pop3", "postgres", "ldap", "ftp")

MAX_LINE: Final = 4096
"""Longest line read before TLS (SMTP allows 512 bytes; greetings with banners run longer)."""

MAX_REPLY_LINES: Final = 64
"""Most lines of one multi-line reply (an EHLO answer lists a dozen extensions)."""

MAX_LDAP: Final = 4096
"""Largest LDAP extended response accepted (a real one is a few dozen bytes)."""

_SSL_REQUEST: Final = struct.pack("!II", 8, 80877103)
_LDAP_STARTTLS_OID: Final = b"1.3.6.1.4.1.1466.20037"
# LDAPMessage { messageID 1, extendedReq [APPLICATION 23] { requestName [0] OID } }
_LDAP_REQUEST: Final = (
    b"\x30"
    + bytes([5 + 2 + len(_LDAP_STARTTLS_OID)])
    + b"\x02\x01\x01"
    + b"\x77"
    + bytes([2 + len(_LDAP_STARTTLS_OID)])
    + b"\x80"
    + bytes([len(_LDAP_STARTTLS_OID)])
    + _LDAP_STARTTLS_OID
)
_LDAP_RESULTS: Final = {
    1: "operationsError",
    2: "protocolError (StartTLS not supported?)",
    52: "unavailable",
    53: "unwillingToPerform",
}


class StartTlsError(Exception):
    """The server did not agree to start TLS: ``reason`` (bounded) and ``detail`` (a sentence)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _show(line: bytes, limit: int = 80) -> str:
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


async def _line(reader: asyncio.StreamReader, what: str) -> bytes:
    set_phase(f"waiting for {what}")
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise StartTlsError(
            Reason.PROTOCOL,
            f"a line longer than {MAX_LINE} bytes in {what} (is it the right protocol?)",
        ) from None
    except asyncio.IncompleteReadError as exc:
        got = f" after {_show(exc.partial)}" if exc.partial else ""
        raise StartTlsError(
            Reason.PROTOCOL, f"the server closed the connection while sending {what}{got}"
        ) from None
    return line


async def _coded_reply(reader: asyncio.StreamReader, what: str) -> tuple[int, list[bytes]]:
    """An SMTP/FTP reply: ``250-...`` lines then ``250 ...``; (code, lines)."""
    lines: list[bytes] = []
    while True:
        line = await _line(reader, what)
        lines.append(line)
        code = line[:3]
        if len(line) < 4 or not code.isdigit():
            raise StartTlsError(Reason.PROTOCOL, f"{what} is not a numbered reply: {_show(line)}")
        if line[3:4] != b"-":
            return int(code), lines
        if len(lines) >= MAX_REPLY_LINES:
            raise StartTlsError(Reason.PROTOCOL, f"{what} has more than {MAX_REPLY_LINES} lines")


def _expect_code(code: int, lines: list[bytes], want: int, what: str, hint: str = "") -> None:
    if code != want:
        raise StartTlsError(Reason.PROTOCOL, f"{what} is {_show(lines[-1])}, expected {want}{hint}")


async def _smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    code, lines = await _coded_reply(reader, "the SMTP greeting")
    _expect_code(code, lines, 220, "the SMTP greeting")
    writer.write(f"EHLO {name}\r\n".encode())
    code, lines = await _coded_reply(reader, "the SMTP EHLO reply")
    _expect_code(code, lines, 250, "the SMTP EHLO reply")
    if not any(line[4:].strip().upper().startswith(b"STARTTLS") for line in lines[1:]):
        raise StartTlsError(
            Reason.PROTOCOL,
            f"the SMTP server does not offer STARTTLS (its EHLO reply has {len(lines)} lines, "
            "none STARTTLS)",
        )
    writer.write(b"STARTTLS\r\n")
    code, lines = await _coded_reply(reader, "the SMTP STARTTLS reply")
    _expect_code(code, lines, 220, "the SMTP STARTTLS reply")


async def _ftp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    code, lines = await _coded_reply(reader, "the FTP greeting")
    _expect_code(code, lines, 220, "the FTP greeting")
    writer.write(b"AUTH TLS\r\n")
    code, lines = await _coded_reply(reader, "the FTP AUTH TLS reply")
    _expect_code(code, lines, 234, "the FTP AUTH TLS reply", " (is FTPS enabled?)")


async def _imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    greeting = await _line(reader, "the IMAP greeting")
    if not greeting.upper().startswith(b"* OK"):
        raise StartTlsError(
            Reason.PROTOCOL, f"the IMAP greeting is {_show(greeting)}, expected '* OK'"
        )
    writer.write(b"a1 STARTTLS\r\n")
    for _ in range(MAX_REPLY_LINES):
        line = await _line(reader, "the IMAP STARTTLS reply")
        if line.startswith(b"a1 "):
            if line[3:].upper().startswith(b"OK"):
                return
            raise StartTlsError(
                Reason.PROTOCOL,
                f"the IMAP server refused STARTTLS: {_show(line)}",
            )
    raise StartTlsError(
        Reason.PROTOCOL, f"no tagged IMAP STARTTLS reply within {MAX_REPLY_LINES} lines"
    )


async def _pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    greeting = await _line(reader, "the POP3 greeting")
    if not greeting.startswith(b"+OK"):
        raise StartTlsError(
            Reason.PROTOCOL, f"the POP3 greeting is {_show(greeting)}, expected '+OK'"
        )
    writer.write(b"STLS\r\n")
    line = await _line(reader, "the POP3 STLS reply")
    if not line.startswith(b"+OK"):
        raise StartTlsError(Reason.PROTOCOL, f"the POP3 server refused STLS: {_show(line)}")


async def _postgres(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    writer.write(_SSL_REQUEST)
    set_phase("waiting for the PostgreSQL SSLRequest answer")
    answer = await reader.read(1)
    if answer == b"S":
        return
    if answer == b"N":
        raise StartTlsError(
            Reason.TLS,
            "the PostgreSQL server does not accept TLS (answered N to the SSLRequest: "
            "ssl = off in postgresql.conf?)",
        )
    if not answer:
        raise StartTlsError(
            Reason.PROTOCOL, "the server closed the connection after the PostgreSQL SSLRequest"
        )
    raise StartTlsError(
        Reason.PROTOCOL,
        f"answer {answer!r} to the PostgreSQL SSLRequest (is it PostgreSQL on that port?)",
    )


def _ber_length(data: bytes, pos: int) -> tuple[int, int] | None:
    """(length, position after the length) at ``pos``, None if more bytes are needed."""
    if pos >= len(data):
        return None
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 4:
        raise StartTlsError(Reason.PROTOCOL, "the LDAP response has an invalid BER length")
    if pos + 1 + count > len(data):
        return None
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _ber_tlv(data: bytes, pos: int, tag: int, what: str) -> tuple[int, int]:
    if pos >= len(data) or data[pos] != tag:
        raise StartTlsError(Reason.PROTOCOL, f"the LDAP response has no {what}")
    found = _ber_length(data, pos + 1)
    if found is None or found[1] + found[0] > len(data):
        raise StartTlsError(Reason.PROTOCOL, f"the LDAP response's {what} is truncated")
    return found[1], found[1] + found[0]


async def _ldap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    writer.write(_LDAP_REQUEST)
    set_phase("waiting for the LDAP StartTLS response")
    data = b""
    while True:
        if data and data[0] != 0x30:
            raise StartTlsError(
                Reason.PROTOCOL, f"not an LDAP message: {data[:16]!r} (is it LDAP on that port?)"
            )
        found = _ber_length(data, 1)
        if found is not None:
            length, start = found
            if start + length > MAX_LDAP:
                raise StartTlsError(Reason.PROTOCOL, f"the LDAP response is over {MAX_LDAP} bytes")
            if len(data) >= start + length:
                break
        chunk = await reader.read(MAX_LDAP)
        if not chunk:
            raise StartTlsError(
                Reason.PROTOCOL,
                "the server closed the connection before answering the LDAP StartTLS request",
            )
        data += chunk
        if len(data) > MAX_LDAP + 8:
            raise StartTlsError(Reason.PROTOCOL, f"the LDAP response is over {MAX_LDAP} bytes")
    body_start, body_end = found[1], found[1] + found[0]
    msg = data[:body_end]
    _, pos = _ber_tlv(msg, body_start, 0x02, "message ID")
    op_start, _ = _ber_tlv(msg, pos, 0x78, "extended response")
    code_start, code_end = _ber_tlv(msg, op_start, 0x0A, "result code")
    code = int.from_bytes(msg[code_start:code_end], "big")
    if code != 0:
        meaning = _LDAP_RESULTS.get(code, "")
        raise StartTlsError(
            Reason.PROTOCOL,
            f"the LDAP server refused StartTLS: resultCode {code}"
            + (f" ({meaning})" if meaning else ""),
        )


_EXCHANGES: Final = {
    "smtp": _smtp,
    "imap": _imap,
    "pop3": _pop3,
    "postgres": _postgres,
    "ldap": _ldap,
    "ftp": _ftp,
}


async def negotiate(
    kind: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    client_name: str = "localhost",
) -> None:
    """Speak ``kind``'s STARTTLS exchange; return when the server is ready for the handshake.

    The reader must have been made with ``limit=MAX_LINE`` (so one line is bounded).

    :param client_name: the name given in SMTP's ``EHLO``.
    :raises StartTlsError: the server did not agree (reason ``protocol``, or ``tls`` when a
        PostgreSQL server has TLS off).
    :raises OSError: the connection failed (the caller classifies it).
    """
    await _EXCHANGES[kind](reader, writer, client_name)
