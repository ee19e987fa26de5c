"""Issue 8, secrets in every form: no output of a real daemon or CLI shows any form of a secret.

Finding reproduced: "an escaped, case-changed, URL-encoded, base64 or multi-line form of a
secret is printed; a secret used in ``method:``, ``query_type:``, a label or a description is
shown as is; ``?api_key=`` in a URL and a target that echoes request headers (Basic auth,
Bearer) put the credentials into API, health, logs and ``once`` output."

The table: every secret source (``${file:}``, ``${ENV}``, a secret-typed option, a Basic
``user:password``, a secret-named plain header, a URL query value, a multi-line file) x every
form a loopback target echoes it in (raw, case-changed, JSON- and Python-escaped, URL-encoded,
base64, one line of it) x every output (API list and detail, health bodies JSON and text, logs
JSON and text, ``/metrics``, configuration errors, the reload answer, ``probed once`` text, JSON
and JUnit, ``probed validate``). One daemon per log format and one CLI run per command serve
all of it; each (output, secret) pair is then a test case asserting that no form of the secret
is in that output, in any letter case, and that ``***`` shows where secrets were.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web

from probed.logs import configure_logging, set_redactor
from probed.redact import MASK, Redactor
from tests.harness import running_daemon, wait_for, write
from tests.test_secrets_everywhere import echo_server

ROOT = Path(__file__).resolve().parents[2]

# Each secret holds characters that JSON, repr and URLs escape differently.
FILE_KEY = 'fK/"ey+Val\\ue-31'  # ${file:} -> secret_headers X-Api-Key
ENV_TOKEN = "envTok/3n+xy z-9"  # ${PROBED_SF_TOKEN} -> bearer_token
BASIC_PW = "b@sic:Pw/99-x&y"  # basic_auth.password written in the file (a secret option)
PLAIN_KEY = "plainKey-Zz88-q%"  # plain headers: {X-Auth-Token: ...}: a secret-named header
QUERY_KEY = "qK-4417-zzAB"  # ?api_key= in a URL, not from a reference
PEM = (
    "-----BEGIN TEST KEY-----\nMIIEvQIBADANBgkqhkiG9w\nBKcwggSjAgEAAoIBAQC7\n-----END TEST KEY-----"
)
METHOD_SECRET = "m3thod-S3cret/x"  # ${file:} in method: (invalid: a config error)
QTYPE_SECRET = "qtype-S3cret-41"  # ${PROBED_SF_QTYPE_SECRET} in a dns query_type:
LABEL_SECRET = "lab3l-S3cret-77"  # ${file:} in a label
DESC_SECRET = "d3sc-S3cret-55"  # ${PROBED_SF_DESC_TOKEN} in a description
URL_PW = "us3r/pa@ss-77"  # a URL password in a config error (interval: 'postgres://...')
RELOAD_SECRET = "r3load-S3cret-9"  # ${file:} in a file added before POST /-/reload
ENV = {
    "PROBED_SF_TOKEN": ENV_TOKEN,
    "PROBED_SF_QTYPE_SECRET": QTYPE_SECRET,
    "PROBED_SF_DESC_TOKEN": DESC_SECRET,
}
SECRETS = {
    "file": FILE_KEY, "env": ENV_TOKEN, "basic-password": BASIC_PW, "plain-header": PLAIN_KEY,
    "query": QUERY_KEY, "pem-line": PEM.splitlines()[1], "method": METHOD_SECRET,
    "query-type": QTYPE_SECRET, "label": LABEL_SECRET, "description": DESC_SECRET,
    "url-password": URL_PW, "reload": RELOAD_SECRET,
}  # fmt: skip

_B64 = (base64.b64encode, base64.urlsafe_b64encode)
FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "upper": str.upper,
    "swapcase": str.swapcase,
    "json": lambda s: json.dumps(s)[1:-1],
    "json-twice": lambda s: json.dumps(json.dumps(s))[1:-1],
    "repr": lambda s: repr(s)[1:-1],
    "quote": lambda s: quote(s, safe=""),
    "quote-lower-hex": lambda s: quote(s, safe="").lower(),
    "quote-plus": quote_plus,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64-urlsafe-unpadded": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}


def every_form(secret: str) -> set[str]:
    """What may not appear: each form, base64 without padding, ``user:secret`` in base64, and
    each of those escaped once more."""
    found = {f(secret) for f in FORMS.values()}
    for encode in _B64:
        found.add(encode(secret.encode()).decode().rstrip("="))
        found.add(encode(f"alice:{secret}".encode()).decode().rstrip("="))
    # Escaped once more on the way out (a repr'd excerpt, a JSON log line).
    return found | {json.dumps(f)[1:-1] for f in found} | {repr(f)[1:-1] for f in found}


# -- a loopback target that echoes the credentials it was sent, in a chosen form ---------------


def _credential(request: web.Request, source: str, body: str) -> str:
    auth = request.headers.get("Authorization", "")
    if source == "key":
        return request.headers.get("X-Api-Key", "")
    if source == "bearer":
        return auth.removeprefix("Bearer ")
    if source == "basic":
        return base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")[2]
    if source == "basic-header":
        return auth
    if source == "plain":
        return request.headers.get("X-Auth-Token", "")
    if source == "query":
        return request.query.get("api_key", "")
    if source == "pem-line":
        return body.splitlines()[1]
    return "?"


def _echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        credential = _credential(request, request.match_info["source"], await request.text())
        shown = FORMS[request.match_info["form"]](credential)
        return web.Response(text=f"seen <{shown}>")

    app = web.Application()
    app.router.add_route("*", "/e/{source}/{form}", echo)
    return app


SOURCES = {  # source -> options of the check sending it
    "key": 'secret_headers: {X-Api-Key: "${file:key.secret}"}',
    "bearer": 'bearer_token: "${PROBED_SF_TOKEN}"',
    "basic": f"basic_auth: {{username: alice, password: {json.dumps(BASIC_PW)}}}",
    "basic-header": f"basic_auth: {{username: alice, password: {json.dumps(BASIC_PW)}}}",
    "plain": f"headers: {{X-Auth-Token: {json.dumps(PLAIN_KEY)}}}",
    "query": "",
    "pem-line": 'method: POST\n        body: "${file:pem.secret}"',
}
# The Authorization header of Basic auth is already base64: base64 of it (an encoding of an
# encoding) is not one of the forms masked.
PAIRS = [(s, f) for s in SOURCES for f in FORMS if not (s == "basic-header" and "base64" in f)]
CHECKS = [f"{source}-{form}" for source, form in PAIRS]


def checks_dir(root: Path, port: int) -> Path:
    checks = root / "checks.d"
    # Secret files next to the checks file: a directory ${file:} may read by default.
    write(checks / "key.secret", FILE_KEY)
    write(checks / "method.secret", METHOD_SECRET)
    write(checks / "label.secret", LABEL_SECRET)
    write(checks / "reload.secret", RELOAD_SECRET)
    (checks / "pem.secret").write_text(PEM + "\n")
    text = "defaults: {interval: 5s, timeout: 4s, failure_threshold: 1}\nchecks:\n"
    for source, form in PAIRS:
        query = f"?api_key={QUERY_KEY}&page=2" if source == "query" else ""
        text += f"""
      - name: {source}-{form}
        type: http
        url: http://127.0.0.1:{port}/e/{source}/{form}{query}
        body_must_not_match: ['seen .*']
        labels: {{upstream: "postgres://app:{URL_PW}@db.internal/app"}}
        {SOURCES[source]}
