"""The ``http`` check over TLS: the whole verified chain and ``tls.min_version``.

Chains come from ``tests/servers/tls_targets`` (built with ``cryptography``: trustme cannot
give an intermediate its own expiry) and are served by aiohttp on loopback.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks._tls import _der_time
from probed.checks.http import HttpCheck, HttpOptions
from probed.checks.json_api import JsonApiCheck
from probed.checks.tcp import TcpCheck
from probed.testing import run_check
from tests.servers._web import serve_app
from tests.servers.tls_targets import INTERMEDIATE_CN, TlsChains

EARLIEST = "probed_tls_cert_expiry_timestamp_seconds"
LEAF = "probed_tls_leaf_cert_expiry_timestamp_seconds"
LAST_CHAIN = "probed_tls_last_chain_expiry_timestamp_seconds"


def _app(redirect_to: str | None = None) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        if redirect_to is not None:
            raise web.HTTPFound(redirect_to)
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_get("/", hello)
    return app


@pytest.mark.parametrize("http2", [False, True])
async def test_expiry_is_the_intermediate_expiring_before_the_leaf(
    tls_chains: TlsChains, http2: bool
) -> None:
    cert = tls_chains.issue(leaf_days=90, intermediate_days=10)
    assert cert.intermediate_not_after is not None
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        result = await run_check(
            HttpCheck, url=url + "/", tls={"ca_file": tls_chains.ca_file}, enable_http2=http2
        )
    assert (result.status, result.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    assert result.values[EARLIEST] == pytest.approx(cert.intermediate_not_after)
    assert result.values[LEAF] == pytest.approx(cert.leaf_not_after)
    assert result.values[LAST_CHAIN] == pytest.approx(cert.intermediate_not_after)
    assert f"intermediate CN={INTERMEDIATE_CN}: TLS certificate expires in 10.0 days" in (
        result.message
    )


async def test_thresholds_judge_the_earliest_of_the_chain(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue(leaf_days=90, intermediate_days=10)
    tls: dict[str, Any] = {"ca_file": tls_chains.ca_file}
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        failing = await run_check(HttpCheck, url=url, tls={**tls, "expiry_fail_days": 11})
        quiet = await run_check(HttpCheck, url=url, tls={**tls, "expiry_warn_days": 9})
    assert (failing.status, failing.reason) == (Status.FAIL, Reason.CERT_EXPIRY)
    assert quiet.status is Status.OK, quiet.message
    assert quiet.values[EARLIEST] == pytest.approx(cert.intermediate_not_after)


async def test_a_leaf_expiring_first_is_not_named_and_the_chain_values_are_the_leafs(
    tls_chains: TlsChains,
) -> None:
    cert = tls_chains.issue(leaf_days=5, intermediate_days=365)
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        result = await run_check(HttpCheck, url=url, tls={"ca_file": tls_chains.ca_file})
    assert (result.status, result.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    assert ": TLS certificate expires in 5.0 days" in result.message
    assert "intermediate" not in result.message
    assert result.values[EARLIEST] == result.values[LEAF] == result.values[LAST_CHAIN]


async def test_without_verification_the_presented_chain_counts_and_no_last_chain(
    tls_chains: TlsChains,
) -> None:
    cert = tls_chains.issue(leaf_days=90, intermediate_days=10)
    assert cert.intermediate_not_after is not None
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        result = await run_check(HttpCheck, url=url, tls={"verify": False})
    assert result.values[EARLIEST] == pytest.approx(cert.intermediate_not_after)
    assert LAST_CHAIN not in result.values  # nothing was verified


async def test_earliest_spans_every_hop_and_last_chain_is_the_final_hops(
    tls_chains: TlsChains,
) -> None:
    short = tls_chains.issue(leaf_days=90, intermediate_days=20)
    long = tls_chains.issue(leaf_days=200, intermediate_days=400)
    assert short.intermediate_not_after is not None
    async with (
        serve_app(_app(), ssl_context=long.context()) as final,
        serve_app(_app(final + "/"), ssl_context=short.context()) as first,
    ):
        result = await run_check(JsonApiCheck, url=first + "/", tls={"ca_file": tls_chains.ca_file})
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_redirects"] == 1
    assert result.values[EARLIEST] == pytest.approx(short.intermediate_not_after)
    assert result.values[LEAF] == pytest.approx(long.leaf_not_after)
    assert result.values[LAST_CHAIN] == pytest.approx(long.leaf_not_after)


async def test_min_version_against_a_server_capped_at_tls_1_2(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue()
    tls: dict[str, Any] = {"ca_file": tls_chains.ca_file}
    capped = cert.context(max_version=ssl.TLSVersion.TLSv1_2)
    async with serve_app(_app(), ssl_context=capped) as url:
        default = await run_check(HttpCheck, url=url, tls=tls)
        twelve = await run_check(HttpCheck, url=url, tls={**tls, "min_version": 1.2})
        refused = await run_check(HttpCheck, url=url, tls={**tls, "min_version": "TLSv1.3"})
    assert default.status is Status.OK, default.message
    assert twelve.status is Status.OK, twelve.message
    assert (refused.status, refused.reason) == (Status.FAIL, Reason.TLS)
    assert refused.message == (
        f"GET {url}/: TLS handshake failed: the server negotiates TLS 1.2, below min_version 1.3"
    )
    assert "tls" in refused.phases


async def test_min_version_1_3_passes_against_a_tls_1_3_server(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue()
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        result = await run_check(
            HttpCheck, url=url, tls={"ca_file": tls_chains.ca_file, "min_version": "1.3"}
        )
    assert result.status is Status.OK, result.message


@pytest.mark.parametrize(
    ("given", "stored"), [(1.3, "1.3"), ("TLS 1.2", "1.2"), ("TLSv1", "1.0"), (None, None)]
)
def test_min_version_spellings(given: Any, stored: str | None) -> None:
    options = HttpOptions.model_validate(
        {"url": "https://example.test/", "tls": {"min_version": given}}
    )
    assert options.tls.min_version == stored


def test_min_version_unknown_is_refused() -> None:
    with pytest.raises(ValidationError, match="min_version"):
        HttpOptions.model_validate({"url": "https://example.test/", "tls": {"min_version": 1.4}})


def test_certificate_times_follow_rfc_5280() -> None:
    utc = dt.UTC
    assert (
        _der_time(0x17, b"491231235959Z")
        == dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=utc).timestamp()
    )
    assert _der_time(0x17, b"500101000000Z") == dt.datetime(1950, 1, 1, tzinfo=utc).timestamp()
    assert _der_time(0x18, b"20991231000000Z") == dt.datetime(2099, 12, 31, tzinfo=utc).timestamp()
    with pytest.raises(ValueError, match="unexpected certificate time"):
        _der_time(0x17, b"2601011200Z")


# -- blackbox_exporter agreement ---------------------------------------------------------------


async def test_blackbox_agrees_on_chain_expiry_min_version_and_family_fallback(
    blackbox_exporter: Callable[[dict[str, Any]], Any], tls_chains: TlsChains
) -> None:
    tls_config = {"ca_file": tls_chains.ca_file}
    http: dict[str, Any] = {"preferred_ip_protocol": "ip4", "tls_config": tls_config}
    bb = await asyncio.to_thread(
        blackbox_exporter,
        {
            "chain": {"prober": "http", "timeout": "3s", "http": http},
            "tls13": {
                "prober": "http",
                "timeout": "3s",
                "http": {**http, "tls_config": {**tls_config, "min_version": "TLS13"}},
            },
            "ip6_fallback": {"prober": "http", "timeout": "3s", "http": {}},
            "ip6_only": {
                "prober": "http",
                "timeout": "3s",
                "http": {"preferred_ip_protocol": "ip6", "ip_protocol_fallback": False},
            },
        },
    )
    cert = tls_chains.issue(leaf_days=90, intermediate_days=20)
    tls = {"ca_file": tls_chains.ca_file}
    capped = tls_chains.issue().context(max_version=ssl.TLSVersion.TLSv1_2)
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        ours = await run_check(HttpCheck, url=url + "/", tls=tls)
        theirs = await asyncio.to_thread(bb.probe, "chain", url + "/")
    assert ours.status.passed and theirs["probe_success"] == 1.0
    assert ours.values[EARLIEST] == theirs["probe_ssl_earliest_cert_expiry"]
    assert ours.values[LAST_CHAIN] == theirs["probe_ssl_last_chain_expiry_timestamp_seconds"]
    async with serve_app(_app(), ssl_context=capped) as url:
        ours = await run_check(HttpCheck, url=url + "/", tls={**tls, "min_version": "1.3"})
        theirs = await asyncio.to_thread(bb.probe, "tls13", url + "/")
    assert (ours.status.passed, theirs["probe_success"]) == (False, 0.0)
    # The server listens on 127.0.0.1 only. Where localhost has no IPv6 address, blackbox's
    # default (ip6 preferred, fallback on) and probed's preferred_ip_protocol: ip6 both fall back
    # to 127.0.0.1; where it has ::1, blackbox connects to ::1 only and fails while probed falls
    # back on the refused connection (documented). Without fallback both fail.
    infos = await asyncio.get_running_loop().getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    localhost6 = any(info[0] == socket.AF_INET6 for info in infos)
    async with serve_app(_app()) as url:
        named = url.replace("127.0.0.1", "localhost") + "/"
        fallback = await run_check(HttpCheck, url=named, preferred_ip_protocol="ip6")
        strict = await run_check(
            HttpCheck, url=named, preferred_ip_protocol="ip6", ip_protocol_fallback=False
        )
        bb_fallback = await asyncio.to_thread(bb.probe, "ip6_fallback", named)
        bb_strict = await asyncio.to_thread(bb.probe, "ip6_only", named)
    assert (fallback.status.passed, bb_fallback["probe_success"]) == (
        True,
        0.0 if localhost6 else 1.0,
    )
    assert (strict.status.passed, bb_strict["probe_success"]) == (False, 0.0)


async def test_a_failed_handshake_leaves_no_unretrieved_exception(
    tls_chains: TlsChains, caplog: pytest.LogCaptureFixture
) -> None:
    cert = tls_chains.issue()
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        result = await run_check(HttpCheck, url=url)  # the system CAs do not trust this chain
    gc.collect()  # an unretrieved future's exception is logged when it is collected
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()] == []


async def test_tcp_over_tls_reports_the_chains_earliest_expiry_too(tls_chains: TlsChains) -> None:
    # tcp (and grpc) connect through the same _net.open_connection, which reads the chain.
    cert = tls_chains.issue(leaf_days=90, intermediate_days=10)
    assert cert.intermediate_not_after is not None
    async with serve_app(_app(), ssl_context=cert.context()) as url:
        address = url.removeprefix("https://")
        result = await run_check(TcpCheck, address=address, tls={"ca_file": tls_chains.ca_file})
    assert (result.status, result.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    assert result.values[EARLIEST] == pytest.approx(cert.intermediate_not_after)
