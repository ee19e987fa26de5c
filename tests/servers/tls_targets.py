"""TLS targets for the ``tls`` check's tests: certificate chains with chosen expiry dates, plain
TLS servers, STARTTLS servers (aiosmtpd for SMTP; small threaded servers speaking the IMAP, POP3,
FTP and LDAP exchanges before a real handshake) and PostgreSQL with ``ssl = on``.

Chains are built with ``cryptography`` (trustme's CAs have no common name and no settable
expiry): a root, an intermediate and a leaf, each with a CN, so messages can be asserted on.

Fixtures:

- ``tls_chains``: a session-wide root CA (its PEM in ``ca_file``) minting :class:`ServerCert`
  chains: ``tls_chains.issue("127.0.0.1", leaf_days=90, intermediate_days=30)``.
- ``tls_smtp_server``: aiosmtpd offering STARTTLS with a valid chain (function-scoped).
- ``tls_postgres``: a throwaway PostgreSQL with ``ssl = on`` serving a valid chain, made with
  ``postgres_factory`` (so the shared server keeps ``ssl = off``).

:func:`tls_server` and :func:`starttls_server` (threads with blocking sockets, one connection
at a time) and :func:`serve` (an asyncio plain-text server for stubs that misbehave) are async
context managers yielding the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import tempfile
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers._util import free_port

__all__ = [
    "ROOT_CN",
    "ServerCert",
    "TlsChains",
    "serve",
    "starttls_server",
    "tls_server",
]

ROOT_CN: Final = "probed test root"
INTERMEDIATE_CN: Final = "probed test intermediate"
_DAY: Final = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class ServerCert:
    """A leaf with its chain in a PEM file, and the notAfter of every certificate."""

    chain_file: str
    key_file: str
    leaf_not_after: float
    intermediate_not_after: float | None
    root_not_after: float | None

    def context(
        self, *, max_version: ssl.TLSVersion | None = None, tls10_only: bool = False
    ) -> ssl.SSLContext:
        """A server context serving this chain (optionally capped, or TLS 1.0 only)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.chain_file, self.key_file)
        if max_version is not None:
            ctx.maximum_version = max_version
        if tls10_only:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1
        return ctx


