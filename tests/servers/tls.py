"""TLS material for tests: a trustme CA, server certificates (valid, expired, wrong host,
untrusted) and client certificates, written to files where the checks need paths."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme


@dataclass(frozen=True)
class TlsFiles:
    """A CA plus helpers to mint server SSL contexts and client certificate files."""

    ca: trustme.CA
    ca_file: str
    directory: Path

    def server_context(
        self,
        *hosts: str,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        require_client_cert: bool = False,
        ca: trustme.CA | None = None,
    ) -> ssl.SSLContext:
        """A server-side context with a leaf for ``hosts`` (default 127.0.0.1, ::1, localhost)."""
        issuer = ca or self.ca
        leaf = issuer.issue_cert(
            *(hosts or ("127.0.0.1", "::1", "localhost")),
            not_before=not_before,
            not_after=not_after,
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx

    def client_cert_files(self, name: str = "client.probed.test") -> tuple[str, str]:
        """(cert_file, key_file) of a client certificate issued by the CA."""
        leaf = self.ca.issue_cert(name)
        cert = self.directory / f"{name}.crt"
        key = self.directory / f"{name}.key"
        cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key))
        return str(cert), str(key)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A session-wide trustme CA with its certificate in a PEM file (``ca_file``)."""
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsFiles(ca=ca, ca_file=str(ca_file), directory=directory)


@pytest.fixture
def days_from_now() -> Callable[[float], dt.datetime]:
    """``days_from_now(5)``: an aware UTC datetime, for certificate validity bounds."""

    def make(days: float) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)

    return make
