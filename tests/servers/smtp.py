"""Real SMTP servers for the ``smtp`` check's tests: aiosmtpd (AUTH, STARTTLS with trustme
certificates, implicit TLS) and stubs for what aiosmtpd will not do on demand.

aiosmtpd runs each server on its own thread and event loop (its ``Controller``), so a check
under test talks to it over real loopback sockets, and the loop guard of the test's thread
does not see the server's work.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers._stub import Handler
from tests.servers._util import free_port

if TYPE_CHECKING:  # imported at run time, it would be loaded before its own plugin registration
    from tests.servers.tls import TlsFiles

__all__ = [
    "SMTP_PASSWORD",
    "SMTP_USER",
    "RecordingHandler",
    "SmtpServers",
    "banner_554",
    "echo_auth",
    "endless_line",
    "helo_only",
    "smtp_servers",
    "stall_after_banner",
    "start_aiosmtpd",
    "starttls_injector",
]

SMTP_USER = "probe"
SMTP_PASSWORD = "Smtp-s3cret/pw+42"  # '/' and '+' : escaped differently by JSON and URLs
REJECTED_RCPT = "nobody@probed.test"


class RecordingHandler:
    """Accepts every sender and recipient but :data:`REJECTED_RCPT`; never gets DATA here."""

    def __init__(self) -> None:
        self.data_seen = 0

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address == REJECTED_RCPT:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.data_seen += 1
        return "250 2.0.0 accepted"


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class SmtpServers:
    """Ports of the running aiosmtpd servers, all on 127.0.0.1.

    - ``starttls``: offers STARTTLS (trusted certificate), AUTH PLAIN/LOGIN only after TLS.
    - ``untrusted``: offers STARTTLS with a certificate from a CA the checks do not trust.
    - ``implicit``: TLS from the first byte (port 465 style), AUTH offered.
    - ``plain``: no TLS at all, AUTH offered in clear text.
    """

    starttls: int
    untrusted: int
    implicit: int
    plain: int
    ca_file: str
    handler: RecordingHandler


def start_aiosmtpd(handler: RecordingHandler, host: str = "127.0.0.1", **kwargs: Any) -> Controller:
    """Start an aiosmtpd server on a free port of ``host`` (blocking: a thread of its own);
    ``kwargs`` go to aiosmtpd's SMTP (``tls_context``, ``auth_require_tls``...)."""
    controller = Controller(
        handler,
        hostname=host,
        port=free_port(host),
        authenticator=_authenticator,
        ident="probed-test ESMTP",
        **kwargs,
    )
    controller.start()
    return controller


@pytest.fixture(scope="module")
def smtp_servers(tls_files: TlsFiles) -> Iterator[SmtpServers]:
    """Four aiosmtpd servers for the module's tests (started once: each takes ~50 ms)."""
    handler = RecordingHandler()
    settings: list[dict[str, Any]] = [
        {"tls_context": tls_files.server_context(), "auth_require_tls": True},
        {"tls_context": tls_files.server_context(ca=trustme.CA())},
        {"ssl_context": tls_files.server_context(), "auth_require_tls": False},
        {"auth_require_tls": False},
    ]
    controllers: list[Controller] = []
    try:
        for kwargs in settings:
            controllers.append(start_aiosmtpd(handler, **kwargs))
        starttls, untrusted, implicit, plain = (int(c.port) for c in controllers)
        yield SmtpServers(
            starttls, untrusted, implicit, plain, ca_file=tls_files.ca_file, handler=handler
        )
    finally:
        for controller in controllers:
            controller.stop()


# -- stubs (tests/servers/_stub.py serves them) ---------------------------------------------------


async def banner_554(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Refuse the session at the banner, as a block list does; then wait for QUIT."""
    writer.write(b"554 5.7.1 mx.probed.test: no SMTP service for you\r\n")
    await writer.drain()
    await reader.read()


async def stall_after_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greet, then never answer (a server wedged behind its banner)."""
    writer.write(b"220 stall.probed.test ESMTP\r\n")
    await writer.drain()
    await reader.read()


async def helo_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server from before ESMTP: EHLO is unknown, HELO works."""
    writer.write(b"220 old.probed.test SMTP\r\n")
    while line := await reader.readline():
        verb = line[:4].upper()
        writer.write(
            {b"HELO": b"250 old.probed.test\r\n", b"QUIT": b"221 bye\r\n"}.get(
                verb, b"502 5.5.1 unrecognized command\r\n"
            )
        )
        await writer.drain()


def starttls_injector(context: ssl.SSLContext) -> Handler:
    """A STARTTLS server that pipelines a forged reply behind its 220 (the STARTTLS command
    injection of CVE-2011-0411, server side): a client that keeps those plain-text bytes reads
    them as the reply to its first command over TLS."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 inject.probed.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:8].upper().strip()
            if verb.startswith(b"EHLO"):
                writer.write(b"250-inject.probed.test\r\n250 STARTTLS\r\n")
            elif verb == b"STARTTLS":
                writer.write(b"220 2.0.0 go ahead\r\n554 5.7.0 injected before TLS\r\n")
                await writer.drain()
                await writer.start_tls(context)
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
            else:
                writer.write(b"502 5.5.1 unrecognized command\r\n")
            await writer.drain()

    return handler


async def endless_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Start a banner line and never end it (until the client goes away)."""
    writer.write(b"220-")
    while True:
        writer.write(b"x" * 65536)
        await writer.drain()


async def echo_auth(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Offer AUTH PLAIN in clear text and reject it, quoting the decoded credentials back."""
    writer.write(b"220 echo.probed.test ESMTP\r\n")
    while line := await reader.readline():
        command = line.decode().strip()
        if command.upper().startswith("EHLO"):
            writer.write(b"250-echo.probed.test\r\n250 AUTH PLAIN\r\n")
        elif command.upper().startswith("AUTH PLAIN "):
            blob = command[len("AUTH PLAIN ") :]
            decoded = base64.b64decode(blob).decode().replace("\0", " ").strip()
            writer.write(f"535 5.7.8 bad credentials {decoded} ({blob})\r\n".encode())
        elif command.upper() == "QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            return
        else:
            writer.write(b"502 5.5.2 not here\r\n")
        await writer.drain()