"""
    write(checks / "echo.yaml", text)
    write(
        checks / "broken.yaml",
        f"""
        checks:
          - name: secret-method
            type: http
            url: http://127.0.0.1:{port}/x
            method: "${{file:method.secret}}"
          - name: secret-query-type
            type: dns
            query_name: example.org
            query_type: "${{PROBED_SF_QTYPE_SECRET}}"
          - name: secret-label
            type: tcp
            address: 127.0.0.1:1
            labels: {{owner: "${{file:label.secret}}"}}
          - name: secret-description
            type: tcp
            address: 127.0.0.1:1
            description: "owned by ${{PROBED_SF_DESC_TOKEN}}"
          - name: url-interval
            type: tcp
            address: 127.0.0.1:1
            interval: "postgres://app:{URL_PW}@db.internal/app"
        """,
    )
    return checks


# -- running everything once --------------------------------------------------------------------


async def _cli(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env.update(ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "probed", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode() + err.decode()


async def _daemon_outputs(checks: Path, log_format: str) -> dict[str, str]:
    stream = io.StringIO()
    configure_logging(log_format, "INFO", stream)
    outputs: dict[str, str] = {}
    try:
        async with running_daemon(checks, log_format=log_format) as r:
            await wait_for(
                lambda: all(n in r.daemon.store and sum(r.state(n).runs) for n in CHECKS),
                30,
                "every echo check down",
            )
            outputs["/api/v1/checks"] = (await r.get("/api/v1/checks"))[1]
            details = [(await r.get(f"/api/v1/checks/{n}"))[1] for n in CHECKS]
            outputs["/api/v1/checks/NAME"] = "\n".join(details)
            outputs["/metrics"] = (await r.get("/metrics"))[1]
            for path in ("/health/ready", "/health/live", "/health/startup"):
                outputs[f"{path} json"] = (await r.get(path + "?verbose"))[1]
                plain = await r.get(path + "?verbose", headers={"Accept": "text/plain"})
                outputs[f"{path} text"] = plain[1]
            write(
                checks / "later.yaml",
                """
                checks:
                  - name: reload-method
                    type: http
                    url: http://127.0.0.1:1/x
                    method: "${file:reload.secret}"
                """,
            )
            outputs["reload answer"] = (await r.post("/-/reload"))[1]
            (checks / "later.yaml").unlink()
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_probed", False)]:
            root.removeHandler(handler)
        set_redactor(Redactor(()))
    outputs[f"logs {log_format}"] = stream.getvalue()
    return {f"{k} ({log_format} logs)" if not k.startswith("logs") else k: v
            for k, v in outputs.items()}  # fmt: skip


async def _collect(root: Path) -> dict[str, str]:
    async with echo_server(_echo_app()) as port:
        checks = checks_dir(root, port)
        outputs: dict[str, str] = {}
        saved = {k: os.environ.get(k) for k in ENV}
        os.environ.update(ENV)
        try:
            for log_format in ("json", "text"):
                outputs |= await _daemon_outputs(checks, log_format)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        once_text, once_json, once_junit, validate = await asyncio.gather(
            *(_cli("once", "--checks-dir", str(checks), "--format", f, cwd=root)
              for f in ("text", "json", "junit")),
            _cli("validate", "--checks-dir", str(checks), cwd=root),
        )  # fmt: skip
    outputs |= {"once text": once_text, "once json": once_json, "once junit": once_junit,
                "validate": validate}  # fmt: skip
    return outputs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return asyncio.run(_collect(tmp_path_factory.mktemp("secret-forms")))


HEALTH = [f"/health/{p} {t}" for p in ("ready", "live", "startup") for t in ("json", "text")]
OUTPUTS = [
    *(f"{o} ({fmt} logs)" for fmt in ("json", "text")
      for o in ("/api/v1/checks", "/api/v1/checks/NAME", "/metrics", "reload answer", *HEALTH)),
    "logs json", "logs text", "once text", "once json", "once junit", "validate",
]  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize("secret", sorted(SECRETS))
@pytest.mark.parametrize("output", OUTPUTS)
def test_no_form_of_a_secret_appears_in_any_output(
    outputs: dict[str, str], output: str, secret: str
) -> None:
    text = outputs[output]
    value = SECRETS[secret]
    assert text, output
    assert "Traceback" not in text, text
    folded = text.casefold()
    for form in every_form(value):
        assert form.casefold() not in folded, f"{output} shows {form!r} ({secret}):\n{text}"
    for line in value.splitlines():
        assert line.casefold() not in folded, f"{output} shows a line of {secret}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("output", [o for o in OUTPUTS if "/health/r" in o or "/health" not in o])
def test_the_mask_shows_where_secrets_were(outputs: dict[str, str], output: str) -> None:
    """The table above cannot pass by printing nothing: every output carries ``***``, and
    those showing check results the echoes of the target."""
    text = outputs[output]
    assert MASK in text, output
    if output.startswith(("once", "logs", "/api/v1/checks", "/health/ready")):
        assert "seen <" in text.replace("&lt;", "<"), output


@pytest.mark.timeout(120)
def test_every_echo_check_failed_with_its_echo_masked(outputs: dict[str, str]) -> None:
    """Each check's message reached the API with the echoed credential replaced by ``***``."""
    api = json.loads(outputs["/api/v1/checks (json logs)"])
    messages = {c["name"]: c["last_result"]["message"] for c in api["checks"] if c["last_result"]}
    for name in CHECKS:
        assert "seen <" in messages[name] and MASK in messages[name], (name, messages[name])
    errors = "\n".join(api["config_errors"])
    for check in ("secret-method", "secret-query-type", "url-interval"):
        assert check in errors or "broken.yaml" in errors, errors
