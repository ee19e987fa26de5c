"""The ``tcp`` check type: connect (optionally TLS), optionally send a line and expect a reply.

Connection set-up, phases and TLS come from :mod:`probed.checks._net` and
:mod:`probed.checks._tls`, shared with ``http``. Phases: ``resolve`` (host names only),
``connect``, ``tls`` (when enabled) and ``exchange`` (from sending ``send`` until ``expect``
matched).
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from time import perf_counter
from typing import Any, ClassVar

from pydantic import Field

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Status
from probed.checks._endpoint import BufferProtocol as _TcpProtocol
from probed.checks._endpoint import EndpointOptions, parse_address, split_address
from probed.checks._failures import classify
from probed.checks._net import (
    ProbeError,
    connect_and_close,
    family_for,
    format_addr,
    open_connection,
)
from probed.checks._tls import (
    CERT_EXPIRY_METRIC,
    describe_ssl_error,
    expiry_verdict,
    load_context,
)
from probed.options import Regex, Size
from probed.phase import set_phase

# EndpointOptions and parse_address moved to _endpoint (shared by several types); still
# importable from here.
__all__ = ["EndpointOptions", "TcpCheck", "TcpOptions", "parse_address"]


class TcpOptions(EndpointOptions):
    """Options of the ``tcp`` check type."""

    send: str | None = Field(default=None, description="Text to send after connecting.")
    expect: Regex | None = Field(
        default=None, description="Regex the reply must match (read until it does)."
    )
    max_read_size: Size = Field(
        default=65536,
        gt=0,
        description="Read (and buffer) at most this many bytes looking for expect.",
    )


def _excerpt(data: bytes, limit: int = 60) -> str:
    text = data[:limit].decode("utf-8", "replace")
    return repr(text + ("…" if len(data) > limit else ""))


class TcpCheck(Check[TcpOptions]):
    """Connect to host:port, optionally over TLS, optionally exchange send/expect."""

    type_name: ClassVar[str] = "tcp"
    options_model: ClassVar[type[CheckOptions]] = TcpOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = (CERT_EXPIRY_METRIC,)
    description: ClassVar[str] = "TCP connect with optional TLS and send/expect exchange"

    # An instance (one per configured check) sets only what its options need; the rest are
    # these class defaults.
    expect: re.Pattern[str] | None = None
    """The compiled ``expect`` (set on the instances that have one)."""
    _where: str | None = None  # set when the address is not written as format_addr writes it
    _tls: tuple[ssl.SSLContext | None, str | None] = (None, None)  # set by setup() with tls

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = self.options
        host, port = parse_address(options.address)
        where = format_addr(host, port)
        if where != options.address:
            self._where = where
        if options.expect is not None:
            self.expect = re.compile(options.expect)

    @property
    def where(self) -> str:
        """``host:port`` of the target, for messages; split again for each run. Nearly always
        the address as written (the options' own string)."""
        return self._where or self.options.address

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The SSL context built by :meth:`setup` (None without ``tls`` or before it)."""
        return self._tls[0]

    async def setup(self) -> None:
        """Build the SSL context once (reading CA/cert files in a thread)."""
        if self.options.tls is not None:
            self._tls = await load_context(self.options.tls)

    async def run(self) -> Result:
        """Connect once, exchange if configured, judge the certificate."""
        if self.options.tls is not None and self._tls[0] is None and self._tls[1] is None:
            await self.setup()  # not set up yet (the daemon's runner sets up before a run)
        ssl_context, tls_error = self._tls
        where = self.where
        if tls_error:
            return Result.fail(Reason.TLS, f"{where}: {tls_error}")
        options = self.options
        tls = options.tls
        loop = asyncio.get_running_loop()
        phases: dict[str, float] = {}
        host, port = split_address(where)
        family = family_for(options.ip_version)
        if ssl_context is None and not options.send and self.expect is None:
            # The plain connect check: connect and close, nothing read or written (the fast
            # path: awaited here, without a coroutine of its own per run).
            try:
                await connect_and_close(host, port, family=family, phases=phases)
            except ProbeError as exc:
                return exc.result(where)
            total = sum(phases.values()) * 1000
            return Result(Status.OK, "", f"{where}: connected in {total:.1f}ms", phases)
        try:
            transport, proto, cert = await open_connection(
                lambda: _TcpProtocol(loop, options.max_read_size),
                host,
                port,
                family=family,
                ssl_context=ssl_context,
                server_hostname=tls.server_name if tls is not None else None,
                phases=phases,
            )
        except ProbeError as exc:
            return exc.result(where)
        values = {}
        if cert is not None:
            values["probed_tls_cert_expiry_timestamp_seconds"] = cert.earliest_not_after
        try:
            problem = await self._exchange(transport, proto, phases)
        finally:
            transport.abort()
        if problem is not None:
            reason, detail = problem
            return Result.fail(reason, f"{where}: {detail}", phases=phases, values=values)
        if cert is not None and tls is not None:
            verdict = expiry_verdict(cert.earliest_not_after, tls, time.time())
            if verdict is not None:
                status, reason, detail = verdict
                return Result(status, reason, f"{where}: {detail}", phases=phases, values=values)
        how = "TLS " if cert is not None or tls is not None else ""
        total = sum(phases.values()) * 1000
        matched = f", reply matched /{self.options.expect}/" if self.expect else ""
        return Result(
            Status.OK,
            "",
            f"{where}: {how}connected{matched} in {total:.1f}ms",
            phases=phases,
            values=values,
        )

    async def _exchange(
        self, transport: asyncio.Transport, proto: _TcpProtocol, phases: dict[str, float]
    ) -> tuple[str, str] | None:
        payload = self.options.send.encode("utf-8") if self.options.send else b""
        if not payload and self.expect is None:
            return None
        start = perf_counter()
        # Give up reading a little before the daemon's timeout, so a reply that never matches
        # is reported with what the server did send (not just "timeout").
        deadline = start + max(self.spec.timeout * 0.9 - sum(phases.values()), 0.0)
        try:
            if payload:
                transport.write(payload)
            if self.expect is None:
                return None
            set_phase(f"waiting for a reply matching /{self.expect.pattern}/")
            limit = self.options.max_read_size
            while True:
                data = bytes(proto.buffer[:limit])
                if self.expect.search(data.decode("utf-8", "replace")):
                    return None
                if len(proto.buffer) >= limit:
                    return (
                        Reason.ASSERTION,
                        f"no match for /{self.expect.pattern}/ in the first {limit} bytes "
                        f"(max_read_size), got {_excerpt(data)}",
                    )
                if proto.closed:
                    error = proto.error
                    failure = classify(error) if error is not None else None
                    if error is not None and failure == Reason.TLS:
                        return Reason.TLS, describe_ssl_error(error)
                    if failure == Reason.CONNECTION_RESET:
                        return Reason.CONNECTION_RESET, "connection reset before a match"
                    if not data:
                        return (
                            Reason.PROTOCOL,
                            f"server closed the connection without sending anything "
                            f"(expected /{self.expect.pattern}/)",
                        )
                    return (
                        Reason.ASSERTION,
                        f"reply {_excerpt(data)} does not match /{self.expect.pattern}/ "
                        "(connection closed)",
                    )
                remaining = deadline - perf_counter()
                if remaining <= 0:
                    if not data:
                        return (
                            Reason.TIMEOUT,
                            f"no reply within the timeout (expected /{self.expect.pattern}/)",
                        )
                    return (
                        Reason.ASSERTION,
                        f"no match for /{self.expect.pattern}/ within the timeout, "
                        f"got {_excerpt(data)}",
                    )
                try:
                    async with asyncio.timeout(remaining):
                        await proto.wait()
                except TimeoutError:
                    continue
        finally:
            phases["exchange"] = perf_counter() - start


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``tcp`` check type."""
    return [TcpCheck]
