"""The ``tls`` check type: a server's TLS certificates, chain, protocol version and cipher.

Connect to ``address`` (phases ``resolve`` for host names, ``connect``), optionally speak a
STARTTLS exchange first (``starttls``: smtp, imap, pop3, postgres, ldap, ftp; phase
``starttls``, see :mod:`probed.checks._starttls`), then handshake (phase ``tls``), verifying the
chain and the host name unless ``verify: false``. The chain comes from
:mod:`probed.checks._tlschain`; the run reports the leaf's notAfter, the earliest notAfter of
the verified chain (the one the expiry thresholds judge, naming the certificate), the
negotiated version and cipher. ``min_version`` is enforced by the handshake itself.

When the handshake fails on verification or on the protocol version, a second handshake
without verification (and with every version this OpenSSL allows) tells *which* certificate
expired or which version the server does speak; it is bounded by the check's timeout, and its
failure only makes the message shorter.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from time import perf_counter
from typing import Any, ClassVar, Final

from pydantic import Field, field_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Sample, Status
from probed.checks._endpoint import AddressOptions, parse_address
from probed.checks._net import ProbeError, connect_socket, family_for, format_addr
from probed.checks._starttls import MAX_LINE, StartTls, StartTlsError, negotiate
from probed.checks._tls import (
    CERT_EXPIRY_METRIC,
    TLS_VERSIONS,
    TlsOptions,
    TlsVersion,
    allow_versions,
    build_context,
    describe_ssl_error,
    expiry_verdict,
    format_time,
    parse_tls_version,
)
from probed.checks._tlschain import (
    LAST_CHAIN_METRIC,
    LEAF_EXPIRY_METRIC,
    Chain,
    describe_chain,
    read_chain,
    tls_version_label,
)
from probed.phase import format_elapsed, set_phase
from probed.threads import run_blocking

__all__ = ["TlsCheck", "TlsCheckOptions"]

_VERSIONS_BY_NAME: Final = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


class TlsCheckOptions(AddressOptions, TlsOptions):
    """Options of the ``tls`` check type: ``address``, ``ip_version``, the keys of the ``tls:``
    block of other types (verification, CA, client certificate, expiry days) at the top level,
    and STARTTLS, the lowest version and the EHLO name."""

    starttls: StartTls | None = Field(
        default=None,
        description="Speak this protocol's STARTTLS first: smtp, imap, pop3, postgres, ldap, ftp.",
    )
    min_version: TlsVersion = Field(
        default="1.2",
        description="Lowest TLS version accepted: 1.0, 1.1, 1.2 or 1.3 (below 1.2 also "
        "allows OpenSSL's legacy algorithms for this check).",
    )
    client_name: str = Field(
        default="localhost",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9.\-\[\]:]+$",
        description="Name this probe gives in SMTP's EHLO.",
    )

    @field_validator("min_version", mode="before")
    @classmethod
    def _min_version(cls, value: Any) -> Any:
        return parse_tls_version(value)


def _context(options: TlsCheckOptions) -> ssl.SSLContext:
    """The check's context (blocking: reads CA and client certificate files; ``build_context``
    applies ``min_version``)."""
    return build_context(options)


def _diagnostic_context() -> ssl.SSLContext:
    """No verification, every version: only to describe a failed handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    allow_versions(ctx, ssl.TLSVersion.TLSv1)
    return ctx


