"""The ``icmp`` check type: real echo requests to loopback and to hosts in our own namespaces."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest

from probed.check import Reason, Result, Status
from probed.checks._icmp_socket import SYSCTL_FIX, _permission_message, ping_group_range
from probed.checks.icmp import (
    CONFIG,
    PACKET_LOSS,
    PERMISSION,
    IcmpCheck,
    IcmpOptions,
    timing_problem,
)
from probed.testing import run_check
from tests._require import ipv6_loopback, is_root, require, requires
from tests.servers.netns import NetnsPeer

FAST: dict[str, Any] = {"packet_interval": "50ms", "reply_timeout": "500ms"}


def rtt(result: Result) -> dict[str, float]:
    """The round-trip samples of a result, by statistic."""
    return {s.labels[0]: s.value for s in result.samples if s.name == "probed_icmp_rtt_seconds"}


@pytest.fixture
def set_ping_group_range() -> Iterator[Callable[[str], None]]:
    """Set net.ipv4.ping_group_range for one test and restore it afterwards."""
    path = Path("/proc/sys/net/ipv4/ping_group_range")
    require(os.access(path, os.W_OK), f"{path} is not writable (needs root)")
    saved = path.read_text()

    def write(value: str) -> None:
        path.write_text(value)

    try:
        yield write
    finally:
        path.write_text(saved)


# -- target up ------------------------------------------------------------------------------


async def test_loopback_passes_with_plausible_round_trips() -> None:
    result = await run_check(IcmpCheck, host="127.0.0.1", count=3, **FAST)
    assert result.status is Status.OK, result.message
    assert result.values["probed_icmp_packets_sent"] == 3
    assert result.values["probed_icmp_packets_received"] == 3
    assert result.values["probed_icmp_loss_ratio"] == 0
    stats = rtt(result)
    assert set(stats) == {"min", "avg", "max", "jitter"}
    assert 0 < stats["min"] <= stats["avg"] <= stats["max"] < 0.5
    assert 0 <= stats["jitter"] <= stats["max"] - stats["min"]
    assert "3/3 replies" in result.message


async def test_loopback_alias_and_large_payload_pass() -> None:
    result = await run_check(IcmpCheck, host="127.0.0.77", count=2, payload_size=1400, **FAST)
    assert result.status is Status.OK, result.message


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_loopback_passes() -> None:
    result = await run_check(IcmpCheck, host="::1", count=2, **FAST)
    assert result.status is Status.OK, result.message


async def test_host_name_is_resolved_first() -> None:
    result = await run_check(IcmpCheck, host="localhost", ip_version="ip4", count=1, **FAST)
    assert result.status is Status.OK, result.message
    assert "resolve" in result.phases
    assert "localhost (127.0.0.1)" in result.message


async def test_host_in_our_namespace_answers(netns_peer: NetnsPeer) -> None:
    result = await run_check(IcmpCheck, host=netns_peer.address, count=2, **FAST)
    assert result.status is Status.OK, result.message


# -- target silent, recovering -------------------------------------------------------------


async def test_host_that_never_answers_fails_with_timeout(silent_host: NetnsPeer) -> None:
    result = await run_check(
        IcmpCheck,
        timeout=2,
        host=silent_host.address,
        count=3,
        packet_interval="50ms",
        reply_timeout="300ms",
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.TIMEOUT
    assert result.values["probed_icmp_loss_ratio"] == 1
    assert result.values["probed_icmp_packets_sent"] == 3
    assert result.values["probed_icmp_packets_received"] == 0
    assert rtt(result) == {}
    # Three requests, each waiting its 300ms: well inside the 2s timeout, never beyond it.
    assert 0.8 < result.duration < 2


async def test_fails_while_silent_and_passes_once_the_host_answers(
    silent_host: NetnsPeer,
) -> None:
    options: dict[str, Any] = {
        "host": silent_host.address,
        "count": 2,
        "packet_interval": "50ms",
        "reply_timeout": "200ms",
    }
    assert (await run_check(IcmpCheck, **options)).status is Status.FAIL
    silent_host.ignore_echo(False)
    back = await run_check(IcmpCheck, **options)
    assert back.status is Status.OK, back.message


# -- thresholds -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fail_loss_ratio", "status"), [(0.9, Status.WARN), (0.1, Status.FAIL)])
async def test_partial_loss_warns_or_fails_by_threshold(
    netns_peer: NetnsPeer, fail_loss_ratio: float, status: Status
) -> None:
    # One echo reply per 20s after the kernel's initial 60s allowance: 3 of 5 answered.
    netns_peer.limit_echo_replies(20_000)
    result = await run_check(
        IcmpCheck,
        host=netns_peer.address,
        count=5,
        warn_loss_ratio=0.0,
        fail_loss_ratio=fail_loss_ratio,
        **FAST,
    )
    loss = result.values["probed_icmp_loss_ratio"]
    assert 0 < loss < 1, result.message
    assert loss == 1 - result.values["probed_icmp_packets_received"] / 5
    assert result.status is status
    assert result.reason == PACKET_LOSS
    assert f"above the {status.label} threshold" in result.message
    assert set(rtt(result)) == {"min", "avg", "max", "jitter"}


async def test_loss_below_thresholds_is_ok(netns_peer: NetnsPeer) -> None:
    netns_peer.limit_echo_replies(20_000)
    result = await run_check(
        IcmpCheck,
        host=netns_peer.address,
        count=5,
        warn_loss_ratio=None,
        fail_loss_ratio=0.9,
        **FAST,
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_icmp_loss_ratio"] > 0


@pytest.mark.parametrize(
    ("limits", "status"),
    [
        ({"warn_rtt": "0.001ms", "fail_rtt": "10s"}, Status.WARN),
        ({"warn_rtt": "0.001ms", "fail_rtt": "0.001ms"}, Status.FAIL),
        ({"fail_rtt": "0.001ms"}, Status.FAIL),
        ({"warn_rtt": "5s", "fail_rtt": "10s"}, Status.OK),
    ],
)
async def test_round_trip_thresholds(limits: dict[str, Any], status: Status) -> None:
    # Loopback round trips take microseconds: above 1µs, far below 5s.
    result = await run_check(IcmpCheck, host="127.0.0.1", count=2, **FAST, **limits)
    assert result.status is status, result.message
    if status is not Status.OK:
        assert result.reason == Reason.THRESHOLD
        assert "average round trip" in result.message


# -- sockets: privileged and not --------------------------------------------------------------


async def test_unprivileged_datagram_socket_works_when_the_sysctl_allows_it(
    set_ping_group_range: Callable[[str], None],
) -> None:
    set_ping_group_range("0 2147483647")
    result = await run_check(IcmpCheck, host="127.0.0.1", privileged=False, count=2, **FAST)
    assert result.status is Status.OK, result.message
    assert len(rtt(result)) == 4


async def test_unprivileged_refused_names_the_sysctl_to_change(
    set_ping_group_range: Callable[[str], None],
) -> None:
    set_ping_group_range("1 0")
    result = await run_check(IcmpCheck, host="127.0.0.1", privileged=False, count=1, **FAST)
    assert result.status is Status.UNKNOWN
    assert result.reason == PERMISSION
    assert 'sysctl -w net.ipv4.ping_group_range="0 2147483647"' in result.message
    assert "it is now 1 0 (no group)" in result.message


@requires(is_root, "raw ICMP sockets need root")
async def test_privileged_raw_socket_as_root() -> None:
    result = await run_check(IcmpCheck, host="127.0.0.1", privileged=True, count=1, **FAST)
    assert result.status is Status.OK, result.message


def test_permission_messages_say_what_to_change() -> None:
    raw = _permission_message(True, "127.0.0.1")
    assert "CAP_NET_RAW" in raw
    assert SYSCTL_FIX in raw
    auto = _permission_message(None, "127.0.0.1")
    assert "CAP_NET_RAW" in auto
    assert SYSCTL_FIX in auto


def test_ping_group_range_parses_the_proc_file(tmp_path: Path) -> None:
    conf = tmp_path / "range"
    conf.write_text("1\t0\n")
    assert ping_group_range(str(conf)) == (1, 0)
    assert ping_group_range(str(tmp_path / "absent")) is None


# -- options and timing ---------------------------------------------------------------------


async def test_requests_that_cannot_fit_the_timeout_are_a_clear_config_error() -> None:
    result = await run_check(
        IcmpCheck, timeout=1, host="127.0.0.1", count=10, packet_interval="500ms"
    )
    assert result.status is Status.FAIL
    assert result.reason == CONFIG
    assert "10 echo requests 500ms apart" in result.message
    assert "lower count, packet_interval or reply_timeout, or raise timeout" in result.message
    assert result.duration < 0.5


def test_timing_problem_counts_the_last_reply_wait() -> None:
    options = IcmpOptions(host="127.0.0.1", count=3, packet_interval=1.0, reply_timeout=1.0)
    assert timing_problem(options, 3.5) is None
    problem = timing_problem(options, 3.0)
    assert problem is not None
    assert "take up to 3s, not less than the check timeout 3s" in problem


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"warn_loss_ratio": 0.5, "fail_loss_ratio": 0.2},
            "warn_loss_ratio (0.5) must not be above fail_loss_ratio (0.2)",
        ),
        ({"warn_rtt": "2s", "fail_rtt": "1s"}, "warn_rtt (2s) must not be above fail_rtt (1s)"),
        ({"count": 0}, "greater than or equal to 1"),
        ({"fail_loss_ratio": 1.5}, "less than or equal to 1"),
        ({"packet_interval": "soon"}, "invalid duration"),
        ({"host": " "}, "host must not be empty"),
        ({"host": "::1", "ip_version": "ip4"}, "is an IPv6 address"),
        # interval and timeout are the check's own keys, beside the type options.
        ({"timeout": "1s"}, "Extra inputs are not permitted"),
        ({"interval": "1s"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options_are_explained(options: dict[str, object], message: str) -> None:
    with pytest.raises(
        pydantic.ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        IcmpOptions.model_validate({"host": "127.0.0.1", **options})
