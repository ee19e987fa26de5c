"""``http`` and ``json_api`` through forward proxies: real tinyproxy and squid on loopback.

An ``http`` target is requested from the proxy in absolute form (the target sees tinyproxy's
``Via``), an ``https`` target through a ``CONNECT`` tunnel (phase ``proxy_connect``, then TLS
with the target). Proxy credentials come from ``proxy_url``'s userinfo; a wrong password, a
proxy refusing ``CONNECT``, squid's own error page and a proxy that cannot be reached fail
with reasons ``proxy_auth``/``proxy`` and messages naming the proxy. ``NO_PROXY``/``no_proxy``
follow curl's rules; ``proxy_from_environment`` reads lower case first. Misbehaving proxies
(no end of headers, not HTTP, closing) are raw loopback servers. The last tests run the same
targets through blackbox_exporter's ``proxy_url``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Result, Status
from probed.checks._httpproxy import MAX_REPLY, NoProxy
from probed.checks._reasons import PROXY, PROXY_AUTH
from probed.checks.http import HttpCheck, HttpOptions
from probed.checks.json_api import JsonApiCheck
from probed.redact import MASK, option_secrets
from probed.testing import run_check
from tests.harness import probed_logs, running_daemon, wait_for, write
from tests.servers._stub import Handler, silent, stub_server
from tests.servers._web import serve_app
from tests.servers.blackbox import BlackboxExporter
from tests.servers.proxy import Squid, Tinyproxy
from tests.servers.tls import TlsFiles

USER = "probe-user"
PASSWORD = "pr0xy-Pa55_w.rd"  # tinyproxy's config takes no '/' or '@' in a password
ODD_PASSWORD = "pr0xy-Pa55/w@rd"  # for the fake proxy: percent-encoded in the URL
ENCODED = "pr0xy-Pa55%2Fw%40rd"
CONNECT_SECRET = "tenant-T0ken-77"


# -- targets and proxies ----------------------------------------------------------------------


async def _hello(request: web.Request) -> web.Response:
    return web.json_response(
        {"up": True},
        headers={"X-Seen-Via": request.headers.get("Via", "none")},
    )


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/")


def target_app() -> web.Application:
    """The target: ``/`` (JSON, echoing the ``Via`` it saw) and ``/moved`` (302 to ``/``)."""
    app = web.Application()
    app.router.add_get("/", _hello)
    app.router.add_get("/moved", _moved)
    return app


@pytest.fixture
async def http_url() -> AsyncIterator[str]:
    async with serve_app(target_app()) as url:
        yield url


@pytest.fixture
async def https_url(tls_files: TlsFiles) -> AsyncIterator[str]:
    async with serve_app(target_app(), ssl_context=tls_files.server_context()) as url:
        yield url


def closed_port() -> int:
    """A loopback port bound but never listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_auth(proxy: Tinyproxy | Squid, password: str = PASSWORD) -> str:
    return proxy.url.replace("http://", f"http://{USER}:{password}@")


def assert_no_secret(result: Result) -> None:
    for secret in (PASSWORD, ODD_PASSWORD, ENCODED, CONNECT_SECRET):
        assert secret not in result.message


async def probe(url: str, tls_files: TlsFiles, **options: Any) -> Result:
    if url.startswith("https"):
        options.setdefault("tls", {"ca_file": tls_files.ca_file})
    timeout = options.pop("timeout", 5.0)
    result = await run_check(HttpCheck, url=f"{url}/", timeout=timeout, **options)
    assert_no_secret(result)
    return result


# -- through a real proxy ---------------------------------------------------------------------


async def test_http_target_is_requested_through_the_proxy_with_its_credentials(
    tinyproxy: Callable[..., Tinyproxy], http_url: str, tls_files: TlsFiles
) -> None:
    proxy = tinyproxy(auth=(USER, PASSWORD))
    result = await probe(
        http_url,
        tls_files,
        proxy_url=with_auth(proxy),
        header_must_match={"X-Seen-Via": "tinyproxy"},
    )
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "processing", "transfer"}


async def test_https_target_goes_through_a_connect_tunnel_timed_as_proxy_connect(
    tinyproxy: Callable[..., Tinyproxy], https_url: str, tls_files: TlsFiles
) -> None:
    proxy = tinyproxy(auth=(USER, PASSWORD))
    result = await probe(https_url, tls_files, proxy_url=with_auth(proxy))
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "proxy_connect", "tls", "processing", "transfer"}
    assert 0 < result.phases["proxy_connect"] < 1
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0
    assert f"CONNECT {https_url.removeprefix('https://')}" in proxy.log_text()