class TlsChains:
    """A root CA (file ``ca_file``) that issues intermediates and leaves with chosen lifetimes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.root_key = _key()
        now = dt.datetime.now(dt.UTC)
        self.root = self._sign(
            _name(ROOT_CN), self.root_key.public_key(), _name(ROOT_CN), self.root_key,
            now - _DAY, now + 3650 * _DAY, ca=True,
        )  # fmt: skip
        self.ca_file = str(directory / "root.pem")
        Path(self.ca_file).write_bytes(_pem(self.root))
        self._count = 0

    @staticmethod
    def _sign(
        subject: x509.Name,
        public_key: Any,
        issuer: x509.Name,
        issuer_key: ec.EllipticCurvePrivateKey,
        not_before: dt.datetime,
        not_after: dt.datetime,
        *,
        ca: bool,
        hosts: tuple[str, ...] = (),
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def issue(
        self,
        *hosts: str,
        leaf_days: float = 90,
        intermediate_days: float | None = 365,
        self_signed: bool = False,
        leaf_cn: str = "probed test leaf",
    ) -> ServerCert:
        """A leaf for ``hosts`` (default 127.0.0.1, ::1, localhost) valid ``leaf_days`` from
        now (negative: expired), issued by an intermediate valid ``intermediate_days`` (None:
        by the root directly), or ``self_signed``."""
        hosts = hosts or ("127.0.0.1", "::1", "localhost")
        now = dt.datetime.now(dt.UTC)
        leaf_key = _key()
        leaf_start = now - (abs(leaf_days) + 2) * _DAY
        chain: list[x509.Certificate] = []
        intermediate_after: float | None = None
        root_after: float | None = None
        if self_signed:
            leaf = self._sign(
                _name(leaf_cn), leaf_key.public_key(), _name(leaf_cn), leaf_key,
                leaf_start, now + leaf_days * _DAY, ca=False, hosts=hosts,
            )  # fmt: skip
        elif intermediate_days is None:
            leaf = self._sign(
                _name(leaf_cn), leaf_key.public_key(), self.root.subject, self.root_key,
                leaf_start, now + leaf_days * _DAY, ca=False, hosts=hosts,
            )  # fmt: skip
            root_after = self.root.not_valid_after_utc.timestamp()
        else:
            inter_key = _key()
            inter_start = now - (abs(intermediate_days) + 3) * _DAY
            inter = self._sign(
                _name(INTERMEDIATE_CN), inter_key.public_key(), self.root.subject, self.root_key,
                min(inter_start, leaf_start), now + intermediate_days * _DAY, ca=True,
            )  # fmt: skip
            leaf = self._sign(
                _name(leaf_cn), leaf_key.public_key(), inter.subject, inter_key,
                leaf_start, now + leaf_days * _DAY, ca=False, hosts=hosts,
            )  # fmt: skip
            chain.append(inter)
            intermediate_after = inter.not_valid_after_utc.timestamp()
            root_after = self.root.not_valid_after_utc.timestamp()
        self._count += 1
        chain_file = self.directory / f"server{self._count}.pem"
        key_file = self.directory / f"server{self._count}.key"
        chain_file.write_bytes(b"".join(_pem(c) for c in (leaf, *chain)))
        key_file.write_bytes(
            leaf_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return ServerCert(
            chain_file=str(chain_file),
            key_file=str(key_file),
            leaf_not_after=leaf.not_valid_after_utc.timestamp(),
            intermediate_not_after=intermediate_after,
            root_not_after=root_after,
        )


@pytest.fixture(scope="session")
def tls_chains(tmp_path_factory: pytest.TempPathFactory) -> TlsChains:
    """A session-wide root CA issuing chains (see :class:`TlsChains`)."""
    return TlsChains(tmp_path_factory.mktemp("tls-chains"))


@contextlib.asynccontextmanager
async def serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    host: str = "127.0.0.1",
) -> AsyncIterator[int]:
    """Serve plain-text ``handler`` with asyncio on a random port; yield it. At exit every
    connection is aborted and its handler awaited."""
    tasks: set[asyncio.Task[Any]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.add(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the probe hangs up as soon as it has its answer
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(wrapped, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        # Hang up rather than cancel: a handler cancelled mid-read makes asyncio log an error.
        for writer in writers:
            writer.transport.abort()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


_LDAP_OK: Final = bytes.fromhex("300c02010178070a010004000400")
_LDAP_REFUSED: Final = bytes.fromhex("300c02010178070a013504000400")  # 53 unwillingToPerform


def _readline(conn: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n") and len(line) < 4096:
        chunk = conn.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def _speak(kind: str, refuse: bool, conn: socket.socket) -> bool:
    """The server side of a STARTTLS exchange; True when TLS should start."""
    if kind == "imap":
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")
        tag = _readline(conn).split(b" ", 1)[0]
        if refuse:
            conn.sendall(tag + b" BAD STARTTLS not available\r\n")
            return False
        conn.sendall(b"* NOTE untagged noise first\r\n" + tag + b" OK Begin TLS negotiation\r\n")
    elif kind == "pop3":
        conn.sendall(b"+OK POP3 ready\r\n")
        _readline(conn)
        conn.sendall(b"-ERR not now\r\n" if refuse else b"+OK Begin TLS\r\n")
    elif kind == "ftp":
        conn.sendall(b"220-probed test FTP\r\n220-second line\r\n220 ready\r\n")
        _readline(conn)
        conn.sendall(b"500 AUTH not understood\r\n" if refuse else b"234 AUTH TLS ok\r\n")
    elif kind == "ldap":
        request = conn.recv(64)
        if b"1.3.6.1.4.1.1466.20037" not in request:
            return False
        conn.sendall(_LDAP_REFUSED if refuse else _LDAP_OK)
    else:
        raise ValueError(kind)
    return not refuse


def _serve_blocking(
    listener: socket.socket, kind: str | None, ctx: ssl.SSLContext, refuse: bool
) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # the listener was shut down: the fixture is done
            return
        with conn:
            conn.settimeout(10)
            try:
                if kind is None or _speak(kind, refuse, conn):
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        while tls.recv(4096):
                            pass
                else:
                    while conn.recv(4096):
                        pass
            except (OSError, ssl.SSLError):
                pass  # the probe hangs up as soon as it has its answer


@contextlib.asynccontextmanager
async def _threaded(
    kind: str | None, ctx: ssl.SSLContext, *, refuse: bool = False, host: str = "127.0.0.1"
) -> AsyncIterator[int]:
    """Serve on a thread with blocking sockets, one connection at a time, until the probe hangs
    up: the check under test is the only asyncio code on the test's loop, and no server-side
    handshake is left in flight when the test's loop closes. The loop keeps running while the
    thread is joined, so the probe's hang-up reaches the server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, 0), family=family)
    thread = threading.Thread(
        target=_serve_blocking, args=(listener, kind, ctx, refuse), daemon=True
    )
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        await asyncio.to_thread(thread.join, 15)


