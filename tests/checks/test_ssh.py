"""The ``ssh`` check type against a real throwaway OpenSSH server (tests/servers/sshd.py).

Every fault gives its own reason and a message a person can act on, within the timeout; the
password, the key and its passphrase never appear in any output.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from probed.check import Result, Status
from probed.checks import ssh as ssh_module
from probed.checks.ssh import SshCheck, SshOptions
from probed.cli import cli
from probed.logs import configure_logging, set_redactor
from probed.redact import MASK, Redactor
from probed.testing import run_check
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.harness import running_daemon, wait_for
from tests.servers._stub import stub_server
from tests.servers._util import free_port
from tests.servers.sshd import KEY_PASSPHRASE, SSH_USER_PASSWORD, SshdServer

pytestmark = pytest.mark.services

ROOT = Path(__file__).parents[2]
WRONG_PASSWORD = "Wr0ng-ssh-Passw0rd"
WRONG_PASSPHRASE = "not-the-Passphrase-9"
OTHER_FINGERPRINT = "SHA256:" + "A" * 43


def key_lines(server: SshdServer) -> list[str]:
    """The private key files' base64 lines (long enough to be unmistakable)."""
    lines = []
    for path in (server.client_key, server.encrypted_key, server.wrong_key):
        lines += [line for line in path.read_text().splitlines() if len(line) > 40]
    return lines


def assert_no_secret(text: str, server: SshdServer) -> None:
    for secret in (SSH_USER_PASSWORD, WRONG_PASSWORD, KEY_PASSPHRASE, WRONG_PASSPHRASE):
        assert secret not in text
    for line in key_lines(server):
        assert line not in text


def check_result(result: Result, server: SshdServer) -> None:
    assert_no_secret(repr(result), server)


async def as_root(server: SshdServer, **options: Any) -> Result:
    """Run a check logging in as root with the fixture's plain key (unless options say else)."""
    login: dict[str, Any] = {"key_file": str(server.client_key)}
    if "key" in options or "key_file" in options:
        login = {}
    return await run_check(
        SshCheck, address=server.address, username="root", **{**login, **options}
    )


# --- the banner ----------------------------------------------------------------------------


async def test_banner_only_check_passes_with_connect_and_banner_phases(
    sshd_server: SshdServer,
) -> None:
    result = await run_check(SshCheck, address=sshd_server.address)
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "banner"}
    assert "SSH-2.0-OpenSSH_" in result.message


async def test_banner_regex_mismatch_fails_with_assertion_showing_the_banner(
    sshd_server: SshdServer,
) -> None:
    matching = await run_check(
        SshCheck, address=sshd_server.address, expect_banner=r"^SSH-2\.0-OpenSSH_\d"
    )
    assert matching.status is Status.OK, matching.message
    result = await run_check(SshCheck, address=sshd_server.address, expect_banner="Dropbear")
    assert (result.status, result.reason) == (Status.FAIL, "assertion")
    assert "SSH-2.0-OpenSSH_" in result.message and "/Dropbear/" in result.message


def test_banner_only_check_runs_without_asyncssh(sshd_server: SshdServer) -> None:
    code = (
        "import sys, asyncio; sys.modules['asyncssh'] = None\n"
        "from probed.checks.ssh import SshCheck\n"
        "from probed.testing import run_check\n"
        f"r = asyncio.run(run_check(SshCheck, address={sshd_server.address!r}))\n"
        "print(r.status.label, r.message)\n"
        "assert 'asyncssh' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok "), done.stdout


# --- the host key --------------------------------------------------------------------------