async def test_redirects_are_followed_through_the_proxy(
    tinyproxy: Callable[..., Tinyproxy], http_url: str
) -> None:
    proxy = tinyproxy()
    result = await run_check(
        HttpCheck,
        url=f"{http_url}/moved",
        proxy_url=proxy.url,
        header_must_match={"X-Seen-Via": "tinyproxy"},
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_http_redirects"] == 1


async def test_json_api_shares_the_proxy_options(
    tinyproxy: Callable[..., Tinyproxy], https_url: str, tls_files: TlsFiles
) -> None:
    proxy = tinyproxy(auth=(USER, PASSWORD))
    result = await run_check(
        JsonApiCheck,
        url=f"{https_url}/",
        proxy_url=with_auth(proxy),
        tls={"ca_file": tls_files.ca_file},
        assertions=[{"path": "up", "op": "eq", "value": True}],
    )
    assert result.status is Status.OK, result.message
    assert "proxy_connect" in result.phases


async def test_squid_forwards_http_and_tunnels_https(
    squid: Callable[..., Squid], http_url: str, https_url: str, tls_files: TlsFiles
) -> None:
    proxy = squid()
    for url in (http_url, https_url):
        result = await probe(url, tls_files, proxy_url=proxy.url)
        assert result.status is Status.OK, result.message
    assert "proxy_connect" in result.phases


# -- the proxy's fault, not the target's ------------------------------------------------------


@pytest.mark.parametrize("password", [None, "wrong-pa55word"], ids=["missing", "wrong"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_missing_or_wrong_proxy_credentials_fail_with_proxy_auth_naming_the_proxy(
    squid: Callable[..., Squid],
    http_url: str,
    https_url: str,
    tls_files: TlsFiles,
    scheme: str,
    password: str | None,
) -> None:
    proxy = squid(auth=(USER, ODD_PASSWORD))
    url = with_auth(proxy, password) if password else proxy.url
    result = await probe(https_url if scheme == "https" else http_url, tls_files, proxy_url=url)
    assert (result.status, result.reason) == (Status.FAIL, PROXY_AUTH), result.message
    assert f"proxy 127.0.0.1:{proxy.port}" in result.message
    assert "407" in result.message
    assert ("refused the credentials" in result.message) is (password is not None)
    assert "wrong-pa55word" not in result.message


async def test_squid_takes_a_percent_encoded_password_with_slash_and_at(
    squid: Callable[..., Squid], http_url: str, https_url: str, tls_files: TlsFiles
) -> None:
    proxy = squid(auth=(USER, ODD_PASSWORD))
    for url in (http_url, https_url):
        result = await probe(url, tls_files, proxy_url=with_auth(proxy, ENCODED))
        assert result.status is Status.OK, result.message


async def test_tinyproxys_401_to_connect_with_wrong_credentials_is_proxy_auth(
    tinyproxy: Callable[..., Tinyproxy], https_url: str, tls_files: TlsFiles
) -> None:
    # tinyproxy 1.11 answers wrong credentials with 401, not 407; to CONNECT only the proxy
    # can answer, so it is the proxy's refusal all the same.
    proxy = tinyproxy(auth=(USER, PASSWORD))
    result = await probe(https_url, tls_files, proxy_url=with_auth(proxy, "wrong-pa55word"))
    assert (result.status, result.reason) == (Status.FAIL, PROXY_AUTH), result.message
    assert f"proxy 127.0.0.1:{proxy.port} refused the credentials sent (401" in result.message


async def test_a_proxy_refusing_connect_fails_with_reason_proxy_and_its_status(
    tinyproxy: Callable[..., Tinyproxy], https_url: str, tls_files: TlsFiles
) -> None:
    proxy = tinyproxy(connect_ports=(443,))  # the target's port is not allowed
    result = await probe(https_url, tls_files, proxy_url=proxy.url)
    assert (result.status, result.reason) == (Status.FAIL, PROXY), result.message
    target = https_url.removeprefix("https://")
    assert f"proxy 127.0.0.1:{proxy.port} answered CONNECT {target} with 403" in result.message
    assert "tls" not in result.phases


async def test_squids_own_error_page_for_an_http_target_is_the_proxys_fault(
    squid: Callable[..., Squid], http_url: str, tls_files: TlsFiles
) -> None:
    proxy = squid(deny=True)
    result = await probe(http_url, tls_files, proxy_url=proxy.url)
    assert (result.status, result.reason) == (Status.FAIL, PROXY), result.message
    assert f"proxy 127.0.0.1:{proxy.port} answered GET {http_url}/ itself with 403" in (
        result.message
    )
    assert "ERR_ACCESS_DENIED" in result.message


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_an_unreachable_proxy_fails_with_reason_proxy_naming_it(
    http_url: str, https_url: str, tls_files: TlsFiles, scheme: str
) -> None:
    port = closed_port()
    url = https_url if scheme == "https" else http_url
    result = await probe(url, tls_files, proxy_url=f"http://{USER}:{ENCODED}@127.0.0.1:{port}")
    assert (result.status, result.reason) == (Status.FAIL, PROXY), result.message
    assert f"proxy 127.0.0.1:{port}" in result.message
    assert "refused" in result.message
    assert "connect" in result.phases


# -- misbehaving proxies: bounded replies -----------------------------------------------------


def fake_proxy(reply: bytes, seen: list[bytes]) -> Handler:
    """A 'proxy' for :func:`stub_server`: records the request head, answers ``reply``, closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(reply)
        await writer.drain()

    return handle


def echoing_proxy(reader_status: int) -> Handler:
    """A hostile 'proxy' answering ``reader_status`` with the credentials it was sent as the
    reason phrase (``Proxy-Authorization`` and ``X-Tenant`` values)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        values = [line.partition(": ")[2] for line in head.split("\r\n")[1:]]
        reason = " ".join(v for v in values if "Basic" in v or "T0ken" in v)
        writer.write(f"HTTP/1.1 {reader_status} {reason}\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()

    return handle


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (MAX_REPLY + 10), f"over {MAX_REPLY} bytes"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not HTTP ('SSH-2.0-OpenSSH_9.2')"),
        (b"HTTP/1.1 200 Conn", "closed the connection without a complete reply"),
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "with 502 Bad Gateway"),
    ],
    ids=["endless-headers", "not-http", "closes", "bad-gateway"],
)
async def test_connect_replies_are_bounded_and_blame_the_proxy(
    reply: bytes, expected: str, https_url: str, tls_files: TlsFiles
) -> None:
    seen: list[bytes] = []
    async with stub_server(fake_proxy(reply, seen)) as port:
        result = await probe(
            https_url,
            tls_files,
            proxy_url=f"http://127.0.0.1:{port}",
            proxy_connect_header={"X-Tenant": [CONNECT_SECRET], "X-Zone": "eu"},
        )
    assert (result.status, result.reason) == (Status.FAIL, PROXY), result.message
    assert f"proxy 127.0.0.1:{port} " in result.message
    assert expected in result.message
    head = seen[0].decode()
    assert head.startswith(f"CONNECT {https_url.removeprefix('https://')} HTTP/1.1\r\n")
    assert f"X-Tenant: {CONNECT_SECRET}\r\n" in head
    assert "X-Zone: eu\r\n" in head
    assert "Proxy-Authorization" not in head


async def test_absolute_form_request_carries_proxy_authorization_not_connect_headers(
    http_url: str, tls_files: TlsFiles
) -> None:
    seen: list[bytes] = []
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with stub_server(fake_proxy(reply, seen)) as port:
        result = await probe(
            http_url, tls_files, proxy_url=f"http://{USER}:{ENCODED}@127.0.0.1:{port}"
        )
    assert result.status is Status.OK, result.message
    head = seen[0].decode()
    assert head.startswith(f"GET {http_url}/ HTTP/1.1\r\n")
    assert f"Host: {http_url.removeprefix('http://')}\r\n" in head
    # base64 of "probe-user:pr0xy-Pa55/w@rd": the userinfo is percent-decoded
    assert "Proxy-Authorization: Basic cHJvYmUtdXNlcjpwcjB4eS1QYTU1L3dAcmQ=\r\n" in head


# -- which requests go through the proxy ------------------------------------------------------


async def test_no_proxy_bypasses_a_dead_proxy_only_for_matching_hosts(http_url: str) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    for no_proxy, ok in (("127.0.0.1", True), ("10.0.0.0/8, 127.0.0.0/8", True),
                         (["localhost", "example.com"], False)):  # fmt: skip
        result = await run_check(HttpCheck, url=f"{http_url}/", proxy_url=dead, no_proxy=no_proxy)
        assert (result.status is Status.OK) is ok, (no_proxy, result.message)
        if not ok:
            assert result.reason == PROXY


def test_no_proxy_follows_curls_rules() -> None:
    rules = NoProxy(" Example.COM, .corp.test ,10.1.0.0/16 [::1] 192.0.2.7")
    for host in ("example.com", "www.example.com", "EXAMPLE.com.", "corp.test", "a.b.corp.test",
                 "10.1.200.3", "::1", "192.0.2.7"):  # fmt: skip
        assert rules.matches(host), host
    for host in ("badexample.com", "example.com.evil", "10.2.0.1", "::2", "192.0.2.8", "corp"):
        assert not rules.matches(host), host
    assert NoProxy("*").matches("anything.test")
    assert not NoProxy("*.example.com").matches("other.test")


async def test_proxy_from_environment_reads_lower_case_first_and_no_proxy(
    tinyproxy: Callable[..., Tinyproxy],
    http_url: str,
    https_url: str,
    tls_files: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = tinyproxy(auth=(USER, PASSWORD))
    dead = f"127.0.0.1:{closed_port()}"  # no scheme: http:// is assumed, as curl does
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("http_proxy", with_auth(proxy))
    monkeypatch.setenv("HTTP_PROXY", dead)
    monkeypatch.setenv("ALL_PROXY", with_auth(proxy))  # https goes through all_proxy
    via = {"header_must_match": {"X-Seen-Via": "tinyproxy"}}
    result = await probe(http_url, tls_files, proxy_from_environment=True, **via)
    assert result.status is Status.OK, result.message
    result = await probe(https_url, tls_files, proxy_from_environment=True)
    assert result.status is Status.OK, result.message
    assert "proxy_connect" in result.phases

    monkeypatch.setenv("http_proxy", dead)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    result = await probe(http_url, tls_files, proxy_from_environment=True)
    assert result.status is Status.OK, result.message  # direct: the dead proxy is bypassed
    assert result.values["probed_http_status_code"] == 200


async def test_an_unusable_proxy_in_the_environment_fails_each_run_with_reason_proxy(
    http_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"socks5://{USER}:{ENCODED}@127.0.0.1:1080")
    result = await run_check(HttpCheck, url=f"{http_url}/", proxy_from_environment=True)
    assert (result.status, result.reason) == (Status.FAIL, PROXY), result.message
    assert "http_proxy" in result.message
    assert "socks proxies are not supported" in result.message
    assert_no_secret(result)


async def test_credentials_of_an_environment_proxy_echoed_back_are_masked_in_the_message(
    http_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy from the environment is not in the options: the daemon's redactor does not know
    # its password, so the proxy masks its own secrets in what it quotes of the reply.
    async with stub_server(echoing_proxy(407)) as port:
        monkeypatch.setenv("http_proxy", f"http://{USER}:{ENCODED}@127.0.0.1:{port}")
        result = await run_check(HttpCheck, url=f"{http_url}/", proxy_from_environment=True)
    assert (result.status, result.reason) == (Status.FAIL, PROXY_AUTH), result.message
    assert f"(407 Basic {MASK} to GET" in result.message
    assert_no_secret(result)


async def test_a_silent_proxy_times_out_naming_the_proxy(
    https_url: str, tls_files: TlsFiles
) -> None:
    async with stub_server(silent) as port:
        result = await probe(
            https_url, tls_files, proxy_url=f"http://127.0.0.1:{port}", timeout=0.5
        )
    assert (result.status, result.reason) == (Status.FAIL, "timeout"), result.message
    assert f"while waiting for proxy 127.0.0.1:{port} to CONNECT" in result.message


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"proxy_url": "https://127.0.0.1:3128"}, "proxy URL scheme must be http"),
        ({"proxy_url": "http://:3128"}, "proxy URL has no host"),
        ({"proxy_url": "http://p:3128", "proxy_from_environment": True}, "not both"),
        ({"no_proxy": "127.0.0.1"}, "no_proxy needs proxy_url"),
        ({"proxy_url": "http://p:3128", "no_proxy": "10.0.0.0/33"}, "not a CIDR range"),
        ({"proxy_connect_header": {"X-A": "b"}}, "needs proxy_url or proxy_from_environment"),
        ({"proxy_url": "http://p:3128", "proxy_connect_header": {"X A": "b"}}, "header name"),
        ({"proxy_url": "http://p:3128", "proxy_connect_header": {"X-A": ["b\r\nX: y"]}},
         "line breaks"),
    ],
)  # fmt: skip
def test_proxy_options_are_validated_with_a_clear_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        HttpOptions(url="http://127.0.0.1/", **options)


