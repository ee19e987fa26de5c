"""Every form a secret takes, through every output probed has (issue 7: one secrets owner).

Secrets enter the way users write them: the userinfo of a URL (a password containing ``/``,
``@`` and ``%2F``), ``password=`` in a ``key=value`` DSN, ``?token=`` / ``?api_key=`` in a URL,
an ``Authorization`` header written in the checks file, a value read with ``${file:...}`` and
one from ``${ENV}``. Real checks fail against a real loopback server that echoes what it was
sent (raw, base64, JSON-escaped), so the messages carry the targets and the secrets. Every
output is then read: text and JSON logs of a real daemon, ``/metrics``, ``/api/v1/checks``,
``/api/v1/checks/NAME``, the health bodies (JSON, text/plain, verbose), ``probed once`` in
text, JSON and JUnit, and ``probed validate``. No form of any secret may appear (raw,
URL-encoded, JSON- or Python-escaped, base64), and ``***`` must appear where one was, so the
test cannot pass by printing nothing.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web

from probed.logs import configure_logging, set_redactor
from probed.redact import MASK, Redactor
from tests.harness import running_daemon, wait_for, write
from tests.servers._util import free_port

FILE_SECRET = 'fi/le"Sec+ret\\42'  # ${file:...}; escaped differently by JSON, repr and URLs
ENV_NAME = "PROBED_TEST_API_TOKEN"
ENV_SECRET = "env-Tok3n/wi th+plus"  # ${ENV}
HEADER_SECRET = "hdr-B3arer-T0KEN-literal"  # Authorization written in the checks file
QUERY_TOKEN = "qTok-4417-zz"  # ?token=
QUERY_KEY = "qKey-9931-yy"  # &api_key=
URL_SLASH_PW = "us3r/pa@ss-77"  # userinfo with '/' and '@', echoed by the server
DSN_PW = "p/enc@pw-99"  # userinfo written %2F / %40-encoded in a postgres DSN
KV_PW = "kv-Pa55word-3"  # password= in a libpq key=value DSN, echoed by the server

SECRETS = (FILE_SECRET, ENV_SECRET, HEADER_SECRET, QUERY_TOKEN, QUERY_KEY, URL_SLASH_PW, DSN_PW,
           KV_PW)  # fmt: skip


def forms(secret: str) -> set[str]:
    """Every way ``secret`` could be written in output: raw, URL-encoded, base64, and escaped
    once or twice by JSON or a Python repr (a repr'd excerpt inside a JSON log line...)."""
    raw = secret.encode()
    found = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
             base64.b64encode(raw).decode().rstrip("="),
             base64.urlsafe_b64encode(raw).decode().rstrip("=")}  # fmt: skip
    for _ in range(2):
        found |= {json.dumps(f)[1:-1] for f in found} | {repr(f)[1:-1] for f in found}
    return found


def assert_no_secret(where: str, text: str) -> None:
    for secret in SECRETS:
        for form in forms(secret):
            assert form not in text, f"{where} shows {form!r} (a form of {secret!r}):\n{text}"


# -- a loopback server that echoes what it was sent ----------------------------------------------


def _echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        what = request.match_info["what"]
        auth = request.headers.get("Authorization", "")
        key = request.headers.get("X-Api-Key", "")
        bodies = {
            "auth": f"seen <{auth}>",
            "key": f"seen <{key}>",
            "b64": f"seen b64 {base64.b64encode(key.encode()).decode()}",
            "json": "seen " + json.dumps({"bearer": auth.removeprefix("Bearer ")}),
            "url": f"seen postgres://app:{URL_SLASH_PW}@db.internal/app",
            "kv": f"seen host=db password={KV_PW} dbname=app",
        }
        return web.Response(text=bodies.get(what, "?"), status=200 if what in bodies else 503)

    app = web.Application()
    app.router.add_get("/{what}", echo)
    return app


