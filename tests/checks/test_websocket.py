"""The ``websocket`` check type against a real aiohttp WebSocket server on loopback.

The server has an echo endpoint (optionally greeting first, selecting a subprotocol, echoing
the Authorization header), one that refuses the upgrade with 403, one that closes with 1011,
one that sends an oversized message; a raw TCP server accepts and never answers. ``wss`` runs
on trustme certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSCloseCode, web
from pydantic import ValidationError

from probed.check import Reason, Status
from probed.checks.websocket import WebSocketCheck, WebSocketOptions, close_name
from probed.config import LoadResult, load_checks, load_settings
from probed.plugins import check_types, get_plugin_manager
from probed.testing import run_check
from tests._require import ipv6_loopback, requires
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.harness import running_daemon, write
from tests.servers._stub import Handler, silent, stub_server
from tests.servers.tls import TlsFiles
from tests.servers.tls_targets import TlsChains

TOKEN = "ws-T0ken-sekr1t-4242"


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=("chat.v2",))
    await ws.prepare(request)
    if request.query.get("greet"):
        await ws.send_str("hello from the server")
    if request.query.get("auth"):
        await ws.send_str(f"you sent {request.headers.get('Authorization', '')}")
    async for msg in ws:
        if msg.type is web.WSMsgType.TEXT:
            await ws.send_str(f"echo: {msg.data}")
    return ws


async def refuse(request: web.Request) -> web.Response:
    return web.Response(status=403, text="go away")


async def close_1011(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"database unavailable")
    return ws


async def big(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str("x" * 200_000)
    async for _ in ws:
        pass
    return ws


async def chatter(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    for i in range(50):
        await ws.send_str(f"tick {i}")
    async for _ in ws:
        pass
    return ws


async def drop(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    assert request.transport is not None
    request.transport.abort()  # no close frame
    return ws


async def deaf(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await asyncio.Event().wait()  # never reads, so never answers a close frame
    return ws


@contextlib.asynccontextmanager
async def ws_server(
    ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[int]:
    """The aiohttp WebSocket app on a random loopback port; yields the port."""
    app = web.Application()
    app.router.add_get("/echo", echo)
    app.router.add_get("/refuse", refuse)
    app.router.add_get("/close1011", close_1011)
    app.router.add_get("/big", big)
    app.router.add_get("/chatter", chatter)
    app.router.add_get("/drop", drop)
    app.router.add_get("/deaf", deaf)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def answering(answer: bytes) -> Handler:
    """A stub server handler: ``answer`` once the request head is in, then wait."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await reader.read()

    return handler


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with ws_server() as p:
        yield p


async def test_echo_with_send_expect_passes_with_every_phase(port: int) -> None:
    with blocking_calls_on_loop_thread() as blocking:
        result = await run_check(
            WebSocketCheck,
            url=f"ws://localhost:{port}/echo",
            ip_version="ip4",
            send="ping",
            expect="^echo: ping$",
        )
    assert blocking == []
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"resolve", "connect", "upgrade", "exchange", "close"}
    assert all(0 <= v < 1 for v in result.phases.values())
    assert result.values["probed_websocket_status_code"] == 101
    assert result.values["probed_websocket_close_code"] == 1000
    assert "a message matched /^echo: ping$/, closed normally" in result.message


async def test_upgrade_and_close_only_and_send_without_expect(port: int) -> None:
    result = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/echo")
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "upgrade", "close"}
    assert re.fullmatch(
        r"ws://127\.0\.0\.1:\d+/echo: upgraded, closed normally in .+", result.message
    )
    sent = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/echo", send="hi")
    assert sent.status is Status.OK, sent.message
    assert set(sent.phases) == {"connect", "upgrade", "exchange", "close"}
    assert ": upgraded, sent the message, closed normally in " in sent.message


