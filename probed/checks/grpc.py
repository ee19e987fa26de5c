"""The ``grpc`` check type: the standard gRPC health check, ``grpc.health.v1.Health/Check``.

One run opens one connection to ``address`` (plaintext, or TLS with the ``tls:`` block of
``tcp``/``http``), asks the health service for ``service`` (empty: the whole server) with the
configured metadata, and passes only when the answer is ``SERVING``.

Phases, all on the one connection the run makes:

- ``resolve`` (host names only) and ``connect``: the TCP connection, measured by probed.
- ``tls`` (with ``tls``): the TLS handshake, also probed's (ALPN ``h2``), so certificate
  errors read like those of ``tcp`` and ``http``, ``tls.verify: false`` works and the
  certificate's expiry is reported.
- ``rpc``: everything grpcio does on that connection: the HTTP/2 connection preface and
  SETTINGS exchange, then the ``Health/Check`` call until its answer or status.

grpcio cannot be handed a socket, so it talks to the connection through a private relay
(:mod:`probed.checks._grpc_relay`); the run's deadline is the check's timeout minus a small
reserve, so a stalled server gives ``DEADLINE_EXCEEDED`` (reason ``timeout``) with its own
message instead of the daemon cutting the run.

Metrics like blackbox_exporter's grpc prober: ``probed_grpc_status_code`` (the gRPC status
code number of the call, when a call was made) and ``probed_grpc_healthcheck_response
{serving_status}`` (1 for the serving status received, 0 for the others).
"""

from __future__ import annotations

import importlib
import re
import ssl
import time
from time import perf_counter
from typing import Any, ClassVar, Final

from pydantic import Field, SecretStr, field_validator, model_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Sample, Status
from probed.checks._endpoint import EndpointOptions, parse_address
from probed.checks._grpc_relay import Relay
from probed.checks._net import ProbeError, family_for, format_addr, open_connection
from probed.checks._reasons import NOT_FOUND, UNAVAILABLE, UNSUPPORTED
from probed.checks._tls import (
    CERT_EXPIRY_METRIC,
    CertInfo,
    describe_ssl_error,
    expiry_verdict,
    load_context,
)
from probed.options import Size, format_duration, format_size
from probed.phase import format_elapsed, set_phase
from probed.redact import Redactor, is_secret_key, option_secrets
from probed.threads import run_blocking

__all__ = ["GrpcCheck", "GrpcOptions"]

SERVING_STATUSES: Final = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")
"""``HealthCheckResponse.ServingStatus`` names, by number: the ``serving_status`` label values."""

_KEY_RE: Final = re.compile(r"[0-9a-z_.-]{1,128}")
_VALUE_RE: Final = re.compile(r"[\x20-\x7e]*")
_FRAMING: Final = 64 * 1024  # HTTP/2 SETTINGS, headers, trailers, pings beside the message
_MAX_METADATA: Final = 16 * 1024
_MIN_RESERVE: Final = 0.05
_MAX_RESERVE: Final = 0.5
_DETAIL_MAX: Final = 200


def _check_metadata(value: dict[str, Any], field: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, val in value.items():
        key = str(name).lower()
        if not _KEY_RE.fullmatch(key):
            raise ValueError(
                f"{field}: invalid metadata key {name!r}: use letters, digits, '-', '_', '.'"
            )
        if key.startswith("grpc-") or key.endswith("-bin"):
            raise ValueError(
                f"{field}: metadata key {name!r} is not allowed (grpc-* keys are reserved; "
                "binary -bin values are not supported)"
            )
        text = val.get_secret_value() if isinstance(val, SecretStr) else str(val)
        if not _VALUE_RE.fullmatch(text):
            raise ValueError(
                f"{field}: metadata {name!r}: the value must be printable ASCII "
                "(no line breaks or control characters)"
            )
        if key in out:
            raise ValueError(f"{field}: metadata key {key!r} is given twice (keys ignore case)")
        out[key] = val
    return out


class GrpcOptions(EndpointOptions):
    """Options of the ``grpc`` check type (``address``, ``ip_version`` and ``tls`` as ``tcp``)."""

    service: str = Field(
        default="",
        max_length=200,
        description="Service name to ask the health service about; empty asks about the "
        "whole server.",
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Request metadata (headers) sent with the call."
    )
    secret_metadata: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Request metadata with secret values (authorization, API keys); "
        "redacted everywhere.",
    )
    max_receive_message_length: Size = Field(
        default=64 * 1024,
        ge=64,
        description="Largest health response accepted; probed reads at most this plus "
        "64 KiB (HTTP/2 framing and headers) from the server per run.",
    )

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        checked = _check_metadata(value, "metadata")
        for key in checked:
            if is_secret_key(key):
                # Not "metadata.<key>: ...": redaction masks text after "Authorization:".
                raise ValueError(
                    f"metadata key {key!r} carries credentials: put it in secret_metadata "
                    "so it stays secret"
                )
        return checked

    @field_validator("secret_metadata")
    @classmethod
    def _secret_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_metadata(value, "secret_metadata")

    @model_validator(mode="after")
    def _metadata_once(self) -> GrpcOptions:
        both = set(self.metadata) & set(self.secret_metadata)
        if both:
            raise ValueError(
                f"metadata key {sorted(both)[0]!r} is in both metadata and secret_metadata"
            )
        return self


