"""The ``dns`` check type: one query to a DNS server (or the system resolver), validated.

The check sends a single query with dnspython's asyncio API, over UDP (retrying over TCP when
the answer comes back truncated, unless ``fallback_tcp`` is off) or TCP, and checks the response
code and the answer section. It reports the lookup time as the ``lookup`` phase and exports the
response code and section sizes, named after blackbox_exporter's ``probe_dns_*`` series.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from pydantic import Field, field_validator, model_validator

from probed.check import Check, CheckOptions, MetricDef, Reason, Result
from probed.checks._dns_server import (
    RESOLV_CONF,
    DnsServer,
    NoNameserverError,
    parse_server,
    system_nameserver,
)
from probed.checks._failures import describe
from probed.checks._reasons import RCODE, TRUNCATED
from probed.hookspecs import hookimpl
from probed.options import Regex
from probed.phase import set_phase
from probed.threads import run_blocking

if TYPE_CHECKING:
    import dns.message

__all__ = ["DnsCheck", "DnsOptions"]

_SHOWN_ANSWERS: Final = 3
# Leave the daemon's own timeout a little room so our message (which names the server and
# transport) is the one reported, not the generic one.
_TIMEOUT_MARGIN: Final = 0.05


def _dnspython() -> bool:
    """True if dnspython is importable (validators skip its checks otherwise; the loader
    reports the missing ``probed[dns]`` extra)."""
    try:
        import dns.rcode  # noqa: F401
    except ImportError:  # pragma: no cover - dnspython is installed in every test environment
        return False
    return True


class DnsOptions(CheckOptions):
    """Options of the ``dns`` check type."""

    query_name: str = Field(description="Name to look up, fully qualified (`example.com`).")
    query_type: str = Field(default="A", description="Record type: A, AAAA, MX, TXT, SOA, ...")
    server: str | None = Field(
        default=None,
        description="`host[:port]` or `[v6]:port` of the server; default the first nameserver "
        "in /etc/resolv.conf.",
    )
    transport: Literal["udp", "tcp"] = Field(default="udp", description="udp or tcp.")
    fallback_tcp: bool = Field(
        default=True,
        description="Retry over TCP when the UDP answer is truncated (TC bit); off: fail with "
        "reason `truncated`.",
    )
    valid_rcodes: tuple[str, ...] = Field(
        default=("NOERROR",), min_length=1, description="Response codes that pass."
    )
    recursion_desired: bool = Field(default=True, description="Set the RD flag.")
    answer_contains: tuple[str, ...] = Field(
        default=(),
        description="Values that must each appear among the answers (e.g. `127.0.0.1`).",
    )
    answer_regex: Regex | None = Field(
        default=None, description="Regular expression every answer's data must match."
    )
    min_answers: int | None = Field(
        default=None,
        ge=0,
        description="Minimum number of answers of `query_type`; default 1 for NOERROR, else 0.",
    )

    @field_validator("query_name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("query_name must not be empty")
        if _dnspython():
            import dns.exception
            import dns.name

            try:
                dns.name.from_text(value)
            except dns.exception.DNSException as exc:
                raise ValueError(f"invalid DNS name {value!r}: {exc}") from None
        return value

    @field_validator("query_type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        value = value.strip().upper()
        if _dnspython():
            import dns.rdatatype

            try:
                dns.rdatatype.from_text(value)
            except dns.rdatatype.UnknownRdatatype:
                raise ValueError(
                    f"unknown record type {value!r}; use a name such as A, AAAA, MX, TXT, SOA"
                ) from None
        return value

    @field_validator("valid_rcodes", mode="before")
    @classmethod
    def _check_rcodes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            return value
        rcodes = [str(item).strip().upper() for item in value]
        if _dnspython():
            import dns.rcode

            for rcode in rcodes:
                try:
                    dns.rcode.from_text(rcode)
                except dns.rcode.UnknownRcode:
                    raise ValueError(
                        f"unknown rcode {rcode!r}; use names such as NOERROR, NXDOMAIN, SERVFAIL"
                    ) from None
        return tuple(rcodes)

    @field_validator("server")
    @classmethod
    def _check_server(cls, value: str | None) -> str | None:
        if value is not None:
            parse_server(value)  # raises ValueError with a readable message
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> DnsOptions:
        if self.transport == "tcp" and "fallback_tcp" in self.model_fields_set:
            raise ValueError("fallback_tcp only applies to transport: udp")
        return self


def _normalise(text: str) -> str:
    """Answer text compared case-insensitively, without a trailing dot or TXT quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return text.rstrip(".").lower()


