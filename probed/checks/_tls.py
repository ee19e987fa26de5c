"""TLS pieces shared by the ``http``, ``tcp`` (and ``json_api``) check types.

- :class:`TlsOptions`: the ``tls:`` option block (verification, CA, client certificate, server
  name, certificate expiry thresholds).
- :func:`build_context`: one ``ssl.SSLContext`` per check instance (they are expensive to build);
  :func:`load_context` builds it in a worker thread for a check's ``setup``.
- :class:`CertInfo` / :func:`cert_info`: what we report about the peer certificate, parsed from
  its DER form so it also works when verification is off.
- :func:`describe_ssl_error`: an operator-readable sentence for a handshake failure.
- :func:`expiry_verdict`: warn/fail from the certificate expiry thresholds.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import ssl
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from probed.check import CheckOptions, MetricDef, Reason, Status
from probed.threads import run_blocking
from probed.thresholds import Limit, WarnFail, check_order

__all__ = [
    "CERT_EXPIRY_METRIC",
    "TLS_VERSIONS",
    "CertInfo",
    "TlsOptions",
    "TlsVersion",
    "allow_versions",
    "build_context",
    "cert_info",
    "default_context",
    "describe_ssl_error",
    "expiry_verdict",
    "format_time",
    "load_context",
    "parse_tls_version",
    "tls_shorthand",
]

TlsVersion = Literal["1.0", "1.1", "1.2", "1.3"]

TLS_VERSIONS: Final = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
"""``min_version`` values and the versions they stand for."""


def parse_tls_version(value: Any) -> Any:
    """``1.2`` (a YAML float), ``"TLSv1.2"``, ``"TLS 1.2"`` -> ``"1.2"`` (before validation)."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{float(value):.1f}"
    if isinstance(value, str):
        text = value.strip().lower().replace("tlsv", "").replace("tls", "").strip()
        return {"1": "1.0"}.get(text, text)
    return value


def allow_versions(ctx: ssl.SSLContext, lowest: ssl.TLSVersion) -> None:
    """Set ``ctx``'s lowest protocol version (below 1.2 also OpenSSL's legacy algorithms)."""
    with warnings.catch_warnings():  # TLSv1/TLSv1_1 are deprecated names: meant here
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = lowest
        if lowest < ssl.TLSVersion.TLSv1_2:
            # OpenSSL 3 refuses TLS 1.0/1.1 above security level 0 (SHA-1 signatures).
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")


CERT_EXPIRY_METRIC: Final = MetricDef(
    "probed_tls_cert_expiry_timestamp_seconds",
    "Earliest notAfter (Unix time) of the server certificates seen in the last run.",
)
"""Declared by every check type that speaks TLS, with this one help text."""


class TlsOptions(CheckOptions):
    """The ``tls:`` block: how to verify the server and which client certificate to present."""

    verify: bool = Field(
        default=True, description="Verify the server certificate chain and host name."
    )
    ca_file: str | None = Field(
        default=None,
        description="PEM file of CA certificates to trust instead of the system store.",
    )
    cert_file: str | None = Field(default=None, description="PEM client certificate (mutual TLS).")
    key_file: str | None = Field(
        default=None, description="PEM private key of the client certificate (if not in cert_file)."
    )
    server_name: str | None = Field(
        default=None,
        description="Host name for SNI and verification instead of the URL/address host.",
    )
    expiry_warn_days: float | None = Field(
        default=14.0,
        ge=0,
        description="Warn when the certificate expires in fewer days (null: never).",
    )
    expiry_fail_days: float | None = Field(
        default=None,
        ge=0,
        description="Fail when the certificate expires in fewer days (null: never).",
    )
    min_version: TlsVersion | None = Field(
        default=None,
        description="Lowest TLS version accepted: 1.0, 1.1, 1.2 or 1.3 (default: OpenSSL's, "
        "1.2 on Debian; below 1.2 also allows OpenSSL's legacy algorithms).",
    )

    @field_validator("min_version", mode="before")
    @classmethod
    def _min_version(cls, value: Any) -> Any:
        return parse_tls_version(value)

    @model_validator(mode="after")
    def _check(self) -> TlsOptions:
        for field in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, field)
            if path is not None and not os.path.isfile(path):
                raise ValueError(f"{field}: no such file {path!r}")
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file (the client certificate)")
        check_order(
            self, "expiry_days", above=False, names=("expiry_warn_days", "expiry_fail_days")
        )
        return self