_TRANSPORT_FAILED: Final = "failed to connect to all addresses"
_RELAY_ADDRESS: Final = re.compile(r"unix-abstract:probed-grpc-[\w-]*:?\s*")


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


class GrpcCheck(Check[GrpcOptions]):
    """Ask a gRPC server's standard health service whether it (or a service) is SERVING."""

    type_name: ClassVar[str] = "grpc"
    options_model: ClassVar[type[CheckOptions]] = GrpcOptions
    requires: ClassVar[tuple[str, ...]] = ("grpc", "grpc_health")
    extra: ClassVar[str | None] = "grpc"
    description: ClassVar[str] = "gRPC health check (grpc.health.v1), plaintext or TLS"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef(
            "probed_grpc_status_code",
            "gRPC status code of the Health/Check call (0 is OK; absent when no call was made).",
        ),
        MetricDef(
            "probed_grpc_healthcheck_response",
            "1 for the serving status the health service answered, 0 for the others.",
            labels=("serving_status",),
        ),
        CERT_EXPIRY_METRIC,
    )

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = self.options
        self.host, self.port = parse_address(options.address)
        self.where = format_addr(self.host, self.port)
        self.family = family_for(options.ip_version)
        tls = options.tls
        self.server_name = (tls.server_name if tls is not None else None) or self.host
        self.metadata = tuple(options.metadata.items()) + tuple(
            (key, value.get_secret_value()) for key, value in options.secret_metadata.items()
        )
        self.redact = Redactor(option_secrets(options))
        self.limit = options.max_receive_message_length + _FRAMING
        self.channel_options = (
            ("grpc.default_authority", format_addr(self.server_name, self.port)),
            ("grpc.max_receive_message_length", options.max_receive_message_length),
            ("grpc.max_metadata_size", _MAX_METADATA),
            ("grpc.enable_retries", 0),
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.primary_user_agent", "probed"),
        )
        self.what = f"service {options.service!r}" if options.service else "the server"
        self.ssl_context: ssl.SSLContext | None = None
        self._ready = False
        self._tls_error: str | None = None

    async def setup(self) -> None:
        """Import grpcio (slow enough to stall the loop) and build the SSL context in a thread."""
        for module in ("grpc", "grpc.aio", "grpc_health.v1.health_pb2_grpc"):
            await run_blocking(importlib.import_module, module)
        # ALPN h2: gRPC servers may insist on it
        self.ssl_context, self._tls_error = await load_context(self.options.tls, ("h2",))
        self._ready = True

    async def run(self) -> Result:
        """Connect, ask Health/Check, judge the answer and the certificate."""
        if not self._ready:
            await self.setup()
        if self._tls_error:
            return Result.fail(Reason.TLS, f"{self.where}: {self._tls_error}")
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reserve = min(_MAX_RESERVE, max(_MIN_RESERVE, self.spec.timeout * 0.1))
        deadline = perf_counter() + self.spec.timeout - reserve
        phases: dict[str, float] = {}
        relay = Relay(self.limit)
        channel: Any = None
        try:
            try:
                transport, _, cert = await open_connection(
                    relay.protocol,
                    self.host,
                    self.port,
                    family=self.family,
                    ssl_context=self.ssl_context,
                    server_hostname=self.server_name,
                    phases=phases,
                )
            except ProbeError as exc:
                return exc.result(self.where)
            relay.attach(transport)
            try:
                await relay.listen()
            except OSError as exc:  # no abstract Unix sockets: not Linux
                return Result.fail(
                    UNSUPPORTED,
                    f"{self.where}: cannot open the private relay socket for grpcio ({exc}); "
                    "the grpc check type needs Linux (abstract Unix sockets)",
                    phases=phases,
                )
            values: dict[str, float] = {}
            if cert is not None:
                values[CERT_EXPIRY_METRIC.name] = cert.earliest_not_after
            set_phase(f"waiting for the Health/Check answer of {self.where}")
            start = perf_counter()
            channel = grpc.aio.insecure_channel(relay.target, options=self.channel_options)
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=self.options.service)
            try:
                response = await stub.Check(
                    request,
                    timeout=max(deadline - perf_counter(), 0.001),
                    metadata=self.metadata or None,
                    wait_for_ready=False,
                )
            except grpc.aio.AioRpcError as exc:
                phases["rpc"] = perf_counter() - start
                return self._call_failed(exc, relay, phases, values)
            phases["rpc"] = perf_counter() - start
            return self._judge(int(response.status), cert, phases, values)
        finally:
            relay.close()
            if channel is not None:
                await channel.close()

    def _samples(self, serving: int | None) -> tuple[Sample, ...]:
        return tuple(
            Sample("probed_grpc_healthcheck_response", 1.0 if i == serving else 0.0, (name,))
            for i, name in enumerate(SERVING_STATUSES)
        )

    def _judge(
        self,
        serving: int,
        cert: CertInfo | None,
        phases: dict[str, float],
        values: dict[str, float],
    ) -> Result:
        values["probed_grpc_status_code"] = 0.0
        kw: dict[str, Any] = {"phases": phases, "values": values, "samples": self._samples(serving)}
        name = SERVING_STATUSES[serving] if 0 <= serving < len(SERVING_STATUSES) else str(serving)
        if name != "SERVING":
            hint = (
                "the server says it cannot take traffic now (starting, draining, or a "
                "dependency is down)"
                if name == "NOT_SERVING"
                else "the health service does not know the status yet"
            )
            return Result.fail(
                Reason.NOT_SERVING, f"{self.where}: {self.what} is {name}: {hint}", **kw
            )
        tls = self.options.tls
        if cert is not None and tls is not None:
            verdict = expiry_verdict(cert.earliest_not_after, tls, time.time())
            if verdict is not None:
                status, reason, detail = verdict
                return Result(status, reason, f"{self.where}: {detail}", **kw)
        how = "TLS, " if cert is not None else ""
        total = format_elapsed(sum(phases.values()))
        return Result(Status.OK, "", f"{self.where}: {self.what} is SERVING ({how}{total})", **kw)

    def _call_failed(
        self, exc: Any, relay: Relay, phases: dict[str, float], values: dict[str, float]
    ) -> Result:
        code = exc.code()
        values["probed_grpc_status_code"] = float(code.value[0])
        reason, text = self._describe(code.name, _short(exc.details() or ""), relay)
        return Result.fail(
            reason,
            self.redact(f"{self.where}: {text}"),
            phases=phases,
            values=values,
            samples=self._samples(None),
        )

    def _describe(self, code: str, details: str, relay: Relay) -> tuple[str, str]:
        said = f": {details}" if details else ""
        if relay.exceeded or (code == "RESOURCE_EXHAUSTED" and "larger than max" in details):
            return Reason.BODY_SIZE, (
                f"the answer is larger than max_receive_message_length "
                f"({format_size(self.options.max_receive_message_length)}); probed stopped "
                "reading there (is it the standard health service?)"
            )
        if code == "NOT_FOUND":
            return NOT_FOUND, (
                f"the health service knows no service {self.options.service!r} (NOT_FOUND): "
                "set service to a name the server registers (usually the fully qualified "
                "'package.Service'), or leave it empty for the whole server"
            )
        if code == "UNIMPLEMENTED":
            return Reason.PROTOCOL, (
                "the server does not implement the gRPC health service grpc.health.v1.Health "
                "(UNIMPLEMENTED): register the standard health servicer on it"
            )
        if code == "DEADLINE_EXCEEDED":
            return Reason.TIMEOUT, (
                f"no Health/Check answer within the timeout of "
                f"{format_duration(self.spec.timeout)} (DEADLINE_EXCEEDED): the server or its "
                "health servicer is stalled or overloaded"
            )
        if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return Reason.AUTH, (
                f"the server refused the call ({code}{said}): check the credentials in "
                "secret_metadata"
            )
        if code == "UNAVAILABLE":
            return self._unavailable(details, relay)
        return Reason.STATUS, f"Health/Check failed with {code}{said}"

    def _unavailable(self, details: str, relay: Relay) -> tuple[str, str]:
        error = relay.target_error
        if isinstance(error, ssl.SSLError):
            return Reason.TLS, describe_ssl_error(error)
        if isinstance(error, ConnectionResetError | BrokenPipeError):
            return Reason.CONNECTION_RESET, (
                "the server reset the connection during the call (connection reset)"
            )
        if relay.target_gone and relay.received == 0:
            tls = self.options.tls
            if tls is None:
                hint = "is a gRPC server listening on that port; does it expect TLS (set tls)?"
            elif tls.cert_file is None:
                hint = "does it require a client certificate (tls.cert_file), or is it not gRPC?"
            else:
                hint = "does it accept this client certificate, and is it a gRPC server?"
            return (
                Reason.PROTOCOL,
                f"the server closed the connection without an HTTP/2 answer: {hint}",
            )
        if details.startswith(_TRANSPORT_FAILED):
            # grpcio's own words for a connection (to the relay) that never carried a call:
            # the target said nothing gRPC; the relay's address means nothing to a person.
            cause = _RELAY_ADDRESS.sub("", details.rpartition("last error: ")[2])
            cause = cause.removeprefix("UNAVAILABLE: ")
            if "HTTP/2" in cause:
                return Reason.PROTOCOL, (
                    f"the server's answer is not HTTP/2 ({cause}): is a gRPC server listening "
                    "on that port?"
                )
            if relay.target_gone:
                return Reason.CONNECTION_RESET, (
                    f"the server closed the connection after {relay.received} bytes, before "
                    "answering the call (connection reset)"
                )
            details = cause
        said = f": {details}" if details else ""
        return UNAVAILABLE, (
            f"the server answered UNAVAILABLE{said} (shutting down, overloaded, or not speaking "
            "gRPC on that port)"
        )


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``grpc`` check type."""
    return [GrpcCheck]