def _show(answers: Sequence[str]) -> str:
    shown = ", ".join(answers[:_SHOWN_ANSWERS])
    more = len(answers) - _SHOWN_ANSWERS
    return shown + (f" and {more} more" if more > 0 else "")


class DnsCheck(Check[DnsOptions]):
    """Query a DNS server once and validate the response code and the answers."""

    type_name: ClassVar[str] = "dns"
    options_model: ClassVar[type[CheckOptions]] = DnsOptions
    requires: ClassVar[tuple[str, ...]] = ("dns",)
    extra: ClassVar[str | None] = "dns"
    description: ClassVar[str] = "DNS query: response code, answers, lookup time (dnspython)"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_dns_rcode", "Numeric response code of the last answer (0 = NOERROR)."),
        MetricDef("probed_dns_answer_count", "Records in the answer section."),
        MetricDef("probed_dns_authority_count", "Records in the authority section."),
        MetricDef("probed_dns_additional_count", "Records in the additional section."),
        MetricDef("probed_dns_truncated", "1 if the UDP answer was truncated (TC bit), else 0."),
    )

    resolv_conf: ClassVar[str] = RESOLV_CONF
    """Where the system resolver is read from when ``server`` is not set."""

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self._fixed: DnsServer | None = (
            parse_server(self.options.server) if self.options.server is not None else None
        )
        regex = self.options.answer_regex
        self._regex = re.compile(regex) if regex is not None else None

    async def _server(self) -> DnsServer | Result:
        if self._fixed is not None:
            return self._fixed
        try:
            # Read on every run (the file is tiny): DHCP or an operator may change it.
            return await run_blocking(system_nameserver, self.resolv_conf)
        except NoNameserverError as exc:
            return Result.unknown(Reason.DNS, str(exc))

    async def run(self) -> Result:
        """Send the query, fall back to TCP if truncated, and validate the response."""
        import dns.exception
        import dns.flags
        import dns.message
        import dns.rdatatype

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.timeout
        server = await self._server()
        if isinstance(server, Result):
            return server
        phases: dict[str, float] = {}
        address = server.host
        if not server.is_ip:
            start = time.perf_counter()
            try:
                infos = await loop.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM)
            except socket.gaierror as exc:
                reason, text = describe(exc, f"DNS server {server.host}") or (Reason.DNS, str(exc))
                return Result.fail(reason, text)
            phases["resolve"] = time.perf_counter() - start
            address = str(infos[0][4][0])

        opts = self.options
        query = dns.message.make_query(opts.query_name, opts.query_type)
        if not opts.recursion_desired:
            query.flags &= ~dns.flags.RD
        where = f"{server.display} over {opts.transport}"
        truncated = False
        start = time.perf_counter()
        set_phase(f"waiting for the answer from {where}")
        try:
            if opts.transport == "tcp":
                response = await _tcp(query, address, server.port, deadline)
            else:
                response = await _udp(query, address, server.port, deadline)
                truncated = bool(response.flags & dns.flags.TC)
                if truncated:
                    if not opts.fallback_tcp:
                        phases["lookup"] = time.perf_counter() - start
                        return Result.fail(
                            TRUNCATED,
                            f"{server.display} sent a truncated UDP answer (TC bit) and "
                            "fallback_tcp is off",
                            phases=phases,
                            values={"probed_dns_truncated": 1.0},
                        )
                    where = f"{server.display} over tcp (after a truncated UDP answer)"
                    set_phase(f"waiting for the answer from {where}")
                    response = await _tcp(query, address, server.port, deadline)
        except dns.exception.Timeout:
            return Result.fail(Reason.TIMEOUT, f"no answer from {where} within the timeout")
        except EOFError:
            return Result.fail(Reason.PROTOCOL, f"{where} closed the connection without answering")
        except dns.exception.DNSException as exc:
            # FormError, ShortHeader, BadResponse, UnexpectedSource...: not a DNS answer to us.
            return Result.fail(
                Reason.PROTOCOL, f"{where} sent something that is not a valid answer: {exc}"
            )
        except OSError as exc:
            reason, text = describe(exc, where) or (Reason.OTHER, f"{where}: {exc.strerror or exc}")
            return Result.fail(reason, text)
        phases["lookup"] = time.perf_counter() - start
        return self._judge(response, where, phases, truncated)

    def _judge(
        self,
        response: dns.message.Message,
        where: str,
        phases: dict[str, float],
        truncated: bool,
    ) -> Result:
        """Turn a parsed response into a result: rcode first, then the answer rules."""
        import dns.rcode
        import dns.rdatatype

        opts = self.options
        rcode = response.rcode()
        rcode_name = dns.rcode.to_text(rcode)
        values = {
            "probed_dns_rcode": float(rcode),
            "probed_dns_answer_count": float(sum(len(r) for r in response.answer)),
            "probed_dns_authority_count": float(sum(len(r) for r in response.authority)),
            "probed_dns_additional_count": float(sum(len(r) for r in response.additional)),
            "probed_dns_truncated": 1.0 if truncated else 0.0,
        }
        kw: dict[str, Any] = {"phases": phases, "values": values}
        subject = f"{opts.query_name} {opts.query_type}"
        if rcode_name not in opts.valid_rcodes:
            return Result.fail(
                RCODE,
                f"{subject}: {where} answered {rcode_name}, expected "
                f"{' or '.join(opts.valid_rcodes)}",
                **kw,
            )
        qtype = dns.rdatatype.from_text(opts.query_type)
        answers = [
            rdata.to_text()
            for rrset in response.answer
            if qtype == dns.rdatatype.ANY or rrset.rdtype == qtype
            for rdata in rrset
        ]
        minimum = opts.min_answers
        if minimum is None:
            minimum = 1 if rcode == dns.rcode.NOERROR else 0
        if len(answers) < minimum:
            return Result.fail(
                Reason.ASSERTION,
                f"{subject}: {len(answers)} {opts.query_type} answer(s) from {where}, "
                f"expected at least {minimum}",
                **kw,
            )
        present = {_normalise(answer) for answer in answers}
        missing = [value for value in opts.answer_contains if _normalise(value) not in present]
        if missing:
            return Result.fail(
                Reason.ASSERTION,
                f"{subject}: answers [{_show(answers)}] lack {_show(missing)}",
                **kw,
            )
        if self._regex is not None:
            wrong = [answer for answer in answers if not self._regex.search(answer)]
            if wrong:
                return Result.fail(
                    Reason.ASSERTION,
                    f"{subject}: answer(s) {_show(wrong)} do not match /{self._regex.pattern}/",
                    **kw,
                )
        shown = f": {_show(answers)}" if answers else ""
        return Result.ok(f"{subject}: {rcode_name} from {where}{shown}", **kw)


