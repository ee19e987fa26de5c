"""Reading the certificate chain of a finished TLS handshake (``tls`` now, ``http`` next).

:func:`read_chain` returns a :class:`Chain`: every certificate the server presented and, when
the handshake verified it, the chain OpenSSL built (leaf first, trust anchor last), each with
its validity and names, plus the negotiated protocol version and cipher. From it come the
expiry figures blackbox_exporter users know:

- :attr:`Chain.leaf_not_after`: the server's own certificate;
- :attr:`Chain.earliest_not_after`: the earliest notAfter of the verified chain (of the
  presented certificates when nothing was verified), ``probe_ssl_earliest_cert_expiry``'s
  counterpart and the value of ``probed_tls_cert_expiry_timestamp_seconds``;
- :attr:`Chain.last_chain_not_after`: ``probe_ssl_last_chain_expiry_timestamp_seconds``' —
  the earliest notAfter of the verified chain; OpenSSL builds one chain, so with verification
  on it equals ``earliest_not_after``, and without verification there is none.

CPython 3.13 has ``SSLObject.get_verified_chain()`` / ``get_unverified_chain()``; 3.11 and 3.12
have them only on the private ``_sslobj``. Both are tried; without either, the chain is the
leaf alone (:attr:`Chain.complete` is false) and the figures are the leaf's.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from probed.check import MetricDef
from probed.checks._tls import CertInfo, format_time, parse_der

__all__ = [
    "LAST_CHAIN_METRIC",
    "LEAF_EXPIRY_METRIC",
    "MAX_CHAIN",
    "Chain",
    "ChainCert",
    "chain_certs",
    "chain_values",
    "describe_chain",
    "earliest_name",
    "read_chain",
    "tls_version_label",
    "with_chain",
]

LEAF_EXPIRY_METRIC: Final = MetricDef(
    "probed_tls_leaf_cert_expiry_timestamp_seconds",
    "notAfter (Unix time) of the server's own (leaf) certificate.",
)
LAST_CHAIN_METRIC: Final = MetricDef(
    "probed_tls_last_chain_expiry_timestamp_seconds",
    "Earliest notAfter (Unix time) of the verified chain (absent when not verified).",
)

MAX_CHAIN: Final = 16
"""Certificates kept per chain: a server sending more is odd, and the message stays short."""

# _ssl.ENCODING_DER: the ssl module does not re-export it, and _ssl has no stubs.
_ENCODING_DER: Final = int(getattr(ssl, "_ssl").ENCODING_DER)  # noqa: B009 (private module)

_VERSION_LABELS: Final = {
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
    "SSLv3": "SSL 3.0",
}


def tls_version_label(version: str) -> str:
    """``TLS 1.2`` for OpenSSL's ``TLSv1.2``: the label blackbox's ``probe_tls_version_info``
    uses (unknown names pass through)."""
    return _VERSION_LABELS.get(version, version)


@dataclass(frozen=True, slots=True)
class ChainCert:
    """One certificate of a chain: who it names, who issued it, when it is valid."""

    subject: str
    issuer: str
    not_before: float
    not_after: float

    @property
    def self_signed(self) -> bool:
        """Subject and issuer CN are the same (a root, or a self-signed leaf)."""
        return bool(self.subject) and self.subject == self.issuer

    def describe(self) -> str:
        """``CN=name``, or ``(no CN)``."""
        return f"CN={self.subject}" if self.subject else "(no CN)"


@dataclass(frozen=True, slots=True)
class Chain:
    """What a handshake showed of the server's certificates and the negotiated parameters.

    :param presented: the certificates the server sent, leaf first.
    :param verified: the chain OpenSSL verified, leaf first, anchor last; empty when the
        handshake did not verify (``verify: false``) or the chain could not be read.
    :param version: the protocol, OpenSSL's name (``TLSv1.3``).
    :param cipher: the cipher suite's name.
    :param complete: False when only the leaf could be read (no chain API in this Python).
    """

    presented: tuple[ChainCert, ...]
    verified: tuple[ChainCert, ...]
    version: str
    cipher: str
    complete: bool = True

    @property
    def certs(self) -> tuple[ChainCert, ...]:
        """The chain the figures are computed over: the verified one, else the presented one."""
        return self.verified or self.presented

    @property
    def leaf(self) -> ChainCert | None:
        """The server's own certificate."""
        certs = self.certs
        return certs[0] if certs else None

    @property
    def leaf_not_after(self) -> float | None:
        """notAfter of the leaf."""
        leaf = self.leaf
        return leaf.not_after if leaf is not None else None

    @property
    def earliest(self) -> ChainCert | None:
        """The certificate of :attr:`certs` that expires first (the leaf on a tie)."""
        certs = self.certs
        return min(certs, key=lambda c: c.not_after) if certs else None

    @property
    def earliest_not_after(self) -> float | None:
        """The earliest notAfter of :attr:`certs`."""
        first = self.earliest
        return first.not_after if first is not None else None

    @property
    def last_chain_not_after(self) -> float | None:
        """The earliest notAfter of the verified chain; None when nothing was verified."""
        if not self.verified:
            return None
        return min(c.not_after for c in self.verified)

    def role(self, cert: ChainCert) -> str:
        """``leaf``, ``intermediate`` or ``root``: the place of ``cert`` in :attr:`certs`."""
        certs = self.certs
        if certs and cert is certs[0]:
            return "leaf"
        if cert.self_signed or (self.verified and cert is certs[-1]):
            return "root"
        return "intermediate"