class _HandshakeError(Exception):
    """A STARTTLS or TLS failure of one connection: bounded reason, sentence, the SSL error."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.ssl_error: BaseException | None = None


class TlsCheck(Check[TlsCheckOptions]):
    """Handshake (after STARTTLS if asked), verify, and judge the whole chain's expiry."""

    type_name: ClassVar[str] = "tls"
    options_model: ClassVar[type[CheckOptions]] = TlsCheckOptions
    description: ClassVar[str] = (
        "TLS (or STARTTLS) handshake: chain, host name, expiry of every certificate, version"
    )
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        CERT_EXPIRY_METRIC,
        LEAF_EXPIRY_METRIC,
        LAST_CHAIN_METRIC,
        MetricDef(
            "probed_tls_version_info",
            "1 for the TLS version negotiated in the last run.",
            labels=("version",),
        ),
        MetricDef(
            "probed_tls_cipher_info",
            "1 for the cipher suite negotiated in the last run.",
            labels=("cipher",),
        ),
    )

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.host, self.port = parse_address(self.options.address)
        self.where = format_addr(self.host, self.port)
        self.family = family_for(self.options.ip_version)
        self.server_name = self.options.server_name or self.host
        self.ssl_context: ssl.SSLContext | None = None
        self._config_error: str | None = None

    async def setup(self) -> None:
        """Build the SSL contexts once (reading CA/cert files in a thread)."""
        try:
            self.ssl_context = await run_blocking(_context, self.options)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._config_error = f"cannot load the TLS configuration: {exc}"

    async def run(self) -> Result:
        """Connect, STARTTLS, handshake, then judge version and expiry."""
        if self.ssl_context is None and self._config_error is None:
            await self.setup()
        if self._config_error is not None or self.ssl_context is None:
            return Result.fail(Reason.TLS, f"{self.where}: {self._config_error}")
        phases: dict[str, float] = {}
        deadline = perf_counter() + self.spec.timeout * 0.9
        try:
            chain = await self._handshake(self.ssl_context, phases)
        except ProbeError as exc:
            return exc.result(self.where)
        except _HandshakeError as exc:
            return await self._failed(exc, phases, deadline)
        return self._judge(chain, phases)

    async def _handshake(self, ctx: ssl.SSLContext, phases: dict[str, float]) -> Chain:
        """One connection: connect, STARTTLS, TLS; the chain it showed.

        :raises ProbeError: DNS and connect failures.
        :raises _HandshakeError: STARTTLS and TLS failures (``ssl_error`` set for TLS ones).
        """
        opts = self.options
        sock, _, addr = await connect_socket(
            self.host, self.port, family=self.family, phases=phases
        )
        peer = format_addr(addr[0], addr[1])
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_LINE)
        except BaseException:
            sock.close()
            raise
        try:
            if opts.starttls is not None:
                t0 = perf_counter()
                try:
                    await negotiate(opts.starttls, reader, writer, client_name=opts.client_name)
                except StartTlsError as exc:
                    raise _HandshakeError(
                        exc.reason, f"STARTTLS ({opts.starttls}): {exc.detail}"
                    ) from None
                except OSError as exc:
                    raise _HandshakeError(
                        Reason.CONNECTION_RESET,
                        f"connection lost during the {opts.starttls} STARTTLS exchange: "
                        f"{exc.strerror or exc}",
                    ) from None
                finally:
                    phases["starttls"] = perf_counter() - t0
            set_phase(f"in the TLS handshake with {peer}")
            t0 = perf_counter()
            try:
                await writer.start_tls(ctx, server_hostname=self.server_name)
            except (ssl.SSLError, OSError, EOFError) as exc:
                failure = _HandshakeError(Reason.TLS, _own_option_names(describe_ssl_error(exc)))
                failure.ssl_error = exc
                raise failure from None
            finally:
                phases["tls"] = perf_counter() - t0
            chain = read_chain(
                writer.get_extra_info("ssl_object"), verified=ctx.verify_mode != ssl.CERT_NONE
            )
        finally:
            writer.transport.abort()
        if chain is None:
            raise _HandshakeError(Reason.TLS, "the server presented no certificate")
        return chain

    async def _failed(
        self, exc: _HandshakeError, phases: dict[str, float], deadline: float
    ) -> Result:
        """Describe a failed handshake, with what a second, unverifying handshake shows.

        A verification failure gets the certificate that expired; any other handshake failure
        gets the version the server does speak when it is below ``min_version`` (servers
        answer a version mismatch with an alert, or by hanging up).
        """
        error = exc.ssl_error
        detail = exc.detail
        verify_error = isinstance(error, ssl.SSLCertVerificationError)
        chain: Chain | None = None
        if error is not None:
            remaining = deadline - perf_counter()
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        chain = await self._handshake(_diagnostic_context(), {})
                except (ProbeError, _HandshakeError, TimeoutError):
                    chain = None
        values: dict[str, float] = {}
        samples: tuple[Sample, ...] = ()
        if chain is not None:
            values, samples = _figures(chain)
            now = time.time()
            spoken = _VERSIONS_BY_NAME.get(chain.version)
            if verify_error:
                expired = [c for c in chain.certs if c.not_after <= now]
                if expired:
                    first = min(expired, key=lambda c: c.not_after)
                    detail += (
                        f" ({chain.role(first)} {first.describe()} expired "
                        f"{format_time(first.not_after)})"
                    )
            elif spoken is not None and spoken < TLS_VERSIONS[self.options.min_version]:
                detail = (
                    f"the server negotiates {tls_version_label(chain.version)}, below "
                    f"min_version {self.options.min_version}"
                )
        return Result.fail(
            exc.reason, f"{self.where}: {detail}", phases=phases, values=values, samples=samples
        )

    def _judge(self, chain: Chain, phases: dict[str, float]) -> Result:
        opts = self.options
        now = time.time()
        values, samples = _figures(chain)
        version = tls_version_label(chain.version)
        how = f"STARTTLS ({opts.starttls}), " if opts.starttls else ""
        verified = "verified" if opts.verify else "not verified (verify: false)"
        if not chain.complete:
            verified += " (leaf only: this Python cannot read the chain)"
        certs = describe_chain(chain, now)
        took = format_elapsed(sum(phases.values()))
        summary = (
            f"{self.where}: {how}{version} {chain.cipher}, chain {verified}: {certs}; in {took}"
        )
        kw: dict[str, Any] = {"phases": phases, "values": values, "samples": samples}
        earliest = chain.earliest
        if earliest is not None and earliest.not_after <= now:  # only seen with verify: false
            return Result.fail(
                Reason.CERT_EXPIRY,
                f"{self.where}: {chain.role(earliest)} {earliest.describe()} expired "
                f"{format_time(earliest.not_after)}; {summary}",
                **kw,
            )
        if earliest is not None:
            verdict = expiry_verdict(earliest.not_after, opts, now)
            if verdict is not None:
                status, reason, text = verdict
                who = f"{chain.role(earliest)} {earliest.describe()}"
                return Result(status, reason, f"{self.where}: {who}: {text}; {summary}", **kw)
        return Result(Status.OK, "", summary, **kw)


def _own_option_names(text: str) -> str:
    """The shared TLS hints name the ``tls:`` block of other types; here its keys are top-level."""
    return text.replace("tls.ca_file", "ca_file").replace("tls.verify", "verify")


def _figures(chain: Chain) -> tuple[dict[str, float], tuple[Sample, ...]]:
    values: dict[str, float] = {}
    if chain.earliest_not_after is not None:
        values[CERT_EXPIRY_METRIC.name] = chain.earliest_not_after
    if chain.leaf_not_after is not None:
        values["probed_tls_leaf_cert_expiry_timestamp_seconds"] = chain.leaf_not_after
    if chain.last_chain_not_after is not None:
        values["probed_tls_last_chain_expiry_timestamp_seconds"] = chain.last_chain_not_after
    samples: list[Sample] = []
    if chain.version:
        samples.append(Sample("probed_tls_version_info", 1.0, (tls_version_label(chain.version),)))
    if chain.cipher:
        samples.append(Sample("probed_tls_cipher_info", 1.0, (chain.cipher,)))
    return values, tuple(samples)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``tls`` check type."""
    return [TlsCheck]