def _remaining(deadline: float) -> float:
    left = deadline - asyncio.get_running_loop().time()
    return max(left - min(_TIMEOUT_MARGIN, left * 0.1), 0.001)


async def _udp(
    query: dns.message.Message, address: str, port: int, deadline: float
) -> dns.message.Message:
    """One UDP exchange on a connected socket, so an ICMP port-unreachable surfaces as
    ``ConnectionRefusedError`` instead of a silent timeout, and only the server can answer."""
    import dns.asyncbackend
    import dns.asyncquery
    import dns.inet

    backend = dns.asyncbackend.get_default_backend()
    family = dns.inet.af_for_address(address)
    # dnspython leaves make_socket unannotated; it returns a DatagramSocket.
    sock = await backend.make_socket(  # type: ignore[no-untyped-call]
        family, socket.SOCK_DGRAM, 0, None, (address, port)
    )
    async with sock:
        return await dns.asyncquery.udp(
            query, address, timeout=_remaining(deadline), port=port, sock=sock
        )


async def _tcp(
    query: dns.message.Message, address: str, port: int, deadline: float
) -> dns.message.Message:
    """One TCP exchange on a fresh connection (connect time is part of the lookup)."""
    import dns.asyncquery

    return await dns.asyncquery.tcp(query, address, timeout=_remaining(deadline), port=port)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``dns`` check type."""
    return [DnsCheck]
