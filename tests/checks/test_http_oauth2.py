"""``oauth2`` (client credentials) of the ``http`` and ``json_api`` check types against a real
loopback OAuth2 token endpoint (aiohttp, issuing short-lived tokens and counting requests) and a
target that accepts only the endpoint's live tokens.

Expiry is tested on the check's own clock (``TokenSource.clock``, replaced by a counter the test
advances), not by sleeping. The secret and the tokens never reach a result message, the
daemon's API, its logs or ``/metrics``, also when the target echoes the token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Reason, Result, Status
from probed.checks._http_oauth2 import MAX_TOKEN_RESPONSE, OAuth2
from probed.checks.http import HttpCheck, HttpOptions
from probed.checks.json_api import JsonApiCheck
from probed.redact import MASK, option_secrets
from probed.runner import execute
from probed.testing import make_spec
from tests.checks.test_http import serve
from tests.harness import probed_logs, running_daemon, write

CLIENT_ID = "probe-client"
SECRET = "cl13nt-s3cret/with+chars"
TOKEN_PREFIX = "tk-live-8c1f"


class TokenServer:
    """An OAuth2 token endpoint and a protected target on one aiohttp app."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []  # the form of every token request
        self.basic: list[bool] = []  # whether each token request used HTTP basic auth
        self.issued: list[str] = []
        self.live: set[str] = set()
        self.seen: list[str] = []  # Authorization values the target saw
        self.expires_in: Any = 60
        self.body_only = False  # refuse client credentials in the Authorization header
        self._serial = itertools.count(1)

    def _client(self, request: web.Request, form: dict[str, str]) -> tuple[str, str] | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            self.basic.append(True)
            if self.body_only:
                return None
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return unquote_plus(user), unquote_plus(password)
        self.basic.append(False)
        return form.get("client_id", ""), form.get("client_secret", "")

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(form)
        if request.content_type != "application/x-www-form-urlencoded":
            return web.json_response({"error": "invalid_request"}, status=400)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if self._client(request, form) != (CLIENT_ID, SECRET):
            return web.json_response(
                {"error": "invalid_client", "error_description": "client authentication failed"},
                status=401,
            )
        token = f"{TOKEN_PREFIX}-{next(self._serial)}-zq9"
        self.issued.append(token)
        self.live.add(token)
        answer: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)

    async def huge(self, request: web.Request) -> web.Response:
        self.requests.append({})
        return web.json_response({"access_token": "x" * (MAX_TOKEN_RESPONSE * 2)})

    async def not_json(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>login here</html>", content_type="text/html")

    async def api(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        self.seen.append(header)
        if not header.startswith("Bearer ") or header[7:] not in self.live:
            return web.Response(status=401, text="token not accepted")
        if request.path == "/echo":
            return web.Response(text=f"you sent {header}")
        return web.json_response({"status": "UP"})


def make_app(server: TokenServer) -> web.Application:
    app = web.Application()
    app.router.add_post("/token", server.token)
    app.router.add_post("/huge", server.huge)
    app.router.add_post("/html", server.not_json)
    app.router.add_get("/api", server.api)
    app.router.add_get("/echo", server.api)
    return app


@pytest.fixture
def server() -> TokenServer:
    return TokenServer()


@pytest.fixture
async def base(server: TokenServer) -> AsyncIterator[str]:
    async with serve(app=make_app(server)) as url:
        yield url


def oauth2(base: str, path: str = "/token", secret: str = SECRET, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "token_url": f"{base}{path}",
        **extra,
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def checked(
    base: str, path: str = "/api", **options: Any
) -> AsyncIterator[tuple[HttpCheck, Clock]]:
    """An http check of ``base + path`` with ``oauth2`` (default: the right secret) on a clock
    the test advances; closed on exit."""
    options.setdefault("oauth2", oauth2(base))
    check = HttpCheck(make_spec(HttpCheck, url=f"{base}{path}", timeout=5.0, **options))
    clock = Clock()
    assert check.oauth is not None
    check.oauth.clock = clock
    try:
        yield check, clock
    finally:
        await check.close()


async def run(check: HttpCheck) -> Result:
    return await execute(check, 5.0)


async def run_once(base: str, path: str = "/api", **options: Any) -> Result:
    async with checked(base, path, **options) as (check, _):
        return await run(check)


def assert_no_secrets(text: str, server: TokenServer) -> None:
    for leak in (SECRET, *server.issued):
        assert leak not in text, f"{leak!r} shown in {text!r}"


# -- the token ----------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused(base: str, server: TokenServer) -> None:
    async with checked(base) as (check, _):
        results = [await run(check) for _ in range(3)]
    assert [r.status for r in results] == [Status.OK] * 3, results[0].message
    assert len(server.requests) == 1
    assert server.seen == [f"Bearer {server.issued[0]}"] * 3
    assert server.basic == [True]  # client credentials in HTTP basic auth first
    for result in results:
        assert_no_secrets(result.message, server)


async def test_token_is_fetched_again_shortly_before_it_expires(
    base: str, server: TokenServer
) -> None:
    async with checked(base) as (check, clock):
        assert (await run(check)).status is Status.OK
        clock.now += 53  # 60 s token, refreshed 6 s (10 %) before expiry: still valid
        assert (await run(check)).status is Status.OK
        assert len(server.issued) == 1
        clock.now += 2  # 55 s: within the margin
        assert (await run(check)).status is Status.OK
        assert len(server.issued) == 2
        server.live.discard(server.issued[0])  # the endpoint expired the first one
        clock.now += 30
        assert (await run(check)).status is Status.OK
    assert server.seen[-2:] == [f"Bearer {server.issued[1]}"] * 2


async def test_a_refused_token_is_dropped_and_fetched_again(base: str, server: TokenServer) -> None:
    async with checked(base) as (check, _):
        assert (await run(check)).status is Status.OK
        server.live.clear()  # revoked at the endpoint
        refused = await run(check)
        assert refused.status is Status.FAIL
        assert refused.reason == Reason.STATUS
        assert (await run(check)).status is Status.OK
    assert len(server.issued) == 2


async def test_without_expires_in_the_token_is_kept_until_refused(
    base: str, server: TokenServer
) -> None:
    server.expires_in = None
    async with checked(base) as (check, clock):
        for _ in range(3):
            clock.now += 10_000
            assert (await run(check)).status is Status.OK
    assert len(server.issued) == 1


async def test_scopes_and_endpoint_params_reach_the_token_endpoint(
    base: str, server: TokenServer
) -> None:
    options = oauth2(base, scopes=["read:health", "metrics"], endpoint_params={"audience": "api"})
    async with checked(base, oauth2=options) as (check, _):
        assert (await run(check)).status is Status.OK
    assert server.requests[0]["scope"] == "read:health metrics"
    assert server.requests[0]["audience"] == "api"
    assert server.requests[0]["grant_type"] == "client_credentials"


async def test_an_endpoint_wanting_credentials_in_the_body_gets_them_there(
    base: str, server: TokenServer
) -> None:
    server.body_only = True
    async with checked(base) as (check, clock):
        assert (await run(check)).status is Status.OK
        clock.now += 100
        assert (await run(check)).status is Status.OK
    # Basic auth tried once, then the form; the next fetch goes straight to the form.
    assert server.basic == [True, False, False]
    assert server.requests[1]["client_id"] == CLIENT_ID


async def test_json_api_gets_the_token_too(base: str, server: TokenServer) -> None:
    spec = make_spec(JsonApiCheck, url=f"{base}/api", oauth2=oauth2(base))
    check = JsonApiCheck(spec)
    try:
        result = await execute(check, 5.0)
    finally:
        await check.close()
    assert result.status is Status.OK, result.message
    assert server.seen == [f"Bearer {server.issued[0]}"]


# -- failures -----------------------------------------------------------------------------------


async def test_a_wrong_secret_fails_with_auth_naming_the_token_endpoint(
    base: str, server: TokenServer
) -> None:
    result = await run_once(base, oauth2=oauth2(base, secret="wrong-secret-value"))
    assert result.status is Status.FAIL
    assert result.reason == Reason.AUTH
    assert f"OAuth2 token endpoint {base}/token answered 401 Unauthorized" in result.message
    assert "invalid_client (client authentication failed)" in result.message
    assert "wrong client_id or client_secret" in result.message
    assert "wrong-secret-value" not in result.message
    assert server.seen == []  # the target was never asked
    assert result.phases == {}  # the token endpoint's timings are not the target's
    assert len(server.requests) == 2  # basic auth, then the form (as Go's oauth2 does)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/huge", "exceeds max_body_size of 65536 bytes"),
        ("/html", "answered 200 OK without an access_token in a JSON object"),
        ("/missing", "answered 404 Not Found"),
    ],
)
async def test_a_bad_token_response_fails_with_auth(base: str, path: str, shown: str) -> None:
    result = await run_once(base, oauth2=oauth2(base, path=path))
    assert result.status is Status.FAIL
    assert result.reason == Reason.AUTH
    assert f"OAuth2 token endpoint {base}{path}" in result.message
    assert shown in result.message


async def test_an_unreachable_token_endpoint_fails_with_auth_not_blaming_the_target(
    base: str,
) -> None:
    result = await run_once(base, oauth2=oauth2("http://127.0.0.1:9", path="/token"))
    assert result.status is Status.FAIL
    assert result.reason == Reason.AUTH
    assert "OAuth2 token endpoint http://127.0.0.1:9/token: " in result.message
    assert "(connection_refused)" in result.message


async def test_a_silent_token_endpoint_times_out_naming_it(base: str) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # accepts, reads nothing, answers nothing until the test ends
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with checked(base, oauth2=oauth2(f"http://127.0.0.1:{port}")) as (check, _):
            result = await execute(check, 0.5)
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    assert result.status is Status.FAIL
    assert result.reason == Reason.TIMEOUT
    assert f"while fetching the OAuth2 token from http://127.0.0.1:{port}/token" in result.message


# -- options ------------------------------------------------------------------------------------


def test_oauth2_options_are_validated() -> None:
    base = {"url": "http://127.0.0.1/"}
    with pytest.raises(ValidationError, match=r"oauth2\.token_url"):
        HttpOptions.model_validate({**base, "oauth2": oauth2("ftp://x")})
    with pytest.raises(ValidationError, match="not both"):
        HttpOptions.model_validate(
            {**base, "oauth2": oauth2("http://a"), "bearer_token": "abcdefgh"}
        )
    with pytest.raises(ValidationError, match="invalid scope"):
        HttpOptions.model_validate({**base, "oauth2": oauth2("http://a", scopes=["a b"])})
    with pytest.raises(ValidationError, match="client_secret"):
        HttpOptions.model_validate(
            {**base, "oauth2": {"client_id": "a", "token_url": "http://a/t"}}
        )


def test_the_secret_is_an_option_secret_in_every_form_it_is_sent() -> None:
    auth = OAuth2.model_validate(oauth2("http://a"))
    found = option_secrets(HttpOptions(url="http://127.0.0.1/", oauth2=auth))
    assert SECRET in found
    assert f"{CLIENT_ID}:{SECRET}" in found
    assert "cl13nt-s3cret%2Fwith%2Bchars" in found  # form-encoded, as in the body or Basic


# -- never shown --------------------------------------------------------------------------------


async def test_an_echoed_token_is_masked_in_the_message(base: str, server: TokenServer) -> None:
    echoed = await run_once(base, path="/echo", body_must_not_match=["you sent .*"])
    assert echoed.status is Status.FAIL, echoed.message
    assert "you sent Bearer " + MASK in echoed.message
    assert_no_secrets(echoed.message, server)


async def test_secret_and_token_never_reach_api_logs_or_metrics(
    tmp_path: Path, server: TokenServer, base: str
) -> None:
    checks = tmp_path / "checks"
    write(checks / "client.secret", SECRET)
    write(
        checks / "oauth.yaml",
        f"""
        defaults: {{interval: 1s, timeout: 900ms, failure_threshold: 1}}
        checks:
          - name: oauth-ok
            type: http
            url: "{base}/api"
            oauth2: {{client_id: {CLIENT_ID}, client_secret: "${{file:client.secret}}",
                      token_url: "{base}/token", scopes: [read]}}
          - name: oauth-echo
            type: http
            url: "{base}/echo"
            body_must_not_match: ["you sent .*"]
            oauth2: {{client_id: {CLIENT_ID}, client_secret: "${{file:client.secret}}",
                      token_url: "{base}/token"}}
          - name: oauth-wrong
            type: http
            url: "{base}/api"
            oauth2: {{client_id: {CLIENT_ID}, client_secret: "not-the-secret",
                      token_url: "{base}/token"}}
        """,
    )
    with probed_logs() as logs:
        async with running_daemon(checks) as r:
            for name in ("oauth-ok", "oauth-echo", "oauth-wrong"):
                await r.runs(name, 1)
            _, api, _ = await r.get("/api/v1/checks")
            _, metrics, _ = await r.get("/metrics")
            _, health, _ = await r.get("/health/ready?verbose=1")
    checks_by_name = {c["name"]: c for c in json.loads(api)["checks"]}
    assert checks_by_name["oauth-ok"]["status"] == "ok", checks_by_name["oauth-ok"]
    assert 'reason="auth"' in metrics or '"auth"' in api
    assert server.issued  # tokens were issued, so there was something to leak
    for where, text in (
        ("api", api),
        ("metrics", metrics),
        ("health", health),
        ("logs", logs.getvalue()),
    ):
        assert_no_secrets(text, server)
        assert "not-the-secret" not in text, where
    assert MASK in api  # the secret option is shown masked
    assert "oauth-wrong" in logs.getvalue()  # the logs said something about the checks
