"""The ``http`` check type against real aiohttp / raw asyncio servers on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks.http import HttpCheck, HttpOptions, parse_status_codes
from probed.options import parse_size
from probed.testing import make_spec, run_check
from tests._require import ipv6_loopback, requires
from tests.servers._web import serve_app
from tests.servers.tls import TlsFiles

PASSWORD = "s3cr3t-pa55word"
TOKEN = "tok-9f8e7d6c5b4a"

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- servers ------------------------------------------------------------------------------------


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="hello world, all systems nominal", headers={"X-Probe": "yes-42"})


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status page")


async def _redirect(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    # Relative Location on purpose: the client must resolve it against the current URL.
    raise web.HTTPFound(f"../redirect/{n - 1}" if n > 1 else "/")


async def _loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 200_000)


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.05)  # controlled server-side delay: the processing phase measures it
    return web.Response(text="slow")


async def _stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"first chunk;")
    await asyncio.sleep(0.05)  # controlled delay between chunks: the transfer phase measures it
    await response.write(b"second chunk")
    await response.write_eof()
    return response


async def _basic(request: web.Request) -> web.Response:
    expected = "Basic " + base64.b64encode(f"probe:{PASSWORD}".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return web.Response(status=401, text="who are you")
    return web.Response(text="welcome")


async def _bearer(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return web.Response(status=401, text="who are you")
    return web.Response(text="welcome")


async def _echo(request: web.Request) -> web.Response:
    body = await request.text()
    return web.json_response(
        {"method": request.method, "body": body, "x-custom": request.headers.get("X-Custom")}
    )


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _hello)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/redirect/{n}", _redirect)
    app.router.add_get("/loop", _loop)
    app.router.add_get("/big", _big)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/stream", _stream)
    app.router.add_get("/basic", _basic)
    app.router.add_get("/bearer", _bearer)
    app.router.add_route("*", "/echo", _echo)
    return app


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1", ssl_context: Any = None, app: web.Application | None = None
) -> AsyncIterator[str]:
    """Run the test app on a random loopback port; yield its base URL."""
    async with serve_app(app or make_app(), host=host, ssl_context=ssl_context) as url:
        yield url


@contextlib.asynccontextmanager
async def raw_server(handler: StreamHandler) -> AsyncIterator[int]:
    """A bare TCP server running ``handler`` per connection; yields its port."""
    tasks: set[asyncio.Task[None]] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with serve() as url:
        yield url


# -- basics -------------------------------------------------------------------------------------


async def test_ok_200_reports_status_version_size_and_phases(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/")
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_status_code"] == 200
    assert result.values["probed_http_version"] == 1.1
    assert result.values["probed_http_content_length_bytes"] == len(
        "hello world, all systems nominal"
    )
    assert result.values["probed_http_redirects"] == 0
    assert set(result.phases) == {"connect", "processing", "transfer"}  # IP literal: no resolve
    assert all(0 <= v < 1 for v in result.phases.values())
    assert "200 OK" in result.message


async def test_closed_port_is_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connect is refused
        result = await run_check(HttpCheck, url=f"http://127.0.0.1:{port}/")
    assert result.status is Status.FAIL
    assert result.reason == Reason.CONNECTION_REFUSED
    assert f"127.0.0.1:{port}" in result.message
    assert "connect" in result.phases


async def test_unexpected_status_fails_with_reason_status(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/status/503")
    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert "status 503 Service Unavailable, expected 2xx" in result.message
    assert result.values["probed_http_status_code"] == 503


@pytest.mark.parametrize("codes", [[503], ["5xx"], ["500-503"], ["2xx", "503"]])
async def test_valid_status_codes_accept_codes_classes_and_ranges(
    base: str, codes: list[Any]
) -> None:
    result = await run_check(HttpCheck, url=f"{base}/status/503", valid_status_codes=codes)
    assert result.status is Status.OK, result.message


def test_status_code_specs_are_validated_with_a_clear_message() -> None:
    assert parse_status_codes(["2xx", 301, "400-404"]) == ((200, 299), (301, 301), (400, 404))
    with pytest.raises(ValidationError, match="invalid status code 'abc'"):
        HttpOptions(url="http://127.0.0.1/", valid_status_codes=["abc"])
    with pytest.raises(ValidationError, match="low first"):
        HttpOptions(url="http://127.0.0.1/", valid_status_codes=["299-200"])


def test_validate_shows_the_credential_header_hint_and_not_the_value(tmp_path: Path) -> None:
    """The hint survives the redaction of validate's output (text after "Authorization:" is
    masked there), and the value written in the file does not show."""
    (tmp_path / "web.yaml").write_text(
        "checks:\n  - name: web\n    type: http\n    url: http://127.0.0.1:1/\n"
        "    headers:\n      Authorization: Bearer abc-plain-123\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "probed", "validate", "--checks-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "carries credentials: put it in basic_auth, bearer_token or secret_headers" in (
        proc.stdout + proc.stderr
    )
    assert "abc-plain-123" not in proc.stdout + proc.stderr


def test_options_reject_bad_urls_and_credentials_in_url() -> None:
    with pytest.raises(ValidationError, match="scheme must be http or https"):
        HttpOptions(url="ftp://127.0.0.1/")
    with pytest.raises(ValidationError, match="credentials in the URL are not allowed") as info:
        HttpOptions(url=f"http://user:{PASSWORD}@127.0.0.1/")
    assert PASSWORD not in str(info.value).split("[type=")[0]
    with pytest.raises(ValidationError, match="carries credentials: put it in basic_auth"):
        HttpOptions(url="http://127.0.0.1/", headers={"Authorization": "Bearer x"})
    with pytest.raises(ValidationError, match="not both"):
        HttpOptions(
            url="http://127.0.0.1/",
            bearer_token="a",
            basic_auth={"username": "u", "password": "p"},
        )
    assert parse_size("64KiB") == 65536
    assert HttpOptions(url="http://127.0.0.1/", max_body_size="1MB").max_body_size == 1_000_000


# -- body and headers -----------------------------------------------------------------------------


async def test_body_regex_must_match_passes_and_fails(base: str) -> None:
    ok = await run_check(HttpCheck, url=f"{base}/", body_must_match=["all systems \\w+"])
    assert ok.status is Status.OK, ok.message
    bad = await run_check(HttpCheck, url=f"{base}/", body_must_match=["hello", "degraded"])
    assert (bad.status, bad.reason) == (Status.FAIL, Reason.ASSERTION)
    assert "does not match /degraded/" in bad.message


async def test_body_regex_must_not_match_fails_when_found(base: str) -> None:
    ok = await run_check(HttpCheck, url=f"{base}/", body_must_not_match=["error"])
    assert ok.status is Status.OK
    bad = await run_check(HttpCheck, url=f"{base}/", body_must_not_match=["nomin\\w+"])
    assert (bad.status, bad.reason) == (Status.FAIL, Reason.ASSERTION)
    assert "matches forbidden /nomin\\w+/: 'nominal'" in bad.message


async def test_expected_headers_match_missing_and_mismatch(base: str) -> None:
    ok = await run_check(HttpCheck, url=f"{base}/", header_must_match={"x-probe": "^yes-\\d+$"})
    assert ok.status is Status.OK, ok.message
    missing = await run_check(HttpCheck, url=f"{base}/", header_must_match={"X-Missing": "."})
    assert missing.reason == Reason.ASSERTION
    assert "response header X-Missing is missing" in missing.message
    wrong = await run_check(HttpCheck, url=f"{base}/", header_must_match={"X-Probe": "^no"})
    assert wrong.reason == Reason.ASSERTION
    assert "'yes-42' does not match /^no/" in wrong.message


async def test_method_body_and_headers_are_sent(base: str) -> None:
    result = await run_check(
        HttpCheck,
        url=f"{base}/echo",
        method="post",
        body="ping=1",
        headers={"X-Custom": "hi"},
        body_must_match=['"method": "POST"', '"body": "ping=1"', '"x-custom": "hi"'],
    )
    assert result.status is Status.OK, result.message


async def test_body_over_limit_fails_with_body_size(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/big", max_body_size="64KiB")
    assert (result.status, result.reason) == (Status.FAIL, Reason.BODY_SIZE)
    assert "exceeds max_body_size of 65536 bytes" in result.message
    assert result.values["probed_http_status_code"] == 200
    ok = await run_check(HttpCheck, url=f"{base}/big", max_body_size=200_000)
    assert ok.status is Status.OK
    assert ok.values["probed_http_content_length_bytes"] == 200_000


# -- redirects ----------------------------------------------------------------------------------


async def test_redirects_are_followed_and_counted(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/redirect/3", body_must_match=["hello"])
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_redirects"] == 3
    assert result.values["probed_http_status_code"] == 200
    assert "after 3 redirect(s)" in result.message


async def test_redirects_not_followed_when_disabled(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/redirect/1", follow_redirects=False)
    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert result.values["probed_http_status_code"] == 302
    assert result.values["probed_http_redirects"] == 0
    assert "not followed" in result.message
    accepted = await run_check(
        HttpCheck, url=f"{base}/redirect/1", follow_redirects=False, valid_status_codes=[302]
    )
    assert accepted.status is Status.OK


async def test_redirect_loop_is_capped_at_max_redirects(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/loop", max_redirects=4)
    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert result.values["probed_http_redirects"] == 4
    assert "stopped after 4 redirects, max_redirects=4" in result.message


# -- phases -------------------------------------------------------------------------------------


async def test_resolve_phase_for_a_host_name() -> None:
    async with serve("127.0.0.1") as url:
        port = url.rsplit(":", 1)[1]
        result = await run_check(HttpCheck, url=f"http://localhost:{port}/", ip_version="ip4")
    assert result.status is Status.OK, result.message
    assert result.phases["resolve"] > 0
    assert "tls" not in result.phases


async def test_processing_phase_measures_server_think_time(base: str) -> None:
    result = await run_check(HttpCheck, url=f"{base}/slow")
    assert result.status is Status.OK
    assert 0.05 <= result.phases["processing"] < 2
    assert result.phases["transfer"] < 0.05


async def test_transfer_phase_measures_streamed_chunked_body(base: str) -> None:
    result = await run_check(
        HttpCheck, url=f"{base}/stream", body_must_match=["^first chunk;second chunk$"]
    )
    assert result.status is Status.OK, result.message
    assert result.phases["transfer"] >= 0.05
    assert result.values["probed_http_content_length_bytes"] == len("first chunk;second chunk")


# -- auth and secrets ---------------------------------------------------------------------------


async def test_basic_auth_reaches_server_and_password_never_in_message(base: str) -> None:
    ok = await run_check(
        HttpCheck, url=f"{base}/basic", basic_auth={"username": "probe", "password": PASSWORD}
    )
    assert ok.status is Status.OK, ok.message
    bad = await run_check(
        HttpCheck, url=f"{base}/basic", basic_auth={"username": "probe", "password": "wrong"}
    )
    assert bad.values["probed_http_status_code"] == 401
    spec = make_spec(
        HttpCheck, url=f"{base}/basic", basic_auth={"username": "probe", "password": PASSWORD}
    )
    for text in (ok.message, bad.message, repr(ok), repr(spec.options)):
        assert PASSWORD not in text
        assert "Authorization" not in text


async def test_bearer_token_reaches_server_and_never_in_message(base: str) -> None:
    ok = await run_check(HttpCheck, url=f"{base}/bearer", bearer_token=TOKEN)
    assert ok.status is Status.OK, ok.message
    refused = await run_check(HttpCheck, url="http://127.0.0.1:1/", bearer_token=TOKEN)
    for text in (ok.message, refused.message, repr(ok), repr(refused)):
        assert TOKEN not in text


async def test_credentials_are_not_sent_to_another_origin_on_redirect() -> None:
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(text="other origin")

    other = web.Application()
    other.router.add_get("/", record)
    async with serve(app=other) as other_url:

        async def bounce(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{other_url}/")

        first = web.Application()
        first.router.add_get("/", bounce)
        async with serve(app=first) as url:
            result = await run_check(HttpCheck, url=f"{url}/", bearer_token=TOKEN)
    assert result.status is Status.OK, result.message
    assert seen == [None]


# -- faults -------------------------------------------------------------------------------------


async def test_non_http_server_is_a_protocol_failure() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")
        await writer.drain()

    async with raw_server(garbage) as port:
        result = await run_check(HttpCheck, url=f"http://127.0.0.1:{port}/")
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "not an HTTP response" in result.message
    assert "SSH-2.0" in result.message


async def test_server_closing_mid_body_is_connection_reset() -> None:
    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()

    async with raw_server(truncated) as port:
        result = await run_check(HttpCheck, url=f"http://127.0.0.1:{port}/")
    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_RESET)
    assert "after 10 of 100 body bytes" in result.message


async def test_server_closing_without_response_is_connection_reset() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with raw_server(hang_up) as port:
        result = await run_check(HttpCheck, url=f"http://127.0.0.1:{port}/")
    assert result.reason == Reason.CONNECTION_RESET
    assert "without sending a response" in result.message


async def test_body_delimited_by_connection_close_is_read_to_the_end() -> None:
    async def http10(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold school body")
        await writer.drain()

    async with raw_server(http10) as port:
        result = await run_check(
            HttpCheck, url=f"http://127.0.0.1:{port}/", body_must_match=["old school body$"]
        )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_version"] == 1.0


async def test_server_that_never_answers_is_cut_at_the_timeout() -> None:
    accepted = asyncio.Event()
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await release.wait()

    async with raw_server(silent) as port:
        result = await run_check(HttpCheck, url=f"http://127.0.0.1:{port}/", timeout=0.3)
        release.set()
    assert accepted.is_set()
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert result.message == (
        "no answer within the timeout of 0.3s while waiting for the response headers"
    )
    assert 0.3 <= result.duration < 1.0


async def test_unresolvable_host_is_a_dns_failure() -> None:
    result = await run_check(HttpCheck, url="http://no-such-host.invalid/")
    assert (result.status, result.reason) == (Status.FAIL, Reason.DNS)
    assert "cannot resolve" in result.message
    assert "resolve" in result.phases


# -- IPv6 ---------------------------------------------------------------------------------------


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_literal_url() -> None:
    async with serve("::1") as url:
        assert url.startswith("http://[::1]:")
        result = await run_check(HttpCheck, url=f"{url}/", ip_version="ip6")
    assert result.status is Status.OK, result.message
    assert "[::1]" in result.message


# -- TLS ----------------------------------------------------------------------------------------


async def test_https_with_trusted_ca_passes_and_reports_tls_phase_and_expiry(
    tls_files: TlsFiles, days_from_now: Callable[[float], Any]
) -> None:
    not_after = days_from_now(90).replace(microsecond=0)
    ctx = tls_files.server_context(not_after=not_after)
    async with serve(ssl_context=ctx) as url:
        result = await run_check(HttpCheck, url=f"{url}/", tls={"ca_file": tls_files.ca_file})
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "tls", "processing", "transfer"}
    assert 0 < result.phases["tls"] < 1
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] == not_after.timestamp()


async def test_expired_certificate_fails_tls_with_its_expiry_date(
    tls_files: TlsFiles, days_from_now: Callable[[float], Any]
) -> None:
    expired = days_from_now(-2)
    ctx = tls_files.server_context(not_before=days_from_now(-30), not_after=expired)
    async with serve(ssl_context=ctx) as url:
        result = await run_check(HttpCheck, url=f"{url}/", tls={"ca_file": tls_files.ca_file})
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "TLS certificate verify failed: certificate has expired" in result.message
    assert f"(notAfter {expired:%Y-%m-%d}" in result.message
    assert result.message.startswith(f"GET {url}/: ")


async def test_wrong_host_certificate_fails_tls(tls_files: TlsFiles) -> None:
    ctx = tls_files.server_context("other.probed.test")
    async with serve(ssl_context=ctx) as url:
        result = await run_check(HttpCheck, url=f"{url}/", tls={"ca_file": tls_files.ca_file})
        off = await run_check(HttpCheck, url=f"{url}/", tls={"verify": False})
        named = await run_check(
            HttpCheck,
            url=f"{url}/",
            tls={"ca_file": tls_files.ca_file, "server_name": "other.probed.test"},
        )
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "mismatch" in result.message
    assert "127.0.0.1" in result.message
    assert off.status is Status.OK, off.message
    assert off.values["probed_tls_cert_expiry_timestamp_seconds"] > 0
    assert named.status is Status.OK, named.message


async def test_certificate_from_untrusted_ca_fails_tls(tls_files: TlsFiles) -> None:
    import trustme

    ctx = tls_files.server_context(ca=trustme.CA())
    async with serve(ssl_context=ctx) as url:
        result = await run_check(HttpCheck, url=f"{url}/", tls={"ca_file": tls_files.ca_file})
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "untrusted CA" in result.message


@pytest.mark.parametrize(
    ("days_left", "status"),
    [(60, Status.OK), (10, Status.WARN), (3, Status.FAIL)],
)
async def test_certificate_expiry_warn_and_fail_thresholds(
    tls_files: TlsFiles,
    days_from_now: Callable[[float], Any],
    days_left: float,
    status: Status,
) -> None:
    ctx = tls_files.server_context(not_after=days_from_now(days_left))
    async with serve(ssl_context=ctx) as url:
        result = await run_check(
            HttpCheck,
            url=f"{url}/",
            tls={"ca_file": tls_files.ca_file, "expiry_warn_days": 30, "expiry_fail_days": 7},
        )
    assert result.status is status, result.message
    if status is not Status.OK:
        assert result.reason == Reason.CERT_EXPIRY
        crossed = (
            "below the warn threshold 30 days (expiry_warn_days)"
            if status is Status.WARN
            else "below the fail threshold 7 days (expiry_fail_days)"
        )
        assert crossed in result.message


@pytest.mark.parametrize("max_version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
async def test_client_certificate_required_by_server(
    tls_files: TlsFiles, max_version: ssl.TLSVersion
) -> None:
    ctx = tls_files.server_context(require_client_cert=True)
    ctx.maximum_version = max_version
    cert, key = tls_files.client_cert_files()
    async with serve(ssl_context=ctx) as url:
        without = await run_check(HttpCheck, url=f"{url}/", tls={"ca_file": tls_files.ca_file})
        with_cert = await run_check(
            HttpCheck,
            url=f"{url}/",
            tls={"ca_file": tls_files.ca_file, "cert_file": cert, "key_file": key},
        )
    assert (without.status, without.reason) == (Status.FAIL, Reason.TLS)
    assert "client certificate" in without.message
    assert with_cert.status is Status.OK, with_cert.message


async def test_https_url_against_plain_http_server_is_tls_failure(base: str) -> None:
    result = await run_check(HttpCheck, url=base.replace("http://", "https://") + "/")
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "did not answer with TLS" in result.message


def test_tls_options_validate_files_and_thresholds(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="ca_file: no such file"):
        HttpOptions(url="https://127.0.0.1/", tls={"ca_file": str(tmp_path / "nope.pem")})
    with pytest.raises(
        ValidationError, match=r"expiry_warn_days \(3\) must not be below expiry_fail_days \(7\)"
    ):
        HttpOptions(url="https://127.0.0.1/", tls={"expiry_warn_days": 3, "expiry_fail_days": 7})


async def test_tls_handshake_that_never_completes_is_cut_at_the_timeout() -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()

    async with raw_server(silent) as port:
        result = await run_check(HttpCheck, url=f"https://127.0.0.1:{port}/", timeout=0.3)
        release.set()
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert result.message == (
        f"no answer within the timeout of 0.3s while in the TLS handshake with 127.0.0.1:{port}"
    )


async def test_resolver_that_never_answers_is_cut_at_the_timeout_naming_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    never = loop.create_future()

    async def stuck(*args: Any, **kwargs: Any) -> Any:
        return await never

    monkeypatch.setattr(loop, "getaddrinfo", stuck)
    result = await run_check(HttpCheck, url="http://stuck.example.test/", timeout=0.3)
    assert result.reason == Reason.TIMEOUT
    assert result.message == (
        "no answer within the timeout of 0.3s while resolving stuck.example.test"
    )
