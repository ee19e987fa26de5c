"""The ``dns`` check type against real servers on loopback: dnsmasq and a misbehaving responder."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pydantic
import pytest

from probed.check import Reason, Status
from probed.checks._dns_server import DnsServer, NoNameserverError, parse_server, system_nameserver
from probed.checks.dns import RCODE, TRUNCATED, DnsCheck, DnsOptions
from probed.testing import run_check
from tests._require import can_bind, ipv6_loopback, requires
from tests.servers._util import free_port
from tests.servers.dns import Dnsmasq, FakeDnsServer

pytestmark = pytest.mark.services

# -- target up, the check's own cases (dnsmasq) ---------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_passes_when_dnsmasq_answers_the_expected_address(
    dnsmasq: Dnsmasq, transport: str
) -> None:
    result = await run_check(
        DnsCheck,
        query_name="ok.probed.test",
        server=dnsmasq.server,
        transport=transport,
        answer_contains=["127.0.0.1"],
        answer_regex=r"^127\.",
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_dns_rcode"] == 0
    assert result.values["probed_dns_answer_count"] == 1
    assert 0 < result.phases["lookup"] < 5
    assert "127.0.0.1" in result.message


async def test_nxdomain_fails_with_reason_rcode(dnsmasq: Dnsmasq) -> None:
    result = await run_check(DnsCheck, query_name="missing.probed.test", server=dnsmasq.server)
    assert result.status is Status.FAIL
    assert result.reason == RCODE
    assert "NXDOMAIN" in result.message
    assert result.values["probed_dns_rcode"] == 3


async def test_expected_nxdomain_passes(dnsmasq: Dnsmasq) -> None:
    result = await run_check(
        DnsCheck,
        query_name="missing.probed.test",
        server=dnsmasq.server,
        valid_rcodes=["nxdomain"],
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_dns_answer_count"] == 0


async def test_answer_contains_every_listed_value(dnsmasq: Dnsmasq) -> None:
    passing = await run_check(
        DnsCheck,
        query_name="multi.probed.test",
        server=dnsmasq.server,
        answer_contains=["127.0.0.2", "127.0.0.3"],
        min_answers=2,
    )
    assert passing.status is Status.OK, passing.message
    failing = await run_check(
        DnsCheck,
        query_name="multi.probed.test",
        server=dnsmasq.server,
        answer_contains=["127.0.0.2", "127.0.0.9"],
    )
    assert failing.status is Status.FAIL
    assert failing.reason == Reason.ASSERTION
    assert "127.0.0.9" in failing.message


async def test_answer_regex_must_match_every_answer(dnsmasq: Dnsmasq) -> None:
    result = await run_check(
        DnsCheck, query_name="multi.probed.test", server=dnsmasq.server, answer_regex=r"\.2$"
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert "127.0.0.3" in result.message
    assert "127.0.0.2" not in result.message.split("do not match")[0]


async def test_fewer_answers_than_min_answers_fails(dnsmasq: Dnsmasq) -> None:
    result = await run_check(
        DnsCheck, query_name="ok.probed.test", server=dnsmasq.server, min_answers=2
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert "expected at least 2" in result.message


async def test_txt_answer_matches_without_quotes(dnsmasq: Dnsmasq) -> None:
    result = await run_check(
        DnsCheck,
        query_name="txt.probed.test",
        query_type="txt",
        server=dnsmasq.server,
        answer_contains=["hello world"],
    )
    assert result.status is Status.OK, result.message


# -- target down, silent, recovering ---------------------------------------------------------


async def test_closed_tcp_port_is_connection_refused() -> None:
    result = await run_check(
        DnsCheck, query_name="ok.probed.test", server=f"127.0.0.1:{free_port()}", transport="tcp"
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.CONNECTION_REFUSED


async def test_unbound_udp_port_is_connection_refused() -> None:
    # On loopback the kernel answers with ICMP port unreachable; the connected socket sees it.
    result = await run_check(
        DnsCheck, timeout=3, query_name="ok.probed.test", server=f"127.0.0.1:{free_port()}"
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.CONNECTION_REFUSED
    assert result.duration < 2


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_silent_server_times_out_at_the_check_timeout(
    fake_dns: FakeDnsServer, transport: str
) -> None:
    fake_dns.mode = "silent"
    start = time.monotonic()
    result = await run_check(
        DnsCheck,
        timeout=0.5,
        query_name="ok.fake.test",
        server=f"127.0.0.1:{fake_dns.port}",
        transport=transport,
    )
    elapsed = time.monotonic() - start
    assert result.status is Status.FAIL
    assert result.reason == Reason.TIMEOUT
    assert fake_dns.queries >= 1
    assert 0.4 < elapsed < 2


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_garbage_reply_is_a_protocol_failure(fake_dns: FakeDnsServer, transport: str) -> None:
    fake_dns.mode = "garbage"
    result = await run_check(
        DnsCheck,
        query_name="ok.fake.test",
        server=f"127.0.0.1:{fake_dns.port}",
        transport=transport,
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL
    assert result.duration < 2


async def test_fails_while_dnsmasq_is_down_and_passes_once_it_is_back(dnsmasq: Dnsmasq) -> None:
    options: dict[str, Any] = {
        "query_name": "ok.probed.test",
        "server": dnsmasq.server,
        "transport": "tcp",
    }
    assert (await run_check(DnsCheck, **options)).status is Status.OK
    dnsmasq.stop()
    down = await run_check(DnsCheck, **options)
    assert down.status is Status.FAIL
    assert down.reason == Reason.CONNECTION_REFUSED
    dnsmasq.start()
    back = await run_check(DnsCheck, **options)
    assert back.status is Status.OK, back.message


async def test_recovers_when_the_server_starts_answering_again(fake_dns: FakeDnsServer) -> None:
    options: dict[str, Any] = {"query_name": "ok.fake.test", "server": f"127.0.0.1:{fake_dns.port}"}
    fake_dns.mode = "servfail"
    assert (await run_check(DnsCheck, **options)).status is Status.FAIL
    fake_dns.stop()
    stopped = await run_check(DnsCheck, **options)
    assert stopped.reason == Reason.CONNECTION_REFUSED
    fake_dns.mode = "answer"
    fake_dns.start()
    assert (await run_check(DnsCheck, **options)).status is Status.OK


# -- responses that are answers, but wrong ---------------------------------------------------


async def test_servfail_fails_with_reason_rcode(fake_dns: FakeDnsServer) -> None:
    fake_dns.mode = "servfail"
    result = await run_check(
        DnsCheck, query_name="ok.fake.test", server=f"127.0.0.1:{fake_dns.port}"
    )
    assert result.status is Status.FAIL
    assert result.reason == RCODE
    assert "SERVFAIL" in result.message
    assert result.values["probed_dns_rcode"] == 2


async def test_empty_noerror_answer_fails_unless_min_answers_is_zero(
    fake_dns: FakeDnsServer,
) -> None:
    fake_dns.mode = "empty"
    server = f"127.0.0.1:{fake_dns.port}"
    result = await run_check(DnsCheck, query_name="ok.fake.test", server=server)
    assert result.status is Status.FAIL
    assert result.reason == Reason.ASSERTION
    assert "0 A answer(s)" in result.message
    assert result.values["probed_dns_answer_count"] == 0
    nodata_ok = await run_check(DnsCheck, query_name="ok.fake.test", server=server, min_answers=0)
    assert nodata_ok.status is Status.OK


async def test_truncated_answer_is_retried_over_tcp(fake_dns: FakeDnsServer) -> None:
    fake_dns.mode = "truncate"
    result = await run_check(
        DnsCheck, query_name="ok.fake.test", server=f"127.0.0.1:{fake_dns.port}"
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_dns_truncated"] == 1
    assert result.values["probed_dns_answer_count"] == 1
    assert "after a truncated UDP answer" in result.message


async def test_truncated_answer_fails_when_tcp_fallback_is_off(fake_dns: FakeDnsServer) -> None:
    fake_dns.mode = "truncate"
    result = await run_check(
        DnsCheck,
        query_name="ok.fake.test",
        server=f"127.0.0.1:{fake_dns.port}",
        fallback_tcp=False,
    )
    assert result.status is Status.FAIL
    assert result.reason == TRUNCATED


async def test_answer_too_big_for_udp_arrives_in_full_over_tcp(fake_dns: FakeDnsServer) -> None:
    result = await run_check(
        DnsCheck, query_name="many.fake.test", server=f"127.0.0.1:{fake_dns.port}", min_answers=40
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_dns_answer_count"] == 40
    assert "and 37 more" in result.message


async def test_mx_answers_are_checked_by_type(fake_dns: FakeDnsServer) -> None:
    result = await run_check(
        DnsCheck,
        query_name="mail.fake.test",
        query_type="MX",
        server=f"127.0.0.1:{fake_dns.port}",
        answer_contains=["10 mx1.fake.test"],
        answer_regex=r"^\d+ mx\d\.fake\.test\.$",
    )
    assert result.status is Status.OK, result.message


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_loopback_server() -> None:
    server = FakeDnsServer(host="::1")
    server.start()
    try:
        result = await run_check(DnsCheck, query_name="ok.fake.test", server=f"[::1]:{server.port}")
    finally:
        server.stop()
    assert result.status is Status.OK, result.message
    assert "[::1]" in result.message


async def test_server_given_by_name_is_resolved_first() -> None:
    # Serve on whichever loopback address "localhost" resolves to first on this machine
    # (127.0.0.1 or ::1), so the check's own result decides nothing about the set-up.
    first = socket.getaddrinfo("localhost", None, type=socket.SOCK_DGRAM)[0][4][0]
    server = FakeDnsServer(host=str(first))
    server.start()
    try:
        result = await run_check(
            DnsCheck, query_name="ok.fake.test", server=f"localhost:{server.port}"
        )
    finally:
        server.stop()
    assert result.status is Status.OK, result.message
    assert "resolve" in result.phases


# -- the system resolver ---------------------------------------------------------------------


def test_system_nameserver_reads_the_first_nameserver(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 127.0.0.53\nnameserver 127.0.0.1\n")
    assert system_nameserver(str(conf)) == DnsServer("127.0.0.53", 53)


def test_system_nameserver_without_nameservers_says_what_to_do(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\n")
    with pytest.raises(NoNameserverError, match="set server: host"):
        system_nameserver(str(conf))


def test_system_resolver_is_read_from_etc_resolv_conf() -> None:
    assert DnsCheck.resolv_conf == "/etc/resolv.conf"


@requires(lambda: can_bind("127.0.53.77", 53), "cannot bind 127.0.53.77:53 (needs root)")
async def test_without_server_the_system_resolver_is_asked(tmp_path: Path) -> None:
    # resolv.conf cannot name a port: serve on port 53 of a loopback address of our own.
    server = FakeDnsServer(host="127.0.53.77", port=53)
    server.start()
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.53.77\n")

    class LocalResolverDns(DnsCheck):
        resolv_conf = str(conf)

    try:
        result = await run_check(LocalResolverDns, query_name="ok.fake.test")
    finally:
        server.stop()
    assert result.status is Status.OK, result.message
    assert "127.0.53.77:53" in result.message


async def test_missing_system_resolver_is_unknown_not_an_exception(tmp_path: Path) -> None:
    class NoResolverDns(DnsCheck):
        resolv_conf = str(tmp_path / "absent.conf")

    result = await run_check(NoResolverDns, query_name="ok.probed.test")
    assert result.status is Status.UNKNOWN
    assert result.reason == Reason.DNS
    assert "set server: host[:port]" in result.message


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", DnsServer("127.0.0.1", 53)),
        ("127.0.0.1:5353", DnsServer("127.0.0.1", 5353)),
        ("::1", DnsServer("::1", 53)),
        ("[::1]:5353", DnsServer("::1", 5353)),
        ("dns.example:54", DnsServer("dns.example", 54)),
    ],
)
def test_server_forms(text: str, expected: DnsServer) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"server": "127.0.0.1:99999"}, "invalid port"),
        ({"server": "[::1"}, "use [v6addr]"),
        ({"query_type": "BOGUS"}, "unknown record type"),
        ({"valid_rcodes": ["NOPE"]}, "unknown rcode"),
        ({"answer_regex": "("}, "invalid regular expression"),
        ({"transport": "tcp", "fallback_tcp": False}, "only applies to transport: udp"),
        ({"query_name": "  "}, "must not be empty"),
        ({"min_answers": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_options_are_explained(options: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("[", r"\[")):
        DnsOptions.model_validate({"query_name": "ok.probed.test", **options})


def test_options_normalise_case() -> None:
    options = DnsOptions.model_validate(
        {"query_name": "x.test", "query_type": "aaaa", "valid_rcodes": "nxdomain"}
    )
    assert options.query_type == "AAAA"
    assert options.valid_rcodes == ("NXDOMAIN",)