def tls_shorthand(value: Any) -> Any:
    """The ``tls:`` option's short forms, before validation: ``true`` is TLS with the defaults
    (``{}``), ``false`` is no TLS (``None``); anything else is left to :class:`TlsOptions`."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


# Contexts in use, by what builds them: one loaded with the system CA store takes ~800 KiB
# of OpenSSL memory, so checks with the same TLS settings share one (they never change it:
# ALPN is part of the key). Weak values: a context goes with the last check using it.
_CONTEXTS: weakref.WeakValueDictionary[tuple[Any, ...], ssl.SSLContext] = (
    weakref.WeakValueDictionary()
)
_CONTEXTS_LOCK: Final = threading.Lock()


def _stamp(path: str | None) -> tuple[int, int, int] | None:
    """What identifies a file's content for the context cache (changed file: new context)."""
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def build_context(options: TlsOptions, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The client SSL context for ``options`` offering ``alpn`` (blocking: reads files; call
    in a thread). Shared by every caller asking for the same settings and files while one of
    them holds it: callers must not change it.

    :raises ssl.SSLError, OSError: when a CA or client certificate file cannot be loaded.
    """
    files = (options.ca_file, options.cert_file, options.key_file)
    key = (options.verify, options.min_version, alpn, files, tuple(_stamp(f) for f in files))
    with _CONTEXTS_LOCK:
        ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _build_context(options)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        with _CONTEXTS_LOCK:
            ctx = _CONTEXTS.setdefault(key, ctx)
    return ctx


def _build_context(options: TlsOptions) -> ssl.SSLContext:
    if options.verify:
        ctx = ssl.create_default_context(cafile=options.ca_file)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if options.cert_file:
        ctx.load_cert_chain(options.cert_file, options.key_file)
    if options.min_version is not None:
        allow_versions(ctx, TLS_VERSIONS[options.min_version])
    return ctx


async def load_context(
    options: TlsOptions | None, alpn: tuple[str, ...] = ()
) -> tuple[ssl.SSLContext | None, str | None]:
    """:func:`build_context` in a worker thread (it reads files), for a check's ``setup``.

    :return: ``(context, None)``; ``(None, None)`` without ``options``; ``(None, sentence)``
        when a CA or client certificate file cannot be loaded (report it as reason ``tls``).
    """
    if options is None:
        return None, None
    try:
        return await run_blocking(build_context, options, alpn), None
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        return None, f"cannot load the TLS configuration: {exc}"


_DEFAULT_CONTEXT: ssl.SSLContext | None = None


def default_context() -> ssl.SSLContext:
    """A shared verifying context with the system CAs (for https redirects of http checks)."""
    global _DEFAULT_CONTEXT
    if _DEFAULT_CONTEXT is None:
        _DEFAULT_CONTEXT = ssl.create_default_context()
    return _DEFAULT_CONTEXT


@dataclass(frozen=True, slots=True)
class CertInfo:
    """The peer (leaf) certificate and negotiated TLS parameters of one connection, and what
    the chain showed when the caller read it (:func:`probed.checks._tlschain.with_chain`):
    ``chain_not_after`` its earliest notAfter, ``last_chain_not_after`` the verified chain's,
    ``earliest_name`` the certificate expiring first when it is not the leaf
    (``intermediate CN=x``)."""

    not_before: float
    not_after: float
    subject_cn: str
    issuer_cn: str
    version: str
    cipher: str
    chain_not_after: float | None = None
    last_chain_not_after: float | None = None
    earliest_name: str = ""

    @property
    def earliest_not_after(self) -> float:
        """The earliest notAfter of the chain (of the leaf when no chain was read)."""
        earliest = self.chain_not_after
        return self.not_after if earliest is None else earliest


_CN_OID: Final = b"\x06\x03\x55\x04\x03"


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read one DER tag-length at ``pos``: (tag, content start, content end)."""
    tag = data[pos]
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[start : start + n], "big")
        start += n
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = _tlv(data, pos)
        out.append((tag, cstart, cend))
        pos = cend
    return out


def _der_time(tag: int, raw: bytes) -> float:
    # UTCTime YYMMDDHHMMSSZ (years 1950-2049) or GeneralizedTime YYYYMMDDHHMMSSZ; parsed by
    # hand: strptime costs ~10 us, twice per certificate of every chain read.
    text = raw.decode("ascii")
    if not text.endswith("Z") or not text[:-1].isdigit() or len(text) not in (13, 15):
        raise ValueError(f"unexpected certificate time {text!r}")
    if tag == 0x17:
        year = int(text[:2])
        text = str(year + (1900 if year >= 50 else 2000)) + text[2:]
    y, mo, d, h, mi, sec = (int(text[i:j]) for i, j in _TIME_FIELDS)
    return dt.datetime(y, mo, d, h, mi, sec, tzinfo=dt.UTC).timestamp()


_TIME_FIELDS: Final = ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14))