def test_proxy_secrets_are_known_to_the_redactor_and_never_dumped() -> None:
    options = HttpOptions.model_validate(
        {
            "url": "https://127.0.0.1/",
            "proxy_url": f"http://{USER}:{ENCODED}@proxy.test:3128",
            "proxy_connect_header": {"X-Tenant": [CONNECT_SECRET]},
        }
    )
    assert {ODD_PASSWORD, CONNECT_SECRET} <= option_secrets(options)
    shown = options.model_dump_json() + repr(options) + str(options.model_dump())
    for secret in (ODD_PASSWORD, ENCODED, CONNECT_SECRET):
        assert secret not in shown
    assert "proxy.test:3128" in shown


async def test_proxy_secrets_echoed_by_a_hostile_proxy_never_reach_any_output(
    tmp_path: Path,
) -> None:
    secret_file = write(tmp_path / "checks.d" / "proxy.secret", ENCODED)
    with probed_logs() as stream:
        async with (
            stub_server(echoing_proxy(407)) as auth_port,
            stub_server(echoing_proxy(403)) as connect_port,
        ):
            checks = tmp_path / "checks.d"
            write(
                checks / "proxied.yaml",
                f"""
                defaults: {{interval: 1s, timeout: 900ms, failure_threshold: 1}}
                checks:
                  - name: via-http
                    type: http
                    url: http://127.0.0.1:1/
                    proxy_url: "http://{USER}:${{file:{secret_file}}}@127.0.0.1:{auth_port}"
                  - name: via-connect
                    type: http
                    url: https://127.0.0.1:1/
                    proxy_url: "http://{USER}:${{file:{secret_file}}}@127.0.0.1:{connect_port}"
                    proxy_connect_header: {{X-Tenant: [{CONNECT_SECRET}]}}
                """,
            )
            async with running_daemon(checks) as r:
                for name in ("via-http", "via-connect"):
                    await r.runs(name, 1)
                await wait_for(
                    lambda: not (r.state("via-http").up or r.state("via-connect").up),
                    what="both checks down",
                )
                outputs = {
                    path: (await r.get(path))[1]
                    for path in ("/metrics", "/api/v1/checks", "/api/v1/checks/via-connect")
                }
    outputs["logs"] = stream.getvalue()
    basic = base64.b64encode(f"{USER}:{ODD_PASSWORD}".encode()).decode()
    for where, text in outputs.items():
        for form in (ODD_PASSWORD, ENCODED, CONNECT_SECRET, basic, json.dumps(ODD_PASSWORD)[1:-1]):
            assert form not in text, f"{where} shows {form!r}"
    api = {c["name"]: c for c in json.loads(outputs["/api/v1/checks"])["checks"]}
    assert api["via-http"]["last_result"]["reason"] == PROXY_AUTH
    assert api["via-connect"]["last_result"]["reason"] == PROXY
    for name in ("via-http", "via-connect"):
        assert MASK in api[name]["last_result"]["message"]  # the echo was there, masked
    detail = json.loads(outputs["/api/v1/checks/via-connect"])
    assert detail["options"]["proxy_url"] == f"http://{USER}:{MASK}@127.0.0.1:{connect_port}"