@asynccontextmanager
async def echo_server(app: web.Application | None = None) -> AsyncIterator[int]:
    """Serve ``app`` (this module's echo target by default) on a free loopback port."""
    port = free_port()
    runner = web.AppRunner(app or _echo_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def _http(name: str, port: int, path: str, extra: str) -> str:
    return f"""
      - name: {name}
        type: http
        url: http://127.0.0.1:{port}/{path}
        body_must_not_match: ['seen .*']
        {extra}"""


def checks_files(root: Path, port: int, closed: int) -> Path:
    """The checks directory: every secret form, every check fails and says why."""
    checks = root / "checks.d"
    # Next to the checks file that refers to it: a directory ${file:} may read by default.
    secret_file = write(checks / "bearer.secret", FILE_SECRET)
    text = "defaults: {interval: 1s, timeout: 900ms, failure_threshold: 1}\nchecks:"
    text += _http("file-bearer", port, "auth", f'bearer_token: "${{file:{secret_file}}}"')
    text += _http("file-json", port, "json", f'bearer_token: "${{file:{secret_file}}}"')
    text += _http("env-key", port, "key", f'secret_headers: {{X-Api-Key: "${{{ENV_NAME}}}"}}')
    text += _http("env-b64", port, "b64", f'secret_headers: {{X-Api-Key: "${{{ENV_NAME}}}"}}')
    text += _http(
        "literal-authorization",
        port,
        "auth",
        f'secret_headers: {{Authorization: "Bearer {HEADER_SECRET}"}}',
    )
    label = f"postgres://app:{URL_SLASH_PW}@db.internal/app"  # label values are public
    text += _http("url-userinfo", port, "url", f'labels: {{upstream: "{label}"}}')
    text += _http("kv-dsn", port, "kv", "")
    text += f"""
      - name: query-token
        type: http
        url: http://127.0.0.1:{port}/fail?token={QUERY_TOKEN}&api_key={QUERY_KEY}&page=2
      - name: dsn-userinfo
        type: postgres
        dsn: postgresql://app:{quote(DSN_PW, safe="")}@127.0.0.1:{closed}/app?sslmode=disable
    """
    write(checks / "secrets.yaml", text)
    # An invalid file whose errors echo the values (interpolated ones and a literal URL).
    write(
        checks / "broken.yaml",
        f"""
        checks:
          - name: broken-env
            type: http
            url: http://127.0.0.1:{port}/x
            method: "${{{ENV_NAME}}}"
          - name: broken-file
            type: http
            url: http://127.0.0.1:{port}/x
            method: "${{file:{secret_file}}}"
          - name: broken-url
            type: http
            url: http://127.0.0.1:{port}/x
            interval: "postgres://app:{URL_SLASH_PW}@db.internal/app"
        """,
    )
    return checks


CHECKS = ("file-bearer", "file-json", "env-key", "env-b64", "literal-authorization",
          "url-userinfo", "kv-dsn", "query-token", "dsn-userinfo")  # fmt: skip


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_NAME, ENV_SECRET)


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens there: connection refused


# -- the daemon: logs, /metrics, the API, health bodies -------------------------------------------


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_no_secret_form_reaches_logs_metrics_api_or_health_bodies(
    tmp_path: Path, secret_env: None, closed_port: int, log_format: str
) -> None:
    stream = io.StringIO()
    configure_logging(log_format, "INFO", stream)
    try:
        async with echo_server() as port:
            checks = checks_files(tmp_path, port, closed_port)
            async with running_daemon(checks, log_format=log_format) as r:
                for name in CHECKS:
                    await r.runs(name, 1)
                await wait_for(
                    lambda: all(not r.state(n).up for n in CHECKS), what="every check down"
                )
                outputs = {"/metrics": (await r.get("/metrics"))[1]}
                outputs["/api/v1/checks"] = (await r.get("/api/v1/checks"))[1]
                for name in CHECKS:
                    outputs[f"/api/v1/checks/{name}"] = (await r.get(f"/api/v1/checks/{name}"))[1]
                for path in ("/health/ready", "/health/startup", "/health/live"):
                    outputs[path] = (await r.get(path))[1]
                    outputs[path + "?verbose"] = (await r.get(path + "?verbose"))[1]
                    text = await r.get(path, headers={"Accept": "text/plain"})
                    outputs[path + " text/plain"] = text[1]
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_probed", False)]:
            root.removeHandler(handler)
        set_redactor(Redactor(()))
    outputs["logs"] = stream.getvalue()
    for where, text in outputs.items():
        assert_no_secret(where, text)
    # The secrets were there to hide: the mask shows where.
    api = json.loads(outputs["/api/v1/checks"])
    messages = {c["name"]: c["last_result"]["message"] for c in api["checks"]}
    for name in ("file-bearer", "file-json", "env-key", "env-b64", "literal-authorization",
                 "url-userinfo", "kv-dsn", "query-token"):  # fmt: skip
        assert MASK in messages[name], (name, messages[name])
    assert "'seen <Bearer ***>'" in messages["file-bearer"]
    assert "postgres://app:***@db.internal/app" in messages["url-userinfo"]
    assert "password=*** dbname=app" in messages["kv-dsn"]
    assert f"token={MASK}&api_key={MASK}&page=2" in messages["query-token"]
    assert any("interval" in e and "postgres://app:***@" in e for e in api["config_errors"])
    detail = {n: json.loads(outputs[f"/api/v1/checks/{n}"]) for n in CHECKS}
    assert detail["file-bearer"]["options"]["bearer_token"] == MASK
    assert detail["env-key"]["options"]["secret_headers"] == {"X-Api-Key": MASK}
    assert detail["literal-authorization"]["options"]["secret_headers"] == {"Authorization": MASK}
    assert detail["dsn-userinfo"]["options"]["dsn"] == (
        f"postgresql://app:{MASK}@127.0.0.1:{closed_port}/app?sslmode=disable"
    )
    assert detail["query-token"]["options"]["url"].endswith(f"token={MASK}&api_key={MASK}&page=2")
    assert "**********" not in "".join(outputs.values())  # one mask everywhere
    # Logs and health bodies carry the masked messages, not nothing.
    assert "seen <Bearer ***>" in outputs["logs"]
    assert "postgres://app:***@db.internal/app" in outputs["logs"]
    for path in ("/health/ready", "/health/ready?verbose", "/health/ready text/plain"):
        assert "password=*** dbname=app" in outputs[path], path
        assert f"token={MASK}&api_key={MASK}" in outputs[path], path
    assert 'check="query-token"' in outputs["/metrics"]
    assert f'upstream="postgres://app:{MASK}@db.internal/app"' in outputs["/metrics"]
    assert detail["url-userinfo"]["labels"] == {
        "upstream": f"postgres://app:{MASK}@db.internal/app"
    }