def _common_name(data: bytes, start: int, end: int) -> str:
    # Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
    for _, s, e in _children(data, start, end):
        for _, s2, e2 in _children(data, s, e):
            parts = _children(data, s2, e2)
            if len(parts) == 2 and data[s2 : parts[0][2]] == _CN_OID:
                _, vs, ve = parts[1]
                return data[vs:ve].decode("utf-8", "replace")
    return ""


@functools.lru_cache(maxsize=512)  # a server's chain is the same run after run
def parse_der(der: bytes) -> tuple[float, float, str, str]:
    """(notBefore, notAfter, subject CN, issuer CN) of a DER certificate.

    A few dozen lines of DER walking instead of a dependency on ``cryptography``: ``ssl`` only
    decodes a *verified* peer certificate, and we also report on unverified ones.

    :raises ValueError: on malformed input.
    """
    try:
        _, cs, ce = _tlv(der, 0)
        _, ts, te = _children(der, cs, ce)[0]
        fields = _children(der, ts, te)
        if fields[0][0] == 0xA0:  # explicit [0] version
            fields = fields[1:]
        # serial, signature algorithm, issuer, validity, subject
        issuer, validity, subject = fields[2], fields[3], fields[4]
        times = _children(der, validity[1], validity[2])
        not_before = _der_time(times[0][0], der[times[0][1] : times[0][2]])
        not_after = _der_time(times[1][0], der[times[1][1] : times[1][2]])
        return (
            not_before,
            not_after,
            _common_name(der, subject[1], subject[2]),
            _common_name(der, issuer[1], issuer[2]),
        )
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot parse the peer certificate: {exc}") from None


def cert_info(sslobj: ssl.SSLObject | ssl.SSLSocket | None) -> CertInfo | None:
    """Describe the peer certificate of a finished handshake, or None if there is none."""
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        not_before, not_after, subject, issuer = parse_der(der)
    except ValueError:
        return None
    cipher = sslobj.cipher()
    return CertInfo(
        not_before=not_before,
        not_after=not_after,
        subject_cn=subject,
        issuer_cn=issuer,
        version=sslobj.version() or "",
        cipher=cipher[0] if cipher else "",
    )


def format_time(timestamp: float) -> str:
    """``2026-01-01 12:00 UTC`` style, for messages."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


_VERIFY_HINTS: Final = {
    # OpenSSL X509_V_ERR_* codes worth a plainer explanation.
    18: "self-signed certificate (set tls.ca_file to trust it, or tls.verify: false)",
    19: "self-signed certificate in the chain (set tls.ca_file to trust its CA)",
    20: "certificate issued by an untrusted CA (set tls.ca_file to trust it)",
    21: "certificate issued by an untrusted CA (set tls.ca_file to trust it)",
}


def describe_ssl_error(exc: BaseException, expired_cert: CertInfo | None = None) -> str:
    """One sentence for a TLS handshake/verification failure.

    :param expired_cert: the certificate fetched without verification after an "expired"
        failure, so the message can say when it expired.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        text = _VERIFY_HINTS.get(code) or (exc.verify_message or str(exc)).rstrip(".")
        if code == 10 and expired_cert is not None:  # X509_V_ERR_CERT_HAS_EXPIRED
            text += f" (notAfter {format_time(expired_cert.not_after)})"
        elif code == 9 and expired_cert is not None:  # X509_V_ERR_CERT_NOT_YET_VALID
            text += f" (notBefore {format_time(expired_cert.not_before)})"
        return f"TLS certificate verify failed: {text}"
    if isinstance(exc, ssl.SSLError):
        detail = (exc.reason or str(exc)).replace("_", " ").lower()
        if exc.reason == "WRONG_VERSION_NUMBER":
            return "TLS handshake failed: the server did not answer with TLS (wrong version number)"
        if exc.reason and "ALERT" in exc.reason:
            return f"TLS handshake failed: server sent {detail} (client certificate required?)"
        return f"TLS handshake failed: {detail}"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return (
            "TLS handshake failed: the server closed the connection mid-handshake "
            "(does it require a client certificate, or other TLS versions/ciphers?)"
        )
    return f"TLS handshake failed: {exc or type(exc).__name__}"


def expiry_verdict(
    not_after: float, options: TlsOptions, now: float
) -> tuple[Status, str, str] | None:
    """Warn or fail per the thresholds; None when the certificate is far enough from expiry.

    :return: (status, reason, message) or None.
    """
    days = (not_after - now) / 86400.0
    limit = Limit(
        f"TLS certificate expires in {days:.1f} days ({format_time(not_after)})",
        days,
        WarnFail(options.expiry_warn_days, options.expiry_fail_days, above=False),
        _days,
        Reason.CERT_EXPIRY,
        ("expiry_warn_days", "expiry_fail_days"),
    )
    status = limit.status()
    if status is Status.OK:
        return None
    return status, limit.reason, limit.message()


def _days(value: float) -> str:
    return f"{value:g} days"
