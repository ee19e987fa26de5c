"""HTTP/2 in the ``http`` and ``json_api`` check types: ``enable_http2`` and ``valid_http_versions``
against real hypercorn servers (ALPN h2 + http/1.1, h2 only, http/1.1 only), hostile raw HTTP/2
servers, and blackbox_exporter on the same targets."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import hpack
import pytest
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks.http import HttpCheck, HttpOptions
from probed.checks.json_api import JsonApiCheck
from probed.testing import run_check
from tests.servers.blackbox import BlackboxExporter
from tests.servers.proxy import Tinyproxy
from tests.servers.tls import TlsFiles

H2Servers = Callable[[str], str]
SECRET = "h2-s3cret-token-77"


def _tls(tls_files: TlsFiles) -> dict[str, Any]:
    return {"tls": {"ca_file": tls_files.ca_file}}


# -- negotiation ------------------------------------------------------------------------------


async def test_enable_http2_negotiates_h2_by_alpn_with_every_phase(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    base = h2_servers("alpn")
    result = await run_check(
        HttpCheck,
        url=f"{base}/",
        enable_http2=True,
        body_must_match=["hello over HTTP/2"],
        header_must_match={"X-Probe": "^h2-yes$"},
        **_tls(tls_files),
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 2.0
    assert result.values["probed_http_status_code"] == 200
    assert result.values["probed_http_content_length_bytes"] == len("hello over HTTP/2")
    assert set(result.phases) == {"connect", "tls", "processing", "transfer"}
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0


async def test_http2_is_off_by_default_and_the_same_server_answers_http_1_1(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    result = await run_check(
        HttpCheck, url=f"{h2_servers('alpn')}/", body_must_match=["HTTP/1.1"], **_tls(tls_files)
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 1.1


async def test_plain_http_url_stays_http_1_1_with_enable_http2(tls_files: TlsFiles) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await run_check(HttpCheck, url=f"http://127.0.0.1:{port}/", enable_http2=True)
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 1.1


async def test_valid_http_versions_pass_and_fail_as_configured(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    url = f"{h2_servers('alpn')}/"
    only_h2 = await run_check(
        HttpCheck, url=url, valid_http_versions=["HTTP/2.0"], **_tls(tls_files)
    )
    assert only_h2.status is Status.OK, only_h2.message  # HTTP/2.0 listed: h2 offered by default
    assert only_h2.values["probed_http_version"] == 2.0
    only_11 = await run_check(
        HttpCheck, url=url, enable_http2=True, valid_http_versions=["HTTP/1.1"], **_tls(tls_files)
    )
    assert only_11.status is Status.FAIL
    assert only_11.reason == Reason.PROTOCOL
    assert "response is HTTP/2.0, valid_http_versions is HTTP/1.1" in only_11.message
    assert only_11.phases.keys() >= {"tls", "processing", "transfer"}
    both = await run_check(
        HttpCheck, url=url, valid_http_versions=["HTTP/1.1", "HTTP/2.0"], **_tls(tls_files)
    )
    assert both.status is Status.OK, both.message


async def test_h2_required_but_server_speaks_only_http_1_1_says_alpn(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    url = f"{h2_servers('h1-only')}/"
    result = await run_check(
        HttpCheck, url=url, valid_http_versions=["HTTP/2.0"], **_tls(tls_files)
    )
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL
    assert "response is HTTP/1.1, valid_http_versions is HTTP/2.0" in result.message
    assert "did not choose h2" in result.message and "ALPN" in result.message
    fallback = await run_check(HttpCheck, url=url, enable_http2=True, **_tls(tls_files))
    assert fallback.status is Status.OK, fallback.message
    assert fallback.values["probed_http_version"] == 1.1


async def test_h2_only_server_works_with_enable_http2_and_fails_clearly_without(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    url = f"{h2_servers('h2-only')}/"
    with_h2 = await run_check(HttpCheck, url=url, enable_http2=True, **_tls(tls_files))
    assert with_h2.status is Status.OK, with_h2.message
    assert with_h2.values["probed_http_version"] == 2.0
    without = await run_check(HttpCheck, url=url, **_tls(tls_files))
    assert without.status is Status.FAIL
    assert without.reason == Reason.PROTOCOL
    assert "speaks HTTP/2 only" in without.message
    assert "enable_http2: true" in without.message


# -- requests, redirects, budgets -------------------------------------------------------------


async def test_method_body_headers_and_secret_header_are_sent_over_h2(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    result = await run_check(
        HttpCheck,
        url=f"{h2_servers('alpn')}/echo",
        enable_http2=True,
        method="POST",
        body="ping-body",
        headers={"X-Custom": "custom-1", "Connection": "keep-alive"},
        bearer_token=SECRET,
        body_must_match=[
            r"^POST ping-body \|",
            "x-custom=custom-1",
            f"authorization=Bearer {SECRET}",
            "content-length=9",
            "user-agent=probed/",
        ],
        body_must_not_match=["connection="],  # connection-specific: not allowed in HTTP/2
        **_tls(tls_files),
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 2.0
    assert SECRET not in result.message


async def test_redirects_are_followed_over_h2_and_counted(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    base = h2_servers("alpn")
    result = await run_check(
        HttpCheck, url=f"{base}/redirect", enable_http2=True, **_tls(tls_files)
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_redirects"] == 1
    assert result.values["probed_http_version"] == 2.0
    # to another server that speaks HTTP/1.1 only: the final hop's version counts
    other = h2_servers("h1-only")
    mixed = await run_check(
        HttpCheck,
        url=f"{base}/to?url={other}/",
        valid_http_versions=["HTTP/2.0"],
        **_tls(tls_files),
    )
    assert mixed.status is Status.FAIL
    assert mixed.values["probed_http_redirects"] == 1
    assert "response is HTTP/1.1" in mixed.message
    kept = await run_check(
        HttpCheck,
        url=f"{base}/redirect",
        enable_http2=True,
        follow_redirects=False,
        valid_status_codes=[302],
        **_tls(tls_files),
    )
    assert kept.status is Status.OK, kept.message
    assert kept.values["probed_http_status_code"] == 302


async def test_request_body_larger_than_the_servers_window_is_sent_whole(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    result = await run_check(
        HttpCheck,
        url=f"{h2_servers('alpn')}/echo",
        enable_http2=True,
        method="PUT",
        body="a" * 150_000,  # over HTTP/2's initial 65 535-byte flow-control window
        body_must_match=[r"^PUT a{150000} \|", "content-length=150000"],
        **_tls(tls_files),
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 2.0


async def test_credentials_follow_h2_redirects_to_the_origin_only(
    h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    base = h2_servers("alpn")
    same = await run_check(
        HttpCheck,
        url=f"{base}/to?url=/echo",
        enable_http2=True,
        bearer_token=SECRET,
        body_must_match=[f"authorization=Bearer {SECRET}"],
        **_tls(tls_files),
    )
    assert same.status is Status.OK, same.message
    other = await run_check(
        HttpCheck,
        url=f"{base}/to?url={h2_servers('h2-only')}/echo",
        enable_http2=True,
        bearer_token=SECRET,
        body_must_match=["user-agent=probed/"],
        body_must_not_match=["authorization"],
        **_tls(tls_files),
    )
    assert other.status is Status.OK, other.message
    assert other.values["probed_http_redirects"] == 1
    assert SECRET not in same.message + other.message


async def test_h2_through_a_connect_tunnel_of_a_real_proxy(
    tinyproxy: Callable[..., Tinyproxy], h2_servers: H2Servers, tls_files: TlsFiles
) -> None:
    proxy = tinyproxy()
    url = f"{h2_servers('h2-only')}/"
    result = await run_check(
        HttpCheck, url=url, enable_http2=True, proxy_url=proxy.url, **_tls(tls_files)
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 2.0
    assert set(result.phases) >= {"connect", "proxy_connect", "tls", "processing", "transfer"}
    assert f"CONNECT {url.removeprefix('https://').rstrip('/')}" in proxy.log_text()


async def test_h2_server_that_never_answers_is_cut_at_the_timeout(tls_files: TlsFiles) -> None:
    release = asyncio.Event()
    ctx = tls_files.server_context()
    ctx.set_alpn_protocols(["h2"])

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(_SETTINGS)  # the preface, then nothing
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0, ssl=ctx)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await run_check(
            HttpCheck,
            url=f"https://127.0.0.1:{port}/",
            enable_http2=True,
            timeout=0.5,
            **_tls(tls_files),
        )
        release.set()
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert result.message.endswith("while waiting for the response headers")


@pytest.mark.parametrize(
    ("path", "limit", "reason", "said"),
    [
        ("/big", {"max_body_size": "50KiB"}, Reason.BODY_SIZE, "exceeds max_body_size of 51200"),
        ("/many-headers", {"max_header_size": "32KiB"}, "header_size", "of 32.0 KiB"),
        ("/huge-header", {"max_header_size": "32KiB"}, "header_size", "of 32.0 KiB"),
    ],
)
async def test_h2_body_and_header_list_are_bounded_by_the_http_budgets(
    h2_servers: H2Servers,
    tls_files: TlsFiles,
    path: str,
    limit: dict[str, Any],
    reason: str,
    said: str,
) -> None:
    url = f"{h2_servers('alpn')}{path}"
    result = await run_check(HttpCheck, url=url, enable_http2=True, **limit, **_tls(tls_files))
    assert (result.status, result.reason) == (Status.FAIL, reason)
    assert said in result.message
    if reason == Reason.BODY_SIZE:  # the status line was read: its values are kept
        assert result.values["probed_http_version"] == 2.0
        assert result.values["probed_http_status_code"] == 200


async def test_json_api_inherits_http2(h2_servers: H2Servers, tls_files: TlsFiles) -> None:
    result = await run_check(
        JsonApiCheck,
        url=f"{h2_servers('h2-only')}/json",
        enable_http2=True,
        assertions=[{"path": "proto", "op": "eq", "value": "2"}],
        **_tls(tls_files),
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 2.0


# -- hostile HTTP/2 servers ---------------------------------------------------------------------


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


_SETTINGS = _frame(4, 0, 0, b"")
_HEADERS_100 = _frame(
    1, 4, 1, hpack.Encoder().encode([(":status", "200"), ("content-length", "100")])
)


@contextlib.asynccontextmanager
async def raw_h2_server(
    tls_files: TlsFiles, reply: Callable[[], list[bytes]], ctx: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """A TLS server choosing h2 by ALPN that reads the client's first bytes, writes the frames
    of ``reply()`` (a generator of chunks), then closes; yields its URL."""
    ctx = ctx or tls_files.server_context()
    ctx.set_alpn_protocols(["h2"])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(65536)
            for chunk in reply():
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):  # ssl.SSLError too
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    async with server:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def _run_raw(tls_files: TlsFiles, reply: Callable[[], list[bytes]], **options: Any) -> Any:
    async with raw_h2_server(tls_files, reply) as url:
        return await run_check(HttpCheck, url=url, enable_http2=True, **_tls(tls_files), **options)


_GOAWAY = _frame(7, 0, 0, (0).to_bytes(4, "big") + (11).to_bytes(4, "big") + b"calm down")
_HOSTILE = {
    "stream-reset": (
        _SETTINGS + _frame(3, 0, 1, (7).to_bytes(4, "big")),
        Reason.PROTOCOL,
        "reset the HTTP/2 stream before responding (REFUSED_STREAM)",
    ),
    "goaway-error": (
        _SETTINGS + _GOAWAY,
        Reason.PROTOCOL,
        "server ended the HTTP/2 connection (GOAWAY ENHANCE_YOUR_CALM: 'calm down')",
    ),
    "frame-over-16KiB": (
        _SETTINGS + _HEADERS_100 + _frame(0, 0, 1, b"x" * 20000),
        Reason.PROTOCOL,
        "HTTP/2 protocol error: Received overlong frame: length 20000",
    ),
    "closed-mid-body": (
        _SETTINGS + _HEADERS_100 + _frame(0, 0, 1, b"y" * 10),
        Reason.CONNECTION_RESET,
        "closed the HTTP/2 connection in the middle of the body (10 bytes)",
    ),
}


@pytest.mark.parametrize("case", sorted(_HOSTILE))
async def test_hostile_h2_server_fails_with_a_reason_and_what_it_did(
    tls_files: TlsFiles, case: str
) -> None:
    frames, reason, said = _HOSTILE[case]
    result = await _run_raw(tls_files, lambda: [frames])
    assert (result.status, result.reason) == (Status.FAIL, reason)
    assert said in result.message


async def test_endless_control_frames_are_cut_by_the_total_budget(tls_files: TlsFiles) -> None:
    ping = _frame(6, 0, 0, b"12345678") * 1000  # 17 000 bytes of PINGs per chunk

    def endless() -> list[bytes]:
        return [_SETTINGS + _HEADERS_100, *([ping] * 200)]  # 3.4 MB if nobody stops it

    result = await _run_raw(tls_files, endless, max_body_size="1KiB", max_header_size="1KiB")
    assert result.status is Status.FAIL
    assert result.reason == Reason.BODY_SIZE
    assert "in total without ending" in result.message


_OK_EMPTY = _frame(1, 5, 1, hpack.Encoder().encode([(":status", "204")]))


@pytest.mark.parametrize("max_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_client_certificate_required_over_h2(
    tls_files: TlsFiles, max_version: ssl.TLSVersion
) -> None:
    ctx = tls_files.server_context(require_client_cert=True)
    ctx.maximum_version = max_version
    cert, key = tls_files.client_cert_files()
    mtls = {"ca_file": tls_files.ca_file, "cert_file": cert, "key_file": key}
    async with raw_h2_server(tls_files, lambda: [_SETTINGS + _OK_EMPTY], ctx) as url:
        without = await run_check(HttpCheck, url=url, enable_http2=True, **_tls(tls_files))
        with_cert = await run_check(
            HttpCheck, url=url, enable_http2=True, tls=mtls, valid_status_codes=[204]
        )
    assert (without.status, without.reason) == (Status.FAIL, Reason.TLS)
    assert "certificate" in without.message, without.message
    assert with_cert.status is Status.OK, with_cert.message
    assert with_cert.values["probed_http_version"] == 2.0


# -- options ----------------------------------------------------------------------------------


def test_valid_http_versions_use_blackbox_spelling() -> None:
    url = "https://example.test/"
    assert HttpOptions(url=url, valid_http_versions=["HTTP/1.0", "HTTP/1.1"]).enable_http2 is False
    assert HttpOptions(url=url, valid_http_versions=["HTTP/2.0"]).enable_http2 is True
    with pytest.raises(ValidationError, match=r"HTTP/2 is spelled HTTP/2\.0"):
        HttpOptions(url=url, valid_http_versions=["HTTP/2"])
    with pytest.raises(ValidationError, match=re.escape("use HTTP/1.0, HTTP/1.1, HTTP/2.0")):
        HttpOptions(url=url, valid_http_versions=["h2"])
    with pytest.raises(ValidationError, match=r"no response could pass"):
        HttpOptions(url=url, valid_http_versions=["HTTP/2.0"], enable_http2=False)


# -- blackbox_exporter ------------------------------------------------------------------------


def test_http2_and_valid_http_versions_agree_with_blackbox_exporter(
    blackbox_exporter: Callable[[dict[str, Any]], BlackboxExporter],
    h2_servers: H2Servers,
    tls_files: TlsFiles,
) -> None:
    cases: dict[str, dict[str, Any]] = {
        "h2_on": {"enable_http2": True},
        "h2_off": {"enable_http2": False},
        "want_h2": {"enable_http2": True, "valid_http_versions": ["HTTP/2.0"]},
        "want_11": {"enable_http2": True, "valid_http_versions": ["HTTP/1.1"]},
        "want_11_off": {"enable_http2": False, "valid_http_versions": ["HTTP/1.1"]},
    }
    tls = {"ca_file": tls_files.ca_file}
    modules = {
        name: {"prober": "http", "timeout": "5s", "http": {**opts, "tls_config": tls}}
        for name, opts in {**cases, "defaults": {}}.items()
    }
    bb = blackbox_exporter(modules)
    outcomes = []
    for mode in ("alpn", "h2-only", "h1-only"):
        url = f"{h2_servers(mode)}/"
        for name, opts in cases.items():
            theirs = bb.success(name, url)
            ours = run_check_in_thread(url=url, tls=tls, **opts)
            outcomes.append((mode, name, theirs, ours.status is Status.OK, ours.message))
    disagreements = [o for o in outcomes if o[2] != o[3]]
    assert not disagreements, disagreements
    # the same version reported
    h2_url = f"{h2_servers('alpn')}/"
    ours_h2 = run_check_in_thread(url=h2_url, tls=tls, enable_http2=True)
    assert bb.probe("h2_on", h2_url)["probe_http_version"] == 2.0
    assert ours_h2.values["probed_http_version"] == 2.0
    # the one documented difference: blackbox offers h2 by default, probed when asked to
    only_h2 = f"{h2_servers('h2-only')}/"
    assert bb.success("defaults", only_h2) is True
    assert run_check_in_thread(url=only_h2, tls=tls).status is Status.FAIL
    # the cases are not all alike: h2 is really negotiated and really required
    assert {(o[0], o[1]): o[2] for o in outcomes}[("alpn", "want_h2")] is True
    assert {(o[0], o[1]): o[2] for o in outcomes}[("h1-only", "want_h2")] is False
    assert {(o[0], o[1]): o[2] for o in outcomes}[("alpn", "want_11")] is False


def run_check_in_thread(**options: Any) -> Any:
    """:func:`run_check` from a synchronous test."""
    return asyncio.run(run_check(HttpCheck, **options))
