"""The ``icmp`` check type: a short burst of echo requests, with loss and round-trip thresholds.

Echo requests go out every ``packet_interval`` through icmplib's asyncio socket: a raw socket
(privileged) when the process may open one, otherwise a kernel "ping" datagram socket, which
Linux allows only to the groups in ``net.ipv4.ping_group_range``. When neither is allowed the
result says which setting to change. Loss ratio and round-trip min/avg/max/jitter are exported
as metrics, named like blackbox_exporter's where it has one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Sample
from probed.checks._failures import describe
from probed.checks._icmp_socket import EchoStats, IcmpPermissionError, ping
from probed.checks._net import IpVersion, family_for
from probed.checks._reasons import CONFIG, PACKET_LOSS, PERMISSION
from probed.hookspecs import hookimpl
from probed.options import Duration, format_duration
from probed.spec import CheckSpec
from probed.thresholds import Limit, WarnFail, check_order, evaluate

__all__ = ["IcmpCheck", "IcmpOptions", "timing_problem"]


class IcmpOptions(CheckOptions):
    """Options of the ``icmp`` check type."""

    host: str = Field(description="IP address or host name to ping.")
    count: int = Field(default=3, ge=1, le=100, description="Echo requests per run.")
    packet_interval: Duration = Field(default=0.5, description="Time between two echo requests.")
    reply_timeout: Duration = Field(default=1.0, description="How long to wait for each reply.")
    payload_size: int = Field(default=56, ge=0, le=65000, description="Payload bytes per request.")
    privileged: bool | None = Field(
        default=None,
        description="true: raw socket (root or CAP_NET_RAW); false: datagram socket "
        "(net.ipv4.ping_group_range); default: raw if allowed, else datagram.",
    )
    ip_version: IpVersion = Field(
        default="any", description="Address family used to resolve a host name."
    )
    warn_loss_ratio: float | None = Field(
        default=0.0, ge=0, le=1, description="Warn when the loss ratio is above this (0..1)."
    )
    fail_loss_ratio: float | None = Field(
        default=0.5, ge=0, le=1, description="Fail when the loss ratio is above this (0..1)."
    )
    warn_rtt: Duration | None = Field(
        default=None, description="Warn when the average round trip is above this."
    )
    fail_rtt: Duration | None = Field(
        default=None, description="Fail when the average round trip is above this."
    )

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("host must not be empty")
        return value

    @model_validator(mode="after")
    def _check_levels(self) -> IcmpOptions:
        check_order(self, "loss_ratio")
        check_order(self, "rtt")
        if ":" in self.host and self.ip_version == "ip4":
            raise ValueError(f"host {self.host} is an IPv6 address but ip_version is ip4")
        return self


def timing_problem(options: IcmpOptions, timeout: float) -> str | None:
    """Why ``count`` requests ``packet_interval`` apart cannot end within ``timeout``, or None.

    The last request leaves after ``(count - 1) * packet_interval`` and may wait ``reply_timeout``.
    """
    needed = (options.count - 1) * options.packet_interval + options.reply_timeout
    if needed < timeout:
        return None
    return (
        f"{options.count} echo requests {format_duration(options.packet_interval)} apart plus "
        f"reply_timeout {format_duration(options.reply_timeout)} take up to "
        f"{format_duration(needed)}, not less than the check timeout {format_duration(timeout)}: "
        "lower count, packet_interval or reply_timeout, or raise timeout"
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g}ms"


def _percent(ratio: float) -> str:
    return f"{ratio:.0%}"


class IcmpCheck(Check[IcmpOptions]):
    """Ping a host ``count`` times and judge packet loss and round-trip time."""

    type_name: ClassVar[str] = "icmp"
    options_model: ClassVar[type[CheckOptions]] = IcmpOptions
    requires: ClassVar[tuple[str, ...]] = ("icmplib",)
    extra: ClassVar[str | None] = "icmp"
    description: ClassVar[str] = "ICMP echo: packet loss and round-trip times (icmplib)"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_icmp_loss_ratio", "Share of echo requests without a reply (0..1)."),
        MetricDef(
            "probed_icmp_rtt_seconds",
            "Round-trip time of the replies in the last run, by statistic.",
            labels=("stat",),
        ),
        MetricDef("probed_icmp_packets_sent", "Echo requests sent in the last run."),
        MetricDef("probed_icmp_packets_received", "Echo replies received in the last run."),
    )

    @classmethod
    def timing_problem(cls, options: Any, interval: float, timeout: float) -> str | None:
        """The echo requests and the last reply wait must fit in the check's timeout."""
        return timing_problem(options, timeout)

    def __init__(self, spec: CheckSpec) -> None:
        super().__init__(spec)
        self._timing = timing_problem(self.options, spec.timeout)

    async def run(self) -> Result:
        """Resolve the host if needed, send the echo requests, judge loss and round trips."""
        opts = self.options
        if self._timing is not None:
            return Result.fail(CONFIG, self._timing)
        phases: dict[str, float] = {}
        address = await self._address(phases)
        if isinstance(address, Result):
            return address
        try:
            stats = await ping(
                address,
                count=opts.count,
                interval=opts.packet_interval,
                reply_timeout=opts.reply_timeout,
                payload_size=opts.payload_size,
                privileged=opts.privileged,
            )
        except IcmpPermissionError as exc:
            return Result.unknown(PERMISSION, str(exc), phases=phases)
        return self._judge(address, stats, phases)

    async def _address(self, phases: dict[str, float]) -> str | Result:
        host = self.options.host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return host
        family = family_for(self.options.ip_version)
        start = time.perf_counter()
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, family=family, type=socket.SOCK_DGRAM
            )
        except socket.gaierror as exc:
            reason, text = describe(exc, host) or (Reason.DNS, str(exc))
            return Result.fail(reason, text)
        phases["resolve"] = time.perf_counter() - start
        # Prefer IPv4 like ping(8) does for "any", so results do not flip between families.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        return str(infos[0][4][0])

    def _judge(self, address: str, stats: EchoStats, phases: dict[str, float]) -> Result:
        opts = self.options
        shown = opts.host if opts.host == address else f"{opts.host} ({address})"
        values = {
            "probed_icmp_packets_sent": float(stats.sent),
            "probed_icmp_packets_received": float(stats.received),
            "probed_icmp_loss_ratio": stats.loss_ratio,
        }
        kw: dict[str, Any] = {"phases": phases, "values": values}
        if stats.received == 0:
            if stats.error:
                return Result.fail(Reason.UNREACHABLE, f"{shown}: {stats.error}", **kw)
            return Result.fail(
                Reason.TIMEOUT,
                f"{shown}: no reply to {stats.sent} echo request(s) within "
                f"{format_duration(opts.reply_timeout)} each",
                **kw,
            )
        rtt = stats.rtt
        kw["samples"] = tuple(
            Sample("probed_icmp_rtt_seconds", value, (stat,))
            for stat, value in (
                ("min", rtt.min),
                ("avg", rtt.avg),
                ("max", rtt.max),
                ("jitter", rtt.jitter),
            )
        )
        summary = (
            f"{shown}: {stats.received}/{stats.sent} replies, round trip min/avg/max "
            f"{_ms(rtt.min)}/{_ms(rtt.avg)}/{_ms(rtt.max)}, jitter {_ms(rtt.jitter)}"
        )
        verdict = evaluate(
            (
                Limit(
                    f"loss {stats.loss_ratio:.0%}",
                    stats.loss_ratio,
                    WarnFail(opts.warn_loss_ratio, opts.fail_loss_ratio),
                    _percent,
                    PACKET_LOSS,
                ),
                Limit(
                    f"average round trip {_ms(rtt.avg)}",
                    rtt.avg,
                    WarnFail(opts.warn_rtt, opts.fail_rtt),
                    _ms,
                ),
            )
        )
        if not verdict.message:
            return Result.ok(summary, **kw)
        return Result(verdict.status, verdict.reason, f"{summary}; {verdict.message}", **kw)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``icmp`` check type."""
    return [IcmpCheck]