# -- the command line: probed once (every format) and probed validate ---------------------------


def _probed(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env[ENV_NAME] = ENV_SECRET
    return subprocess.run(
        [sys.executable, "-m", "probed", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("fmt", ["text", "json", "junit"])
async def test_no_secret_form_reaches_probed_once_in_any_format(
    tmp_path: Path, closed_port: int, fmt: str
) -> None:
    async with echo_server() as port:
        checks = checks_files(tmp_path, port, closed_port)
        done = await asyncio.to_thread(
            _probed, "once", "--checks-dir", str(checks), "--format", fmt, cwd=tmp_path
        )
    output = done.stdout + done.stderr
    assert done.returncode == 3, output  # failing checks and configuration errors: unknown
    assert_no_secret(f"probed once --format {fmt}", output)
    assert "seen <Bearer ***>" in output.replace("&lt;", "<").replace("&gt;", ">")
    assert "postgres://app:***@db.internal/app" in output
    assert f"token={MASK}&" in output.replace("&amp;", "&")
    assert "password=*** dbname=app" in output


def test_no_secret_form_reaches_probed_validate(tmp_path: Path, closed_port: int) -> None:
    checks = checks_files(tmp_path, free_port(), closed_port)
    done = _probed("validate", "--checks-dir", str(checks), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_no_secret("probed validate", done.stdout + done.stderr)
    lines = done.stderr.splitlines()
    assert any("broken-env" in ln or ("method" in ln and MASK in ln) for ln in lines), lines
    assert sum(1 for ln in lines if ".method:" in ln and f"'{MASK}'" in ln) == 2, lines
    assert any(".interval:" in ln and f"postgres://app:{MASK}@db.internal/app" in ln
               for ln in lines), lines  # fmt: skip


def test_a_label_holding_a_secret_is_a_config_error_and_never_reaches_metrics(
    tmp_path: Path,
) -> None:
    """Labels are published as-is in /metrics: a secret interpolated into one is refused (the
    check does not load, the error names file, line and label) instead of being exposed."""
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "labels.yaml").write_text(
        "checks:\n"
        "  - name: kept\n"
        "    type: tcp\n"
        "    address: 127.0.0.1:1\n"
        "    labels: {team: payments}\n"
        "  - name: leaky\n"
        "    type: tcp\n"
        "    address: 127.0.0.1:1\n"
        "    labels:\n"
        "      team: payments\n"
        f"      owner: 'ci-${{{ENV_NAME}}}'\n"
    )
    done = _probed("validate", "--checks-dir", str(checks), cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert_no_secret("probed validate", output)
    assert "labels.yaml:11: checks[1].labels.owner: a label must not hold a secret" in output
    assert "checks[0]" not in output, output  # the check without a secret label is valid