def _der_of(item: Any) -> bytes | None:
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    public_bytes = getattr(item, "public_bytes", None)
    if public_bytes is None:
        return None
    der = public_bytes(_ENCODING_DER)
    return der if isinstance(der, bytes) else None


def chain_certs(items: Sequence[Any] | None) -> tuple[ChainCert, ...]:
    """Parse a chain as the ``ssl`` module returns it (DER bytes or ``_ssl.Certificate``
    objects); certificates that do not parse are left out, at most :data:`MAX_CHAIN` kept."""
    out: list[ChainCert] = []
    for item in list(items or ())[:MAX_CHAIN]:
        der = _der_of(item)
        if der is None:
            continue
        try:
            not_before, not_after, subject, issuer = parse_der(der)
        except ValueError:
            continue
        out.append(ChainCert(subject, issuer, not_before, not_after))
    return tuple(out)


def _call_chain(sslobj: Any, name: str) -> Sequence[Any] | None:
    """``sslobj.<name>()`` (3.13) or ``sslobj._sslobj.<name>()`` (3.10-3.12); None if neither."""
    for owner in (sslobj, getattr(sslobj, "_sslobj", None)):
        method = getattr(owner, name, None)
        if method is None:
            continue
        try:
            found = method()
        except (ssl.SSLError, ValueError, AttributeError):
            return None
        return list(found) if found is not None else None
    return None


def read_chain(sslobj: ssl.SSLObject | ssl.SSLSocket | None, *, verified: bool) -> Chain | None:
    """The :class:`Chain` of a finished handshake, or None when there is no peer certificate.

    :param verified: whether the context verified the peer (with ``CERT_NONE`` OpenSSL's
        "verified" chain is only what it could build, so it is not reported as verified).
    """
    if sslobj is None:
        return None
    cipher = sslobj.cipher()
    version = sslobj.version() or ""
    presented_raw = _call_chain(sslobj, "get_unverified_chain")
    verified_raw = _call_chain(sslobj, "get_verified_chain") if verified else None
    complete = presented_raw is not None
    presented = chain_certs(presented_raw)
    if not presented:
        leaf = sslobj.getpeercert(binary_form=True)
        if not leaf:
            return None
        presented = chain_certs([leaf])
        if not presented:
            return None
        complete = False
    return Chain(
        presented=presented,
        verified=chain_certs(verified_raw) if verified else (),
        version=version,
        cipher=cipher[0] if cipher else "",
        complete=complete,
    )


def describe_chain(chain: Chain, now: float) -> str:
    """One clause per certificate, leaf first: ``leaf CN=x until 2027-01-01 00:00 UTC``;
    certificates already expired say so."""
    parts = []
    for cert in chain.certs:
        state = "expired" if cert.not_after <= now else "until"
        parts.append(f"{chain.role(cert)} {cert.describe()} {state} {format_time(cert.not_after)}")
    return "; ".join(parts)


def with_chain(cert: CertInfo, chain: Chain | None) -> CertInfo:
    """``cert`` with what ``chain`` shows: its earliest and last-chain expiry, and the name of
    the certificate expiring first when it is not the leaf."""
    if chain is None:
        return cert
    first = chain.earliest
    name = ""
    if first is not None and chain.role(first) != "leaf":
        name = f"{chain.role(first)} {first.describe()}"
    return dataclasses.replace(
        cert,
        chain_not_after=chain.earliest_not_after,
        last_chain_not_after=chain.last_chain_not_after,
        earliest_name=name,
    )


def chain_values(cert: CertInfo | None) -> dict[str, float]:
    """The leaf's and the verified chain's expiry of a connection's certificate (metric
    values: :data:`LEAF_EXPIRY_METRIC`, :data:`LAST_CHAIN_METRIC`)."""
    if cert is None:
        return {}
    values = {LEAF_EXPIRY_METRIC.name: cert.not_after}
    if cert.last_chain_not_after is not None:
        values[LAST_CHAIN_METRIC.name] = cert.last_chain_not_after
    return values


def earliest_name(cert: CertInfo | None, not_after: float) -> str:
    """``intermediate CN=x: `` when the certificate of ``cert``'s chain expiring first expires
    at ``not_after`` and is not the leaf (the prefix of an expiry message), else ``""``."""
    if cert is None or not cert.earliest_name or cert.chain_not_after != not_after:
        return ""
    return f"{cert.earliest_name}: "
