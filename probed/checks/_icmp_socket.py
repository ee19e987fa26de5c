"""ICMP echo for the ``icmp`` check: opening the right socket and timing the replies.

:func:`ping` opens a raw (privileged) or datagram (unprivileged) ICMP socket with icmplib,
sends ``count`` echo requests on a fixed schedule (request *n* leaves ``n * interval`` after the
first, however long earlier replies took) and returns :class:`EchoStats`. When the kernel
refuses the socket, :class:`IcmpPermissionError` carries a sentence naming the setting to change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Final

from probed.threads import run_blocking

__all__ = ["EchoStats", "IcmpPermissionError", "RttStats", "ping", "ping_group_range"]

PING_GROUP_RANGE: Final = "/proc/sys/net/ipv4/ping_group_range"
SYSCTL_FIX: Final = 'sysctl -w net.ipv4.ping_group_range="0 2147483647"'
RAW_FIX: Final = (
    "run probed as root or grant it CAP_NET_RAW "
    "(systemd: AmbientCapabilities=CAP_NET_RAW; Kubernetes: securityContext.capabilities.add)"
)


class IcmpPermissionError(Exception):
    """Neither kind of ICMP socket may be opened; the message says what to change."""


@dataclass(frozen=True, slots=True)
class RttStats:
    """Round-trip statistics in seconds; jitter is the mean difference of consecutive RTTs."""

    min: float
    avg: float
    max: float
    jitter: float

    @classmethod
    def of(cls, rtts: list[float]) -> RttStats:
        """Statistics of a non-empty list of round-trip times."""
        diffs = [abs(b - a) for a, b in itertools.pairwise(rtts)]
        return cls(min(rtts), statistics.fmean(rtts), max(rtts), statistics.fmean(diffs or [0.0]))


@dataclass(frozen=True, slots=True)
class EchoStats:
    """What one burst of echo requests saw."""

    attempted: int
    sent: int
    rtts: list[float] = field(default_factory=list)
    error: str = ""
    privileged: bool = True

    @property
    def received(self) -> int:
        """Replies received in time."""
        return len(self.rtts)

    @property
    def loss_ratio(self) -> float:
        """Share of attempted requests without a reply (unsent ones count as lost)."""
        return 1.0 - self.received / self.attempted if self.attempted else 1.0

    @property
    def rtt(self) -> RttStats:
        """Round-trip statistics; only meaningful when ``received > 0``."""
        return RttStats.of(self.rtts) if self.rtts else RttStats(0.0, 0.0, 0.0, 0.0)


def ping_group_range(path: str = PING_GROUP_RANGE) -> tuple[int, int] | None:
    """The current ``net.ipv4.ping_group_range`` (blocking read of a /proc file), or None."""
    try:
        with open(path, encoding="ascii") as handle:
            low, high = handle.read().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def _group_hint() -> str:
    current = ping_group_range()
    groups = sorted({os.getegid(), *os.getgroups()})
    if current is None:
        return f"this process's groups are {groups}"
    low, high = current
    allowed = "no group" if low > high else f"groups {low}-{high}"
    return f"it is now {low} {high} ({allowed}) and this process's groups are {groups}"


def _permission_message(privileged: bool | None, address: str) -> str:
    """Say which socket was refused and what to change, for the operator reading the result."""
    if privileged:
        return (
            f"cannot open a raw ICMP socket to ping {address} (privileged: true): {RAW_FIX}, or "
            f"set privileged: false and allow datagram ICMP sockets with `{SYSCTL_FIX}`"
        )
    hint = _group_hint()
    if privileged is False:
        return (
            f"cannot open a datagram ICMP socket to ping {address} (privileged: false): the "
            f"kernel setting net.ipv4.ping_group_range does not include this process's group "
            f"({hint}); allow it with `{SYSCTL_FIX}` or {RAW_FIX} and set privileged: true"
        )
    return (
        f"cannot open an ICMP socket to ping {address}: raw sockets need root or CAP_NET_RAW, "
        f"and datagram sockets need this process's group in net.ipv4.ping_group_range "
        f"({hint}); allow them with `{SYSCTL_FIX}` or {RAW_FIX}"
    )


def _open(address: str, privileged: bool | None) -> tuple[Any, bool] | None:
    """Open the ICMP socket for ``address``: raw, datagram, or raw falling back to datagram.

    :return: the icmplib socket and whether it is raw, or None if the kernel refused both.
    """
    import icmplib

    kind = (
        icmplib.ICMPv6Socket if ipaddress.ip_address(address).version == 6 else icmplib.ICMPv4Socket
    )
    attempts = [True, False] if privileged is None else [privileged]
    for raw in attempts:
        try:
            return kind(None, raw), raw
        except icmplib.SocketPermissionError:
            continue
    return None


async def ping(
    address: str,
    *,
    count: int,
    interval: float,
    reply_timeout: float,
    payload_size: int,
    privileged: bool | None,
) -> EchoStats:
    """Send ``count`` echo requests to the IP ``address`` and collect the round trips.

    :raises IcmpPermissionError: if no ICMP socket may be opened.
    """
    import icmplib
    from icmplib.utils import unique_identifier

    opened = _open(address, privileged)
    if opened is None:
        # Built off the loop: the message quotes ping_group_range, read from /proc.
        raise IcmpPermissionError(await run_blocking(_permission_message, privileged, address))
    icmp_socket, raw = opened
    loop = asyncio.get_running_loop()
    ident = unique_identifier()
    sent, rtts, error = 0, [], ""
    with icmplib.AsyncSocket(icmp_socket) as sock:
        start = loop.time()
        for sequence in range(count):
            delay = start + sequence * interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            request = icmplib.ICMPRequest(
                destination=address, id=ident, sequence=sequence, payload_size=payload_size
            )
            try:
                sock.send(request)
            except icmplib.ICMPSocketError as exc:
                error = f"cannot send an echo request: {exc}"
                continue
            sent += 1
            try:
                reply = await sock.receive(request, reply_timeout)
                reply.raise_for_status()
            except icmplib.TimeoutExceeded:
                continue
            except icmplib.ICMPError as exc:
                # Destination unreachable / time exceeded from a router or the kernel.
                error = str(exc) or type(exc).__name__
                continue
            except icmplib.ICMPSocketError as exc:
                error = f"cannot receive: {exc}"
                continue
            rtts.append(max(reply.time - request.time, 0.0))
    return EchoStats(count, sent, rtts, error, raw)