# -- agreement with blackbox_exporter's http prober -------------------------------------------


async def test_proxy_url_agrees_with_blackbox(
    blackbox_exporter: Callable[[dict[str, Any]], BlackboxExporter],
    tinyproxy: Callable[..., Tinyproxy],
    http_url: str,
    https_url: str,
    tls_files: TlsFiles,
) -> None:
    good = tinyproxy(auth=(USER, PASSWORD))
    refusing = tinyproxy(connect_ports=(443,))
    cases = {
        "through": (with_auth(good), http_url, True),
        "tunnel": (with_auth(good), https_url, True),
        "wrong_password": (with_auth(good, "nope-nope"), https_url, False),
        "no_credentials": (good.url, http_url, False),
        "refused_connect": (refusing.url, https_url, False),
        "dead_proxy": (f"http://127.0.0.1:{closed_port()}", http_url, False),
    }
    modules = {
        name: {
            "prober": "http",
            "timeout": "3s",
            "http": {"proxy_url": proxy_url, "tls_config": {"ca_file": tls_files.ca_file}},
        }
        for name, (proxy_url, _, _) in cases.items()
    }
    bb = await asyncio.to_thread(blackbox_exporter, modules)
    for name, (proxy_url, url, expected) in cases.items():
        theirs = await asyncio.to_thread(bb.success, name, f"{url}/")
        ours = await probe(url, tls_files, proxy_url=proxy_url)
        assert theirs is expected, name
        assert (ours.status is Status.OK) is expected, (name, ours.message)