async def test_expect_reads_past_a_greeting(port: int) -> None:
    result = await run_check(
        WebSocketCheck, url=f"ws://127.0.0.1:{port}/echo?greet=1", send="hi", expect="echo: hi"
    )
    assert result.status is Status.OK, result.message


async def test_expect_mismatch_is_assertion_quoting_the_last_message(port: int) -> None:
    result = await run_check(
        WebSocketCheck,
        url=f"ws://127.0.0.1:{port}/chatter",
        expect="^pong$",
        max_messages=5,
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.ASSERTION)
    assert "none of the 5 messages read (max_messages)" in result.message
    assert "'tick 4'" in result.message


async def test_subprotocol_selected_passes_and_unselected_fails(port: int) -> None:
    ok = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/echo", subprotocol="chat.v2")
    assert ok.status is Status.OK, ok.message
    assert "(subprotocol chat.v2)" in ok.message
    refused = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/echo", subprotocol="mqtt")
    assert (refused.status, refused.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "did not select subprotocol 'mqtt'" in refused.message


async def test_refused_upgrade_is_status_with_the_http_status(port: int) -> None:
    result = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/refuse")
    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert "upgrade refused: the server answered HTTP 403" in result.message
    assert result.values["probed_websocket_status_code"] == 403
    assert "upgrade" in result.phases


async def test_server_that_never_answers_times_out_in_the_upgrade_phase() -> None:
    async with stub_server(silent) as port:
        result = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/", timeout=1.0)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "no answer to the upgrade request within" in result.message
    assert result.duration < 1.0  # its own verdict, before the daemon's timeout
    assert "connect" in result.phases
    async with stub_server(silent) as port:
        tls = await run_check(WebSocketCheck, url=f"wss://127.0.0.1:{port}/", timeout=1.0)
    assert (tls.status, tls.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "TLS handshake not finished within" in tls.message


async def test_answers_that_are_not_a_websocket_upgrade_are_protocol_failures() -> None:
    fake_101 = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\r\n"
    )
    async with stub_server(answering(fake_101)) as port:
        bad_accept = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/")
    assert (bad_accept.status, bad_accept.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "bad upgrade response: Invalid challenge response" in bad_accept.message
    async with stub_server(answering(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")) as port:
        not_http = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/")
    assert (not_http.status, not_http.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "bad upgrade response" in not_http.message


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_literal_url() -> None:
    async with ws_server(host="::1") as port:
        result = await run_check(
            WebSocketCheck, url=f"ws://[::1]:{port}/echo", ip_version="ip6", send="v6", expect="v6"
        )
    assert result.status is Status.OK, result.message
    assert f"ws://[::1]:{port}/echo" in result.message


async def test_close_with_1011_is_protocol_with_the_code(port: int) -> None:
    plain = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/close1011")
    assert (plain.status, plain.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "closed with code 1011 (internal server error)" in plain.message
    assert plain.values["probed_websocket_close_code"] == 1011
    expecting = await run_check(
        WebSocketCheck, url=f"ws://127.0.0.1:{port}/close1011", send="hi", expect="echo"
    )
    assert (expecting.status, expecting.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "code 1011 (internal server error): 'database unavailable'" in expecting.message


async def test_connection_dropped_without_close_frame_is_protocol(port: int) -> None:
    result = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/drop")
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "ended the connection without a close frame" in result.message
    assert result.values["probed_websocket_close_code"] == 1006


async def test_server_not_answering_the_close_frame_times_out_in_close(port: int) -> None:
    result = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{port}/deaf", timeout=1.0)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "no close frame in answer to ours within" in result.message
    assert {"connect", "upgrade"} <= set(result.phases)


async def test_expected_close_code(port: int) -> None:
    accepted = await run_check(
        WebSocketCheck, url=f"ws://127.0.0.1:{port}/close1011", expect_close_code=1011
    )
    assert accepted.status is Status.OK, accepted.message
    wrong = await run_check(
        WebSocketCheck, url=f"ws://127.0.0.1:{port}/echo", expect_close_code=4000
    )
    assert (wrong.status, wrong.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "closed with code 1000 (normal closure) (expected 4000 (application-defined))" in (
        wrong.message
    )


async def test_oversized_message_is_body_size(port: int) -> None:
    result = await run_check(
        WebSocketCheck, url=f"ws://127.0.0.1:{port}/big", expect="x", max_message_size="64KiB"
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.BODY_SIZE)
    assert "larger than max_message_size (64.0 KiB)" in result.message


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
        result = await run_check(WebSocketCheck, url=f"ws://127.0.0.1:{free}/")
    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED)
    assert f"connection refused by 127.0.0.1:{free}" in result.message


async def test_secret_header_is_sent_and_never_shown(port: int) -> None:
    result = await run_check(
        WebSocketCheck,
        url=f"ws://127.0.0.1:{port}/echo?auth=1",
        secret_headers={"Authorization": f"Bearer {TOKEN}"},
        expect="^nothing like this$",
        max_messages=1,
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.ASSERTION)
    assert "you sent Bearer ***" in result.message  # it was sent, and masked in the quote
    assert TOKEN not in result.message


async def test_echoed_file_secret_never_reaches_api_metrics_health_or_logs(
    port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checks = tmp_path / "checks"
    write(checks / "token.txt", f"Bearer {TOKEN}\n")
    write(
        checks / "ws.yaml",
        f"""
        checks:
          - name: ws-auth
            type: websocket
            interval: 1s
            timeout: 900ms
            url: ws://127.0.0.1:{port}/echo?auth=1
            secret_headers:
              Authorization: ${{file:{checks / "token.txt"}}}
            expect: ^never$
            max_messages: 1
        """,
    )
    async with running_daemon(checks) as daemon:
        await daemon.runs("ws-auth", 1)
        outputs = {
            path: (await daemon.get(path))[1]
            for path in ("/api/v1/checks", "/api/v1/checks/ws-auth", "/metrics", "/health/ready")
        }
        state = daemon.state("ws-auth")
    # The server echoed the header it got: the message quotes it, masked.
    assert "you sent Bearer ***" in outputs["/api/v1/checks/ws-auth"]
    assert (
        'probed_websocket_status_code{check="ws-auth",type="websocket"} 101' in outputs["/metrics"]
    )
    for where, text in [*outputs.items(), ("logs", caplog.text), ("state", repr(state))]:
        assert TOKEN not in text, f"{where} shows the secret"


async def test_wss_with_trusted_ca_measures_tls_and_cert_expiry(tls_files: TlsFiles) -> None:
    async with ws_server(tls_files.server_context()) as port:
        result = await run_check(
            WebSocketCheck,
            url=f"wss://localhost:{port}/echo",
            tls={"ca_file": tls_files.ca_file},
            send="secure",
            expect="echo: secure",
        )
        untrusted = await run_check(WebSocketCheck, url=f"wss://127.0.0.1:{port}/echo")
    assert result.status is Status.OK, result.message
    assert {"resolve", "connect", "tls", "upgrade", "exchange", "close"} <= set(result.phases)
    assert 0 < result.phases["tls"] < 1
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0
    assert (untrusted.status, untrusted.reason) == (Status.FAIL, Reason.TLS)
    assert "untrusted CA" in untrusted.message


async def test_wss_wrong_host_expired_and_expiry_warning(
    tls_files: TlsFiles, days_from_now: Callable[[float], Any]
) -> None:
    async with ws_server(tls_files.server_context("other.example")) as port:
        wrong = await run_check(
            WebSocketCheck, url=f"wss://127.0.0.1:{port}/echo", tls={"ca_file": tls_files.ca_file}
        )
    assert (wrong.status, wrong.reason) == (Status.FAIL, Reason.TLS)
    assert "certificate verify failed" in wrong.message
    soon = tls_files.server_context(not_after=days_from_now(5))
    async with ws_server(soon) as port:
        warned = await run_check(
            WebSocketCheck, url=f"wss://127.0.0.1:{port}/echo", tls={"ca_file": tls_files.ca_file}
        )
    assert (warned.status, warned.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    assert "TLS certificate expires in 5.0 days" in warned.message
    expired = tls_files.server_context(not_before=days_from_now(-30), not_after=days_from_now(-1))
    async with ws_server(expired) as port:
        failed = await run_check(
            WebSocketCheck, url=f"wss://127.0.0.1:{port}/echo", tls={"ca_file": tls_files.ca_file}
        )
    assert (failed.status, failed.reason) == (Status.FAIL, Reason.TLS)
    assert "certificate has expired" in failed.message


async def test_wss_cert_expiry_is_the_earliest_of_the_verified_chain(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue(leaf_days=90, intermediate_days=10)
    assert cert.intermediate_not_after is not None
    async with ws_server(cert.context()) as port:
        result = await run_check(
            WebSocketCheck, url=f"wss://127.0.0.1:{port}/echo", tls={"ca_file": tls_chains.ca_file}
        )
    assert (result.status, result.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    expiry = result.values["probed_tls_cert_expiry_timestamp_seconds"]
    assert expiry == pytest.approx(cert.intermediate_not_after)
    assert expiry < cert.leaf_not_after


def test_close_names() -> None:
    assert close_name(1011) == "1011 (internal server error)"
    assert close_name(4001) == "4001 (application-defined)"


def test_option_validation_messages() -> None:
    with pytest.raises(ValidationError, match="URL scheme must be ws or wss, got 'http'"):
        WebSocketOptions(url="http://127.0.0.1/")
    with pytest.raises(ValidationError, match="credentials in the URL are not allowed"):
        WebSocketOptions(url="ws://u:p@127.0.0.1/")
    with pytest.raises(ValidationError, match="put it in secret_headers"):
        WebSocketOptions(url="ws://127.0.0.1/", headers={"Authorization": "Bearer x"})
    with pytest.raises(ValidationError, match="is set by the check"):
        WebSocketOptions(url="ws://127.0.0.1/", headers={"Sec-WebSocket-Protocol": "x"})
    with pytest.raises(ValidationError, match="invalid regular expression"):
        WebSocketOptions(url="ws://127.0.0.1/", expect="(")
    with pytest.raises(ValidationError, match="max_message_size"):
        WebSocketOptions(url="ws://127.0.0.1/", max_message_size="1GiB")
    assert WebSocketOptions(url="ws://[::1]:80/", max_message_size="1MiB").max_message_size == (
        1024 * 1024
    )


def _load(directory: Path) -> LoadResult:
    pm = get_plugin_manager(entry_points=False)
    return load_checks(load_settings(None, {"checks_dirs": (directory,)}), check_types(pm))


def test_example_file_loads() -> None:
    example = Path(__file__).parents[2] / "checks.d" / "websocket.yaml"
    loaded = _load(Path(str(example)).parent)
    names = {n for n, s in loaded.specs.items() if s.type == "websocket"}
    assert names == {"chat-gateway", "quotes-stream"}
    assert [e for e in loaded.errors if "websocket.yaml" in str(e)] == []


def test_validate_names_file_line_and_suggests(tmp_path: Path) -> None:
    (tmp_path / "ws.yaml").write_text(
        "checks:\n"
        "  - name: feed\n"
        "    type: websocket\n"
        "    url: http://127.0.0.1:1/\n"
        "    subprotocl: chat\n"
    )
    errors = [str(e) for e in _load(tmp_path).errors]
    assert any(":4: checks[0].url:" in e and "URL scheme must be ws or wss" in e for e in errors), (
        errors
    )
    assert any(
        ":5: checks[0].subprotocl:" in e and "did you mean 'subprotocol'" in e for e in errors
    )
