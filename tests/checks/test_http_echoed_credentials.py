"""A target echoing the request's credentials (issue 8): basic_auth and bearer_token values,
echoed as the ``Authorization`` header (base64), decoded (``user:password``) and in JSON, never
reach ``probed once`` output or the daemon's API; ``***`` shows where they were.

The http check registers them through its options: ``BasicAuth.secrets()`` gives the password
and ``user:password`` (whose base64 is the ``Basic`` credential), ``SecretStr`` values the rest.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from aiohttp import web

from probed.checks._http import BasicAuth
from probed.redact import MASK, option_secrets
from tests.harness import running_daemon, write
from tests.test_secrets_everywhere import echo_server as shared_echo_server

USER = "probe-user"
PASSWORD = "Pa55-w0rd/echo"
TOKEN = "tok-echo-31337-abc"
ENV = {"PROBED_TEST_BASIC_PASS": PASSWORD, "PROBED_TEST_BEARER": TOKEN}
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
REPO = Path(__file__).resolve().parents[2]
LEAKS = (PASSWORD, TOKEN, BASIC, f"{USER}:{PASSWORD}", base64.b64encode(TOKEN.encode()).decode())


async def _echo(request: web.Request) -> web.Response:
    auth = request.headers.get("Authorization", "")
    decoded = ""
    if auth.startswith("Basic "):
        decoded = base64.b64decode(auth[6:]).decode()
    body = json.dumps({"status": "DOWN", "you_sent": auth, "decoded": decoded})
    return web.Response(
        text=f"echo {auth} / {decoded} / {body}",
        headers={"X-Seen-Authorization": auth},
        status=503 if request.path == "/down" else 200,
    )


def echo_server() -> AbstractAsyncContextManager[int]:
    """The shared loopback echo target (tests/test_secrets_everywhere.py) with this echo."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", _echo)
    return shared_echo_server(app)


def checks_dir(root: Path, port: int) -> Path:
    base = f"http://127.0.0.1:{port}"
    basic = '{username: "' + USER + '", password: "${PROBED_TEST_BASIC_PASS}"}'
    bearer = '"${PROBED_TEST_BEARER}"'
    write(
        root / "checks" / "echo.yaml",
        f"""
        defaults: {{interval: 1s, timeout: 900ms}}
        checks:
          - {{name: basic-header, type: http, url: "{base}/h", basic_auth: {basic},
              header_must_match: {{X-Seen-Authorization: "^nothing$"}}}}
          - {{name: basic-body, type: http, url: "{base}/b", basic_auth: {basic},
              body_must_not_match: ["Basic \\\\S+", "probe-user:\\\\S+"]}}
          - {{name: basic-decoded, type: http, url: "{base}/d", basic_auth: {basic},
              body_must_not_match: ["probe-user:\\\\S+"]}}
          - {{name: bearer-body, type: http, url: "{base}/t", bearer_token: {bearer},
              body_must_not_match: ["Bearer \\\\S+"]}}
          - {{name: bearer-json, type: json_api, url: "{base}/j", bearer_token: {bearer},
              body_must_not_match: ["you_sent.{{0,40}}"]}}
        """,
    )
    return root / "checks"


def assert_masked(where: str, text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{where} shows {leak!r}:\n{text}"
    assert MASK in text, f"{where} shows no mask: the test would pass by printing nothing"


def test_basic_auth_registers_password_and_user_password_as_secrets() -> None:
    auth = BasicAuth.model_validate({"username": USER, "password": PASSWORD})
    assert auth.secrets() == {PASSWORD, f"{USER}:{PASSWORD}"}
    assert {PASSWORD, f"{USER}:{PASSWORD}"} <= option_secrets(auth)


async def test_echoed_credentials_never_reach_probed_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")} | ENV
    async with echo_server() as port:
        checks = checks_dir(tmp_path, port)
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "probed",
                "once",
                "--checks-dir",
                str(checks),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=REPO,
            check=False,
        )
    assert "Traceback" not in done.stderr, done.stderr
    report = {c["name"]: c for c in json.loads(done.stdout)}
    assert set(report) == {"basic-header", "basic-body", "basic-decoded", "bearer-body",
                           "bearer-json"}  # fmt: skip
    for name, entry in report.items():
        assert entry["status"] == "fail", entry
        assert_masked(f"once: {name}", entry["message"])
    assert_masked("once stdout", done.stdout + done.stderr)


async def test_echoed_credentials_never_reach_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    async with echo_server() as port, running_daemon(checks_dir(tmp_path, port)) as r:
        for name in ("basic-header", "basic-body", "basic-decoded", "bearer-body", "bearer-json"):
            await r.runs(name, 1)
        status, body, _ = await r.get("/api/v1/checks")
        _, health, _ = await r.get("/health/ready?verbose=1")
    assert status == 200
    assert_masked("/api/v1/checks", body)
    for leak in LEAKS:
        assert leak not in health
