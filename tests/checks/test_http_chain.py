"""The ``http`` check over TLS: the whole verified chain and ``tls.min_version``.

Chains come from ``tests/servers/tls_targets`` (built with ``cryptography``: trustme cannot
give an intermediate its own expiry) and are served by aiohttp on loopback.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks.http import HttpCheck, HttpOptions
from probed.checks.json_api import JsonApiCheck
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