async def test_pinned_fingerprint_from_ssh_keygen_passes_and_takes_a_whole_keygen_line(
    sshd_server: SshdServer,
) -> None:
    line = subprocess.run(
        ["ssh-keygen", "-lf", str(sshd_server.host_key.with_suffix(".pub"))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for pin in (sshd_server.host_key_fingerprint, line, [OTHER_FINGERPRINT, line]):
        result = await run_check(SshCheck, address=sshd_server.address, host_key_fingerprint=pin)
        assert result.status is Status.OK, result.message
        assert set(result.phases) == {"connect", "banner", "kex"}
        assert sshd_server.host_key_fingerprint in result.message


async def test_a_server_with_rsa_and_ed25519_keys_presents_the_ed25519_one_as_ssh_does(
    sshd_server: SshdServer,
) -> None:
    """OpenSSH's order, not asyncssh's (which asks for RSA first): the key ``ssh`` records."""
    for login in ({}, {"username": "root", "key_file": str(sshd_server.client_key)}):
        ed25519 = await run_check(
            SshCheck,
            address=sshd_server.address,
            host_key_fingerprint=sshd_server.host_key_fingerprint,
            **login,
        )
        assert ed25519.status is Status.OK, ed25519.message
        rsa_only = await run_check(
            SshCheck,
            address=sshd_server.address,
            host_key_fingerprint=sshd_server.rsa_host_key_fingerprint,
            **login,
        )
        assert rsa_only.reason == "host_key"
        assert f"ssh-ed25519 {sshd_server.host_key_fingerprint}" in rsa_only.message


async def test_wrong_fingerprint_fails_with_host_key_naming_both_fingerprints(
    sshd_server: SshdServer,
) -> None:
    result = await run_check(
        SshCheck, address=sshd_server.address, host_key_fingerprint=OTHER_FINGERPRINT
    )
    assert (result.status, result.reason) == (Status.FAIL, "host_key")
    assert sshd_server.host_key_fingerprint in result.message
    assert OTHER_FINGERPRINT in result.message
    assert "ssh-ed25519" in result.message


async def test_host_key_mismatch_stops_before_any_credential_is_sent(
    sshd_password_user: str, sshd_server: SshdServer
) -> None:
    before = sshd_server.log()
    result = await run_check(
        SshCheck,
        address=sshd_server.address,
        host_key_fingerprint=OTHER_FINGERPRINT,
        username=sshd_password_user,
        password=SSH_USER_PASSWORD,
    )
    assert (result.status, result.reason) == (Status.FAIL, "host_key")
    assert "nothing was sent" in result.message
    assert "auth" not in result.phases
    check_result(result, sshd_server)
    # sshd saw no login attempt at all from this run.
    new = sshd_server.log()[len(before) :]
    assert "password" not in new and "Accepted" not in new, new


# --- login and command ----------------------------------------------------------------------


async def test_key_login_with_true_passes_and_false_fails_with_exit_code(
    sshd_server: SshdServer,
) -> None:
    common: dict[str, Any] = {
        "address": sshd_server.address,
        "username": "root",
        "key_file": str(sshd_server.client_key),
        "host_key_fingerprint": sshd_server.host_key_fingerprint,
    }
    ok = await run_check(SshCheck, command="true", **common)
    assert ok.status is Status.OK, ok.message
    assert set(ok.phases) == {"connect", "banner", "kex", "auth", "command"}
    assert ok.values["probed_ssh_command_exit_code"] == 0.0
    assert "logged in as root" in ok.message and "exited 0" in ok.message

    bad = await run_check(SshCheck, command="false", **common)
    assert (bad.status, bad.reason) == (Status.FAIL, "exit_code")
    assert bad.values["probed_ssh_command_exit_code"] == 1.0
    assert "exited 1; expected exit code 0" in bad.message


async def test_expected_exit_code_and_first_line_of_output_in_the_message(
    sshd_server: SshdServer,
) -> None:
    result = await as_root(
        sshd_server,
        command="printf 'replica lag 3s\\nsecond line\\n'; exit 3",
        expect_exit_code=3,
    )
    assert result.status is Status.OK, result.message
    assert result.message.endswith("exited 3: replica lag 3s")
    assert result.values["probed_ssh_command_exit_code"] == 3.0


async def test_command_output_is_bounded_and_the_message_short(sshd_server: SshdServer) -> None:
    result = await as_root(
        sshd_server,
        timeout=10,
        command="head -c 3000000 /dev/zero | tr '\\0' x",
        max_output_size="4KiB",
    )
    assert result.status is Status.OK, result.message
    assert "output truncated to 4.0 KiB" in result.message
    assert len(result.message) < 600


async def test_command_slower_than_the_timeout_fails_naming_the_phase(
    sshd_server: SshdServer,
) -> None:
    started = time.monotonic()
    result = await as_root(
        sshd_server,
        timeout=2,
        command="sleep 30",
    )
    assert time.monotonic() - started < 3.0  # the timeout, plus room for a loaded machine
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert "command 'sleep 30' was still running after 1.8s" in result.message


async def test_encrypted_key_text_with_its_passphrase_logs_in(sshd_server: SshdServer) -> None:
    result = await as_root(
        sshd_server,
        key=sshd_server.encrypted_key.read_text(),
        passphrase=KEY_PASSPHRASE,
        command="id -un",
    )
    assert result.status is Status.OK, result.message
    assert result.message.endswith("exited 0: root")
    check_result(result, sshd_server)


async def test_wrong_passphrase_fails_with_auth_before_connecting_further(
    sshd_server: SshdServer,
) -> None:
    result = await as_root(
        sshd_server,
        key=sshd_server.encrypted_key.read_text(),
        passphrase=WRONG_PASSPHRASE,
    )
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert "passphrase" in result.message and "no login was tried" in result.message
    check_result(result, sshd_server)


async def test_key_not_in_authorized_keys_fails_with_auth(sshd_server: SshdServer) -> None:
    result = await as_root(
        sshd_server,
        key_file=str(sshd_server.wrong_key),
        command="true",
    )
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert "login as root with the key was refused" in result.message
    assert "authorized_keys" in result.message
    assert "command" not in result.phases
    check_result(result, sshd_server)


async def test_password_login_passes_and_a_wrong_password_fails_with_auth(
    sshd_password_user: str, sshd_server: SshdServer, caplog: pytest.LogCaptureFixture
) -> None:
    common: dict[str, Any] = {"address": sshd_server.address, "username": sshd_password_user}
    with caplog.at_level(logging.WARNING, logger="probed.checks.ssh"):
        ok = await run_check(SshCheck, password=SSH_USER_PASSWORD, command="id -un", **common)
    assert ok.status is Status.OK, ok.message
    assert ok.message.endswith(f"exited 0: {sshd_password_user}")
    # Without a pinned host key the password goes to whoever answers: said once, in the log.
    assert "no host_key_fingerprint" in caplog.text
    pinned = await run_check(
        SshCheck,
        password=SSH_USER_PASSWORD,
        host_key_fingerprint=sshd_server.host_key_fingerprint,
        **common,
    )
    assert pinned.status is Status.OK, pinned.message

    bad = await run_check(SshCheck, password=WRONG_PASSWORD, **common)
    assert (bad.status, bad.reason) == (Status.FAIL, "auth")
    assert "with the password was refused" in bad.message
    for result in (ok, pinned, bad):
        check_result(result, sshd_server)
    assert_no_secret(caplog.text, sshd_server)


# --- server down, not SSH -----------------------------------------------------------------


async def test_nothing_listening_fails_with_connection_refused() -> None:
    result = await run_check(SshCheck, address=f"127.0.0.1:{free_port()}")
    assert (result.status, result.reason) == (Status.FAIL, "connection_refused")
    assert "nothing listens there" in result.message


async def test_stopped_server_fails_and_the_same_check_recovers(
    sshd_factory: Callable[[], SshdServer],
) -> None:
    server = sshd_factory()
    spec_options = {"address": server.address, "host_key_fingerprint": server.host_key_fingerprint}
    assert (await run_check(SshCheck, **spec_options)).status is Status.OK
    server.stop()
    down = await run_check(SshCheck, **spec_options)
    assert down.reason == "connection_refused"
    server.start()
    assert (await run_check(SshCheck, **spec_options)).status is Status.OK


async def against_stub(
    sends: bytes, *, hang_up: bool = False, timeout: float = 5.0, **options: Any
) -> Result:
    """Run a check against a loopback server that sends ``sends``, then waits for the client
    to leave (or hangs up at once)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(sends)
        await writer.drain()
        if not hang_up:
            await reader.read()

    async with stub_server(handler) as port:
        return await run_check(SshCheck, timeout=timeout, address=f"127.0.0.1:{port}", **options)


async def test_silent_server_times_out_within_the_timeout() -> None:
    started = time.monotonic()
    result = await against_stub(b"", timeout=1)
    assert time.monotonic() - started < 2.0  # the timeout, plus room for a loaded machine
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert "no SSH identification line" in result.message


async def test_http_server_reply_fails_with_protocol_quoting_it() -> None:
    result = await against_stub(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", hang_up=True
    )
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "not an SSH server" in result.message and "HTTP/1.1 400" in result.message


async def test_endless_garbage_is_read_only_up_to_the_bound() -> None:
    sent = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        chunk = b"\x00garbage" * 8192
        while sent < 50_000_000:
            writer.write(chunk)
            sent += len(chunk)
            await writer.drain()

    async with stub_server(flood) as port:
        result = await run_check(SshCheck, timeout=5, address=f"127.0.0.1:{port}")
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "no SSH identification line in the first 8.0 KiB" in result.message
    assert sent < 50_000_000  # stopped by the closed connection, not by the server giving up


async def test_ssh1_only_server_fails_with_protocol() -> None:
    result = await against_stub(b"SSH-1.5-OldServer\r\n")
    assert (result.status, result.reason) == (Status.FAIL, "protocol")
    assert "SSH protocol 1.5 only" in result.message


async def test_lines_before_the_identification_line_are_skipped() -> None:
    result = await against_stub(
        b"Welcome to the bastion\r\nSSH-2.0-Stub_1.0\r\n", expect_banner="Stub"
    )
    assert result.status is Status.OK, result.message
    assert "SSH-2.0-Stub_1.0" in result.message and "Welcome" not in result.message


async def test_server_silent_after_its_banner_times_out_in_the_key_exchange() -> None:
    started = time.monotonic()
    result = await against_stub(
        b"SSH-2.0-Stub_1.0\r\n", timeout=1, host_key_fingerprint=OTHER_FINGERPRINT
    )
    assert time.monotonic() - started < 2.0  # the timeout, plus room for a loaded machine
    assert (result.status, result.reason) == (Status.FAIL, "timeout")
    assert "no answer while in the SSH key exchange" in result.message
    assert "kex" in result.phases


async def test_garbage_after_the_banner_fails_with_protocol_in_the_key_exchange() -> None:
    result = await against_stub(
        b"SSH-2.0-Stub_1.0\r\n" + b"\xff" * 4096, host_key_fingerprint=OTHER_FINGERPRINT
    )
    assert (result.status, result.reason) == (Status.FAIL, "protocol"), result.message
    assert "in the SSH key exchange" in result.message


@pytest.mark.parametrize("login", [{}, {"username": "root", "password": WRONG_PASSWORD}])
async def test_server_closing_right_after_its_banner_fails_with_connection_reset(
    login: dict[str, str],
) -> None:
    result = await against_stub(
        b"SSH-2.0-Stub_1.0\r\n", hang_up=True, host_key_fingerprint=OTHER_FINGERPRINT, **login
    )
    assert (result.status, result.reason) == (Status.FAIL, "connection_reset")
    assert "closed the connection while in the SSH key exchange" in result.message


@pytest.mark.parametrize(
    ("key_file", "message"),
    [("/nonexistent/id_ed25519", "cannot read key_file"), ("/dev/zero", "larger than 1.0 MiB")],
)
async def test_unusable_key_file_fails_with_auth_and_no_login(
    sshd_server: SshdServer, key_file: str, message: str
) -> None:
    result = await run_check(
        SshCheck, address=sshd_server.address, username="root", key_file=key_file
    )
    assert (result.status, result.reason) == (Status.FAIL, "auth")
    assert message in result.message and "no login was tried" in result.message


# --- the event loop -------------------------------------------------------------------------


async def test_a_full_run_makes_no_blocking_call_on_the_loop_thread(
    sshd_server: SshdServer,
) -> None:
    with blocking_calls_on_loop_thread() as seen:
        result = await as_root(
            sshd_server,
            key_file=str(sshd_server.encrypted_key),
            passphrase=KEY_PASSPHRASE,
            host_key_fingerprint=sshd_server.host_key_fingerprint,
            command="true",
        )
    assert result.status is Status.OK, result.message
    assert seen == []


async def test_the_loop_keeps_ticking_while_the_encrypted_key_is_decrypted(
    sshd_server: SshdServer,
) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    try:
        started = time.monotonic()
        result = await as_root(
            sshd_server,
            key_file=str(sshd_server.encrypted_key),
            passphrase=KEY_PASSPHRASE,
        )
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        await task
    assert result.status is Status.OK, result.message
    # A loop blocked for the whole run would tick about once.
    assert ticks >= min(10, int(elapsed / 0.005) // 4), (ticks, elapsed)


# --- no secret in any output ------------------------------------------------------------------


async def test_no_secret_reaches_logs_metrics_or_the_api(
    tmp_path: Path, sshd_server: SshdServer, sshd_password_user: str
) -> None:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "pw").write_text(SSH_USER_PASSWORD + "\n")
    (checks / "key").write_text(sshd_server.encrypted_key.read_text())
    (checks / "pass").write_text(KEY_PASSPHRASE + "\n")
    (checks / "ssh.yaml").write_text(
        f"""checks:
  - name: ssh-password
    type: ssh
    interval: 5s
    timeout: 3s
    address: {sshd_server.address}
    username: {sshd_password_user}
    password: ${{file:{checks / "pw"}}}
    command: "false"
  - name: ssh-key
    type: ssh
    interval: 5s
    timeout: 3s
    address: {sshd_server.address}
    host_key_fingerprint: {sshd_server.host_key_fingerprint}
    username: root
    key: ${{file:{checks / "key"}}}
    passphrase: ${{file:{checks / "pass"}}}
    command: "true"
  - name: ssh-key-refused
    type: ssh
    interval: 5s
    timeout: 3s
    address: {sshd_server.address}
    username: no-such-user-h9c
    key: ${{file:{checks / "key"}}}
    passphrase: ${{file:{checks / "pass"}}}
"""
    )
    names = ("ssh-password", "ssh-key", "ssh-key-refused")
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    try:
        async with running_daemon(checks) as r:
            for name in names:
                await r.runs(name, 1)
            await wait_for(lambda: all(r.state(n).last is not None for n in names))
            outputs = {"/metrics": (await r.get("/metrics"))[1]}
            outputs["/api/v1/checks"] = (await r.get("/api/v1/checks"))[1]
            for name in names:
                outputs[name] = (await r.get(f"/api/v1/checks/{name}"))[1]
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_probed", False)]:
            root.removeHandler(handler)
        set_redactor(Redactor(()))
    outputs["logs"] = stream.getvalue()
    for where, text in outputs.items():
        assert_no_secret(text, sshd_server)
        assert SSH_USER_PASSWORD not in text, where
    api = {c["name"]: c for c in json.loads(outputs["/api/v1/checks"])["checks"]}
    assert api["ssh-key"]["last_result"]["status"] == "ok", api["ssh-key"]
    assert api["ssh-password"]["last_result"]["reason"] == "exit_code"
    assert api["ssh-key-refused"]["last_result"]["reason"] == "auth"
    detail = json.loads(outputs["ssh-key"])
    assert detail["options"]["key"] == MASK and detail["options"]["passphrase"] == MASK
    assert json.loads(outputs["ssh-password"])["options"]["password"] == MASK
    assert 'probed_ssh_command_exit_code{check="ssh-password"' in outputs["/metrics"]


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "h"}, "use host:port"),
        ({"address": "h:22", "host_key_fingerprint": "SHA256:short"}, "43 base64 characters"),
        (
            {"address": "h:22", "host_key_fingerprint": "MD5:" + ":".join(["ab"] * 16)},
            "is an MD5 fingerprint",
        ),
        ({"address": "h:22", "host_key_fingerprint": []}, "at least one fingerprint"),
        ({"address": "h:22", "username": "u"}, "username without a credential"),
        ({"address": "h:22", "password": "pw-pw-pw"}, "a login needs username"),
        ({"address": "h:22", "command": "true"}, "a login needs username"),
        (
            {"address": "h:22", "username": "u", "key": "k", "key_file": "/k"},
            "key or key_file, not both",
        ),
        ({"address": "h:22", "username": "u", "key_file": "id_ed25519"}, "must be absolute"),
        ({"address": "h:22", "passphrase": "pp-pp-pp"}, "passphrase is for an encrypted key"),
        ({"address": "h:22", "expect_exit_code": 256}, "less than or equal to 255"),
        ({"address": "h:22", "expect_banner": "("}, "invalid regular expression"),
    ],
)
def test_invalid_options_are_rejected_with_a_clear_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        SshOptions.model_validate(options)
    assert message in str(info.value)


def test_secrets_are_masked_in_dumps_and_never_in_validation_errors() -> None:
    options = SshOptions.model_validate(
        {"address": "h:22", "username": "u", "password": SSH_USER_PASSWORD}
    )
    assert SSH_USER_PASSWORD not in repr(options)
    assert SSH_USER_PASSWORD not in json.dumps(options.model_dump(mode="json"))
    with pytest.raises(ValidationError) as info:
        SshOptions.model_validate({"address": "h", "password": SSH_USER_PASSWORD})
    assert SSH_USER_PASSWORD not in str(info.value)


def test_validate_reports_file_line_and_did_you_mean(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "ssh.yaml").write_text(
        "checks:\n"
        "  - name: bastion\n"
        "    type: ssh\n"
        "    address: 127.0.0.1:22\n"
        "    host_key_fingerprints: SHA256:abc\n"
    )
    result = CliRunner().invoke(cli, ["validate", "--checks-dir", str(checks)])
    assert result.exit_code == 1
    assert f"{checks / 'ssh.yaml'}:5: checks[0].host_key_fingerprints:" in result.output
    assert "did you mean 'host_key_fingerprint'" in result.output


def test_validate_names_the_extra_when_asyncssh_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "asyncssh" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "ssh.yaml").write_text(
        "checks:\n"
        "  - name: banner\n"
        "    type: ssh\n"
        "    address: 127.0.0.1:22\n"
        "  - name: pinned\n"
        "    type: ssh\n"
        "    address: 127.0.0.1:22\n"
        f"    host_key_fingerprint: {OTHER_FINGERPRINT}\n"
    )
    assert not ssh_module._driver_available()
    result = CliRunner().invoke(cli, ["validate", "--checks-dir", str(checks)])
    assert result.exit_code == 1
    assert "pip install 'probed[ssh]'" in result.output
    assert "checks[1]" in result.output and "checks[0]" not in result.output


def test_example_file_validates(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "ssh.yaml").write_text((ROOT / "checks.d" / "ssh.yaml").read_text())
    result = CliRunner().invoke(cli, ["validate", "--checks-dir", str(checks)])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load((checks / "ssh.yaml").read_text())
    assert {c["type"] for c in doc["checks"]} == {"ssh"} and len(doc["checks"]) == 4