@contextlib.asynccontextmanager
async def tls_server(ctx: ssl.SSLContext, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """A plain TLS server (handshake, then hold the connection until the probe hangs up) on a
    random port of ``host``."""
    async with _threaded(None, ctx, host=host) as port:
        yield port


@contextlib.asynccontextmanager
async def starttls_server(
    kind: str, ctx: ssl.SSLContext, *, refuse: bool = False
) -> AsyncIterator[int]:
    """A server speaking ``kind`` (imap, pop3, ftp, ldap) up to STARTTLS, then TLS with ``ctx``;
    ``refuse`` answers the STARTTLS request with that protocol's refusal."""
    async with _threaded(kind, ctx, refuse=refuse) as port:
        yield port


class _SmtpHandler:
    async def handle_RCPT(self, *args: Any) -> str:  # noqa: N802 (aiosmtpd's hook name)
        return "250 OK"


@dataclass(frozen=True)
class SmtpTarget:
    """An aiosmtpd server offering STARTTLS with ``cert``'s chain."""

    port: int
    cert: ServerCert


@pytest.fixture
def tls_smtp_server(tls_chains: TlsChains) -> Iterator[SmtpTarget]:
    """aiosmtpd on a loopback port offering STARTTLS (valid chain for 127.0.0.1/localhost)."""
    cert = tls_chains.issue(leaf_days=60, intermediate_days=400)
    port = free_port()
    controller = Controller(
        _SmtpHandler(),
        hostname="127.0.0.1",
        port=port,
        server_hostname="mail.probed.test",
        tls_context=cert.context(),
        require_starttls=False,
    )
    controller.start()
    try:
        yield SmtpTarget(port, cert)
    finally:
        controller.stop()


@dataclass(frozen=True)
class PostgresTls:
    """A PostgreSQL with ``ssl = on`` serving ``cert``'s chain."""

    host: str
    port: int
    cert: ServerCert


@pytest.fixture
def tls_postgres(
    tls_chains: TlsChains, postgres_factory: Callable[..., Any]
) -> Iterator[PostgresTls]:
    """A throwaway PostgreSQL with ``ssl = on`` (its key readable only by the postgres user)."""
    cert = tls_chains.issue(leaf_days=45, intermediate_days=500)
    directory = Path(tempfile.mkdtemp(prefix="probed-pg-tls-"))
    try:
        chain = directory / "server.crt"
        key = directory / "server.key"
        shutil.copyfile(cert.chain_file, chain)
        shutil.copyfile(cert.key_file, key)
        key.chmod(0o600)
        if os.geteuid() == 0:
            for path in (directory, chain, key):
                shutil.chown(path, "postgres")
        server = postgres_factory(ssl="on", ssl_cert_file=str(chain), ssl_key_file=str(key))
        yield PostgresTls(server.host, server.port, cert)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
