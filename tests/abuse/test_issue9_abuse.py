"""Issue 9 review: the new check types against hostile targets, and their secrets everywhere.

- Every network type (grpc, tls, tls+STARTTLS, ssh banner and ssh through asyncssh, smtp,
  websocket, mysql) against loopback targets that send nothing, send endlessly, send endless
  lines (also of the protocol's own continuation kind), close mid-way, answer garbage, or send
  one 10 MiB line: each run fails on its own within its timeout with a specific reason (never
  ``exception``), a message that names no private detail, bounded memory (tracemalloc peak)
  and an event loop that keeps ticking; a daemon running all of them keeps serving.
- Every secret option of the new types (exec ``secret_env`` and secret-named ``env``, mysql
  ``dsn``/``password``, ssh ``password``/``key``/``passphrase``, smtp ``password``, grpc
  ``secret_metadata``, websocket ``secret_headers``, the heartbeat ``token``) in none of its
  forms in a DEBUG daemon's logs, ``/metrics``, the API, ``probed once`` (text, json, junit,
  nagios) or ``probed validate`` errors, while targets echo them back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import random
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from probed import Check, Result, Status
from probed.checks.grpc import GrpcCheck
from probed.checks.mysql import MysqlCheck
from probed.checks.smtp import SmtpCheck
from probed.checks.ssh import SshCheck
from probed.checks.tls import TlsCheck
from probed.checks.websocket import WebSocketCheck
from probed.logs import configure_logging, set_redactor
from probed.redact import MASK, Redactor
from probed.testing import run_check
from tests.abuse.test_secret_forms import _cli, every_form
from tests.harness import running_daemon, wait_for, write
from tests.servers.smtp import echo_auth
from tests.test_secrets_everywhere import echo_server

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TIMEOUT = 0.8
MiB = 1 << 20
_GARBAGE = bytes(random.Random(9).randrange(256) for _ in range(300))

# -- hostile targets ------------------------------------------------------------------------


def _flood(head: bytes, unit: bytes) -> Handler:
    """``head`` once, then ``unit`` forever (as fast as the client reads)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(head)
        blob = unit * max(1, 65536 // len(unit))
        while True:
            writer.write(blob)
            await writer.drain()

    return handler


def _once(data: bytes, *, then_close: bool) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if not then_close:
            await reader.read()

    return handler


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


@contextlib.asynccontextmanager
async def hostile(handler: Handler) -> AsyncIterator[int]:
    """A loopback server running ``handler`` per connection, whatever the client does."""
    tasks: set[asyncio.Task[None]] = set()

    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(quiet, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# type -> (check type, options for a port, first bytes of a proper answer, a continuation line
# of the protocol (endless "more to come"), the beginning of an answer it is cut after)
TYPES: dict[str, tuple[type[Check[Any]], Callable[[int], dict[str, Any]], bytes, bytes, bytes]] = {
    "grpc": (GrpcCheck, lambda p: {"address": f"127.0.0.1:{p}"},
             b"", b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", b"\x00\x00\x12\x04\x00\x00\x00\x00\x00"),
    "tls": (TlsCheck, lambda p: {"address": f"127.0.0.1:{p}"},
            b"\x16\x03\x03\x40\x00", b"\x0b" * 64, b"\x16\x03\x01\x00\x10abc"),
    "tls-starttls": (TlsCheck, lambda p: {"address": f"127.0.0.1:{p}", "starttls": "smtp"},
                     b"", b"220-more\r\n", b"220-hi\r\n"),
    "ssh": (SshCheck, lambda p: {"address": f"127.0.0.1:{p}"},
            b"", b"not yet the identification line\r\n", b"SSH-2.0-"),
    "ssh-asyncssh": (SshCheck, lambda p: {"address": f"127.0.0.1:{p}",
                                          "host_key_fingerprint": "SHA256:" + "A" * 43},
                     b"SSH-2.0-OpenSSH_9.2\r\n", b"\x00\x00\x00\x10", b"SSH-2.0-OpenSSH_9.2\r\n"),
    "smtp": (SmtpCheck, lambda p: {"address": f"127.0.0.1:{p}", "starttls": False},
             b"", b"220-more\r\n", b"220-hi\r\n"),
    "websocket": (WebSocketCheck, lambda p: {"url": f"ws://127.0.0.1:{p}/"},
                  b"HTTP/1.1 101 Switching Protocols\r\n", b"X-More: yes\r\n", b"HTTP/1.1 101 Sw"),
    "mysql": (MysqlCheck, lambda p: {"host": "127.0.0.1", "port": p, "user": "probe"},
              b"", b"\xff\xff\xff\x00", b"\x4a\x00\x00\x00\x0a5.5"),
}  # fmt: skip


def behaviours(kind: str) -> dict[str, Handler]:
    _, _, head, unit, cut = TYPES[kind]
    return {
        "silent": _silent,
        "endless-bytes": _flood(b"", _GARBAGE),
        "endless-lines": _flood(b"", b"x" * 60 + b"\r\n"),
        "endless-protocol": _flood(head, unit),
        "closes-mid-way": _once(cut, then_close=True),
        "garbage": _once(_GARBAGE + b"\r\n", then_close=False),
        "huge-line": _flood(b"", b"A" * 65536),  # one line without end
    }


BEHAVIOURS = list(behaviours("grpc"))
# Per type: the reason expected for a behaviour ("*" for the ones not named).
EXPECTED: dict[str, dict[str, str]] = {
    "grpc": {"silent": "timeout", "closes-mid-way": "connection_reset", "garbage": "protocol",
             "*": "body_size"},
    "tls": {"silent": "timeout", "*": "tls"},
    "tls-starttls": {"silent": "timeout", "*": "protocol"},
    "ssh": {"silent": "timeout", "*": "protocol"},
    "ssh-asyncssh": {"silent": "timeout", "closes-mid-way": "connection_reset", "*": "protocol"},
    "smtp": {"silent": "timeout", "*": "protocol"},
    "websocket": {"silent": "timeout", "*": "protocol"},
    "mysql": {"silent": "timeout", "closes-mid-way": "connection_reset", "*": "protocol"},
}  # fmt: skip
_WARM: set[str] = set()


async def _warm(kind: str) -> None:
    """One run against a closed port first: imports and setup are not the run's memory."""
    if kind not in _WARM:
        cls, options, *_ = TYPES[kind]
        async with hostile(_once(b"", then_close=True)) as port:
            await run_check(cls, timeout=TIMEOUT, **options(port))
        _WARM.add(kind)


async def _ticking(gaps: list[float]) -> None:
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.005)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


async def measured(kind: str, handler: Handler) -> tuple[Result, float, int, float]:
    """The result, wall seconds, tracemalloc peak and the longest loop stall of one run."""
    await _warm(kind)
    cls, options, *_ = TYPES[kind]
    gaps: list[float] = [0.0]
    async with hostile(handler) as port:
        ticker = asyncio.create_task(_ticking(gaps))
        tracemalloc.start()
        try:
            start = time.monotonic()
            result = await run_check(cls, timeout=TIMEOUT, **options(port))
            took = time.monotonic() - start
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            ticker.cancel()
    return result, took, peak, max(gaps)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("kind", list(TYPES))
async def test_a_hostile_target_fails_the_run_in_time_with_a_reason_and_bounded_memory(
    kind: str, behaviour: str
) -> None:
    result, took, peak, stall = await measured(kind, behaviours(kind)[behaviour])
    expected = EXPECTED[kind].get(behaviour, EXPECTED[kind]["*"])
    assert (result.status, result.reason) == (Status.FAIL, expected), result
    assert took < TIMEOUT + 0.4, (took, result)
    # A reader that kept what an endless sender sends would hold hundreds of MiB by now.
    assert peak < 4 * MiB, (peak, result)
    assert stall < 0.25, (stall, result)
    for private in ("Traceback", "check raised", "unix-abstract", "probed-grpc-"):
        assert private not in result.message, result.message
    assert len(result.message) > 30, result.message


@pytest.mark.timeout(60)
async def test_a_daemon_checking_hostile_targets_keeps_serving(tmp_path: Path) -> None:
    """One check of every type per flooding/garbage target: /metrics answers quickly while
    they run, every check ran and failed."""
    handlers = {"flood": _flood(b"", _GARBAGE), "garbage": _once(_GARBAGE, then_close=False)}
    async with contextlib.AsyncExitStack() as stack:
        ports = {b: await stack.enter_async_context(hostile(h)) for b, h in handlers.items()}
        text = "defaults: {interval: 1s, timeout: 800ms, failure_threshold: 1}\nchecks:\n"
        names = []
        for kind, (cls, options, *_) in TYPES.items():
            for behaviour, port in ports.items():
                names.append(f"{kind}-{behaviour}")
                opts = json.dumps({"name": names[-1], "type": cls.type_name, **options(port)})
                text += f"  - {opts}\n"
        write(tmp_path / "checks.d" / "hostile.yaml", text)
        async with running_daemon(tmp_path / "checks.d") as r:
            await wait_for(
                lambda: all(n in r.daemon.store and sum(r.state(n).runs) >= 2 for n in names),
                20,
                "every hostile check ran twice",
            )
            for _ in range(5):
                start = time.monotonic()
                status, body, _ = await r.get("/metrics")
                assert status == 200 and time.monotonic() - start < 0.5
            assert all(f'check="{n}"' in body for n in names)
            api = json.loads((await r.get("/api/v1/checks"))[1])
            results = {c["name"]: c["last_result"] for c in api["checks"]}
            for name in names:
                assert results[name]["status"] == "fail", (name, results[name])
                assert results[name]["reason"] not in ("exception", "other"), results[name]


# -- secrets of the new types in every output ------------------------------------------------

EXEC_SECRET = 'eX/"ec+Sec\\ret 41'  # secret_env, from ${file:}
EXEC_ENV = "envT0ken-Zq/88"  # env: {API_TOKEN: ...}, a secret-looking name
DSN_PW = "dsn/Pa@ss-71"
MYSQL_PW = "my5ql-Pw&x=3"
SSH_PW = "sshPw-Tt/19:x"
SSH_PASSPHRASE = "sshPhrase-Qq 27"
SSH_KEY_LINE = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
SMTP_PW = "smtpPw-Ww%21x"
GRPC_TOKEN = "grpcTok-Ee/55"
WS_TOKEN = "wsTok-Rr+66"
HB_TOKEN = "hbTok-0123456789-abc/Z"
SECRETS = {
    "exec secret_env": EXEC_SECRET, "exec env": EXEC_ENV, "mysql dsn": DSN_PW,
    "mysql password": MYSQL_PW, "ssh password": SSH_PW, "ssh passphrase": SSH_PASSPHRASE,
    "ssh key": SSH_KEY_LINE, "smtp password": SMTP_PW, "grpc secret_metadata": GRPC_TOKEN,
    "websocket secret_headers": WS_TOKEN, "heartbeat token": HB_TOKEN,
}  # fmt: skip

# The command prints the secrets it was given in several forms, also as perfdata labels.
_PRINT_FORMS = (
    "import os,base64,urllib.parse as u\n"
    "s=os.environ['PLUGIN_SECRET'];t=os.environ['API_TOKEN']\n"
    "f=[s,t,base64.b64encode(s.encode()).decode(),u.quote(s,safe=''),repr(s),s.upper()]\n"
    "print('CRITICAL - '+' '.join(f)+\" | '\"+s+\"'=1 '\"+t+\"'=2s\")\n"
    "print('long text '+s)\n"
    "raise SystemExit(2)"
)


def _ws_echo_app() -> web.Application:
    async def refuse(request: web.Request) -> web.Response:
        seen = request.headers.get("Authorization", "")
        return web.Response(status=403, text=f"denied <{seen}> {base64.b64encode(seen.encode())}")

    app = web.Application()
    app.router.add_get("/ws", refuse)
    return app


def secret_checks(root: Path, ws_port: int, smtp_port: int, closed: int) -> Path:
    checks = root / "checks.d"
    write(checks / "exec.secret", EXEC_SECRET)
    write(checks / "ssh.key", f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SSH_KEY_LINE}\n"
          "-----END OPENSSH PRIVATE KEY-----\n")  # fmt: skip
    write(checks / "hb.token", HB_TOKEN)
    write(checks / "ws.secret", f"Bearer {WS_TOKEN}")
    checks_text = {
        "defaults": {"interval": "5s", "timeout": "3s", "failure_threshold": 1},
        "checks": [
            {"name": "exec-forms", "type": "exec",
             "command": [sys.executable, "-c", _PRINT_FORMS],
             "secret_env": {"PLUGIN_SECRET": "${file:exec.secret}"},
             "env": {"API_TOKEN": EXEC_ENV}},
            {"name": "mysql-dsn", "type": "mysql",
             "dsn": f"mysql://app:{quote(DSN_PW, safe='')}@127.0.0.1:{closed}/db"},
            {"name": "mysql-password", "type": "mysql", "host": "127.0.0.1", "port": closed,
             "user": "app", "password": MYSQL_PW},
            {"name": "ssh-password", "type": "ssh", "address": f"127.0.0.1:{closed}",
             "username": "root", "password": SSH_PW},
            {"name": "ssh-key", "type": "ssh", "address": f"127.0.0.1:{closed}",
             "username": "root", "key": "${file:ssh.key}", "passphrase": SSH_PASSPHRASE},
            {"name": "smtp-echo", "type": "smtp", "address": f"127.0.0.1:{smtp_port}",
             "starttls": False, "allow_plaintext_auth": True, "username": "bob",
             "password": SMTP_PW},
            {"name": "grpc-metadata", "type": "grpc", "address": f"127.0.0.1:{closed}",
             "secret_metadata": {"authorization": f"Bearer {GRPC_TOKEN}"}},
            {"name": "ws-echo", "type": "websocket", "url": f"ws://127.0.0.1:{ws_port}/ws",
             "secret_headers": {"Authorization": "${file:ws.secret}"}},
            {"name": "heartbeat", "type": "heartbeat", "token": "${file:hb.token}", "period": "1h",
             "interval": "1s", "timeout": "500ms"},
        ],
    }  # fmt: skip
    write(checks / "new-types.yaml", json.dumps(checks_text, indent=1))
    broken = {  # invalid options holding secrets: validate and config errors quote none
        "checks": [
            {"name": "bad-dsn", "type": "mysql", "dsn": f"postgres://app:{DSN_PW}@h/db"},
            {"name": "bad-dsn-params", "type": "mysql",
             "dsn": f"mysql://app@h/db?password={MYSQL_PW}"},
            {"name": "bad-ssh", "type": "ssh", "address": "127.0.0.1:22", "password": SSH_PW},
            {"name": "bad-smtp", "type": "smtp", "address": "127.0.0.1:25", "starttls": False,
             "username": "bob", "password": SMTP_PW},
            {"name": "bad-grpc", "type": "grpc", "address": "127.0.0.1:1",
             "metadata": {"authorization": f"Bearer {GRPC_TOKEN}"}},
            {"name": "bad-ws", "type": "websocket", "url": "ws://127.0.0.1:1/",
             "headers": {"Authorization": f"Bearer {WS_TOKEN}"}},
            {"name": "bad-ws-url", "type": "websocket", "url": f"ws://u:{WS_TOKEN}@127.0.0.1:1/"},
            {"name": "bad-exec", "type": "exec", "command": ["/bin/true"],
             "env": {"PLUGIN_SECRET": EXEC_SECRET}, "secret_env": {"PLUGIN_SECRET": EXEC_SECRET}},
            {"name": "bad-heartbeat", "type": "heartbeat", "token": HB_TOKEN, "period": "1h",
             "timezone": "Europe/Berlin"},
        ],
    }  # fmt: skip
    write(checks / "broken.yaml", json.dumps(broken, indent=1))
    return checks


async def _pings(url: str) -> list[int]:
    """Pings with the token in every place it can go, right and wrong, and malformed."""
    base = f"{url}/ping/heartbeat"
    bearer = {"Authorization": f"Bearer {HB_TOKEN}"}
    statuses = []
    async with aiohttp.ClientSession() as session:
        for method, url, headers, body in (
            ("POST", f"{base}/start?token={quote(HB_TOKEN)}", {}, b""),
            ("POST", base, bearer, f"done; token was {HB_TOKEN} ({quote(HB_TOKEN)})".encode()),
            ("GET", f"{base}?token={quote(HB_TOKEN)}x", {}, b""),  # wrong: one more character
            ("GET", f"{base}/999?token={quote(HB_TOKEN)}", {}, b""),
            ("GET", f"{base}?token={quote(HB_TOKEN)}&pad={'p' * 9000}", {}, b""),  # too long
            ("GET", base, {"Authorization": f"Bearer {HB_TOKEN}{'q' * 9000}"}, b""),
        ):
            async with session.request(method, url, headers=headers, data=body) as response:
                statuses.append(response.status)
    return statuses


async def _collect(root: Path) -> dict[str, str]:
    outputs: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:
        ws_port = await stack.enter_async_context(echo_server(_ws_echo_app()))
        smtp_port = await stack.enter_async_context(hostile(echo_auth))
        closed = await stack.enter_async_context(hostile(_once(b"", then_close=True)))
        checks = secret_checks(root, ws_port, smtp_port, closed)
        names = ["exec-forms", "smtp-echo", "ws-echo", "heartbeat", "ssh-key", "mysql-dsn"]
        logs = io.StringIO()
        configure_logging("json", "DEBUG", logs)  # every record, asyncio's and aiohttp's too
        try:
            async with running_daemon(checks, log_level="DEBUG") as r:
                await wait_for(
                    lambda: all(n in r.daemon.store and sum(r.state(n).runs) for n in names),
                    20,
                    "every check ran",
                )
                statuses = await _pings(r.url)
                assert statuses[:4] == [200, 200, 404, 400], statuses
                await r.runs("heartbeat", sum(r.state("heartbeat").runs) + 1)  # sees the pings
                outputs["/metrics"] = (await r.get("/metrics"))[1]
                outputs["/api/v1/checks"] = (await r.get("/api/v1/checks"))[1]
                details = [(await r.get(f"/api/v1/checks/{n}"))[1] for n in names]
                outputs["/api/v1/checks/NAME"] = "\n".join(details)
                outputs["/health/ready"] = (await r.get("/health/ready?verbose"))[1]
                outputs["/"] = (await r.get("/"))[1]
        finally:
            top = logging.getLogger()
            for handler in [h for h in top.handlers if getattr(h, "_probed", False)]:
                top.removeHandler(handler)
            set_redactor(Redactor(()))
        outputs["logs (DEBUG)"] = logs.getvalue()
        runs = await asyncio.gather(
            *(_cli("once", "--checks-dir", str(checks), "--format", f, "--log-level", "debug",
                   cwd=root) for f in ("text", "json", "junit", "nagios")),
            _cli("validate", "--checks-dir", str(checks), cwd=root),
        )  # fmt: skip
    for name, text in zip(
        ("once text", "once json", "once junit", "once nagios", "validate"), runs, strict=True
    ):
        outputs[name] = text
    return outputs


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return asyncio.run(_collect(tmp_path_factory.mktemp("issue9-secrets")))


OUTPUTS = ["/metrics", "/api/v1/checks", "/api/v1/checks/NAME", "/health/ready", "/",
           "logs (DEBUG)", "once text", "once json", "once junit", "once nagios",
           "validate"]  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize("secret", sorted(SECRETS))
@pytest.mark.parametrize("output", OUTPUTS)
def test_no_form_of_a_new_type_s_secret_appears_in_any_output(
    outputs: dict[str, str], output: str, secret: str
) -> None:
    text = outputs[output]
    assert text and "Traceback" not in text, (output, text[-2000:])
    folded = text.casefold()
    for form in every_form(SECRETS[secret]):
        assert form.casefold() not in folded, f"{output} shows {form!r} ({secret})"


@pytest.mark.timeout(120)
def test_the_echoes_arrived_masked(outputs: dict[str, str]) -> None:
    """The table above cannot pass by echoing nothing: the targets' answers are in the results
    with ``***`` where the secrets were, and validate reported every broken check."""
    api = json.loads(outputs["/api/v1/checks"])
    messages = {c["name"]: c["last_result"]["message"] for c in api["checks"] if c["last_result"]}
    assert messages["exec-forms"].startswith("CRITICAL - ***"), messages["exec-forms"]
    assert "535" in messages["smtp-echo"] and MASK in messages["smtp-echo"], messages
    assert "403" in messages["ws-echo"], messages
    assert "body: done; token was ***" in messages["heartbeat"], messages["heartbeat"]
    assert "9 error(s)" in outputs["validate"], outputs["validate"]
    assert "carries credentials" in outputs["validate"], outputs["validate"]


# -- heartbeat pings under abuse --------------------------------------------------------------

HB_NAMES = [f"job-{i}" for i in range(50)]


def _hb_token(i: int) -> str:
    return f"job-token-{i:04d}-abcdefgh"


@pytest.mark.timeout(60)
async def test_ping_abuse_is_bounded_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    """A huge streamed body, floods of wrong tokens, traversal-like and very long names: every
    answer is the bounded one, what is kept is capped, no token reaches the logs, and
    /metrics answers meanwhile."""
    from probed.heartbeats import HEARTBEATS

    checks = [
        {"name": n, "type": "heartbeat", "token": _hb_token(i), "period": "1h",
         "max_body_size": "1KiB", "readiness": False}
        for i, n in enumerate(HB_NAMES)
    ]  # fmt: skip
    write(tmp_path / "checks.d" / "hb.yaml", json.dumps({"checks": checks}))
    logs = io.StringIO()
    configure_logging("json", "DEBUG", logs)
    try:
        async with running_daemon(tmp_path / "checks.d") as r:
            await wait_for(lambda: all(n in r.daemon.store for n in HB_NAMES), 10, "checks")
            ping = f"{r.url}/ping"
            bearer = {"Authorization": f"Bearer {_hb_token(1)}"}

            async def endless_body() -> AsyncIterator[bytes]:
                for _ in range(320):  # 20 MiB
                    yield b"z" * 65536

            async with r.session.post(f"{ping}/job-1", data=endless_body(), headers=bearer) as resp:
                assert resp.status == 200
            beat = HEARTBEATS.get("job-1")
            assert beat is not None and beat.truncated and len(beat.body) <= 1024

            async def status(url: str, **kw: Any) -> int:
                async with r.session.get(url, **kw) as resp:
                    await resp.read()
                    return resp.status

            start = time.monotonic()
            wrong = await asyncio.gather(
                *(
                    status(f"{ping}/{HB_NAMES[i % 50]}?token=wrong-{i}-0123456789")
                    for i in range(1000)
                )
            )
            assert set(wrong) == {404} and time.monotonic() - start < 20
            token = f"?token={quote(_hb_token(1))}"
            for path, expected in (
                (f"/..%2Fmetrics{token}", 404),
                (f"/job-1%2F..%2F..%2Fmetrics{token}", 404),
                (f"/job-1%00{token}", 404),
                (f"/{'n' * 7000}{token}", 404),
                (f"/{'n' * 9000}{token}", 400),  # over aiohttp's request line limit
                (f"/job-1/start/x{token}", 404),
                (f"/job-1/0256{token}", 400),
            ):
                assert await status(ping + path) == expected, path
            assert beat.last_start is None  # none of those was a ping of job-1
            for _ in range(3):
                start = time.monotonic()
                assert (await r.get("/metrics"))[0] == 200
                assert time.monotonic() - start < 0.5
    finally:
        top = logging.getLogger()
        for handler in [h for h in top.handlers if getattr(h, "_probed", False)]:
            top.removeHandler(handler)
        set_redactor(Redactor(()))
    text = logs.getvalue()
    assert "Got more than 8190 bytes" in text  # the over-long request was logged...
    assert _hb_token(1) not in text and quote(_hb_token(1)) not in text  # ...without its token
