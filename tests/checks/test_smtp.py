"""The ``smtp`` check type against real aiosmtpd servers (STARTTLS with trustme certificates,
implicit TLS, AUTH) and stubs that refuse at the banner, stall or never end a line."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from probed.check import Reason, Result, Status
from probed.checks._smtp_client import MAX_LINE
from probed.checks.smtp import SmtpCheck, SmtpOptions
from probed.cli import cli
from probed.redact import MASK
from probed.testing import run_check
from tests._require import ipv6_loopback, requires
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.harness import probed_logs, running_daemon, wait_for, write
from tests.servers._stub import silent, stub_server
from tests.servers.smtp import (
    REJECTED_RCPT,
    SMTP_PASSWORD,
    SMTP_USER,
    RecordingHandler,
    SmtpServers,
    banner_554,
    echo_auth,
    endless_line,
    helo_only,
    stall_after_banner,
    start_aiosmtpd,
    starttls_injector,
)
from tests.servers.tls import TlsFiles
from tests.servers.tls_targets import INTERMEDIATE_CN, TlsChains

WRONG_PASSWORD = "Wr0ng-pa55/word"


def addr(port: int) -> str:
    return f"127.0.0.1:{port}"


def assert_no_secret(result: Result, *secrets: str) -> None:
    for secret in (SMTP_PASSWORD, WRONG_PASSWORD, *secrets):
        for form in (secret, base64.b64encode(secret.encode()).decode().rstrip("=")):
            assert form not in result.message
            assert form not in repr(result)


async def smtp(servers: SmtpServers, port: int, **options: Any) -> Result:
    options.setdefault("ehlo_name", "probe.probed.test")
    if options.get("tls") is None and options.get("starttls", "auto") is not False:
        options.setdefault("tls", {"ca_file": servers.ca_file})
        options.setdefault("starttls", "auto")
    return await run_check(SmtpCheck, address=addr(port), timeout=3.0, **options)


# -- ok paths ---------------------------------------------------------------------------------


async def test_starttls_auth_and_envelope_pass_without_sending_data(
    smtp_servers: SmtpServers,
) -> None:
    before = smtp_servers.handler.data_seen
    result = await smtp(
        smtp_servers,
        smtp_servers.starttls,
        starttls=True,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        mail_from="probe@probed.test",
        rcpt_to=["postmaster@probed.test"],
    )
    assert result.status is Status.OK, result.message
    assert {"connect", "banner", "ehlo", "tls", "auth", "envelope"} <= set(result.phases)
    assert "STARTTLS (TLSv1." in result.message
    assert f"AUTH PLAIN as {SMTP_USER} accepted" in result.message
    assert "RCPT TO postmaster@probed.test accepted" in result.message
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0
    assert smtp_servers.handler.data_seen == before  # never DATA
    assert_no_secret(result)


async def test_auth_login_mechanism(smtp_servers: SmtpServers) -> None:
    result = await smtp(
        smtp_servers,
        smtp_servers.starttls,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        auth_mechanism="login",
    )
    assert result.status is Status.OK, result.message
    assert "AUTH LOGIN as probe accepted" in result.message


async def test_implicit_tls_port_465_style(smtp_servers: SmtpServers) -> None:
    result = await smtp(
        smtp_servers,
        smtp_servers.implicit,
        tls={"ca_file": smtp_servers.ca_file},
        starttls=None,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
    )
    assert result.status is Status.OK, result.message
    assert "implicit TLS (TLSv1." in result.message
    assert "tls" in result.phases and "auth" in result.phases
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0


async def test_implicit_tls_on_a_starttls_port_says_so(smtp_servers: SmtpServers) -> None:
    result = await smtp(smtp_servers, smtp_servers.starttls, tls={"ca_file": smtp_servers.ca_file})
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "did not answer with TLS" in result.message
    assert "set starttls: true" in result.message


async def test_plain_banner_and_ehlo_only(smtp_servers: SmtpServers) -> None:
    result = await smtp(smtp_servers, smtp_servers.plain, starttls=False)
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "banner", "ehlo"}
    assert "connected, banner and EHLO in" in result.message
    assert not result.values


async def test_pre_esmtp_server_is_greeted_with_helo_unless_starttls_is_required() -> None:
    async with stub_server(helo_only) as port:
        auto = await run_check(SmtpCheck, address=addr(port))
        required = await run_check(SmtpCheck, address=addr(port), starttls=True)
    assert auto.status is Status.OK, auto.message
    assert "no STARTTLS offered" in auto.message
    assert (required.status, required.reason) == (Status.FAIL, Reason.STATUS)
    assert "EHLO" in required.message and "was refused: 502 5.5.1" in required.message


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_address_with_starttls(tls_files: TlsFiles) -> None:
    controller = await asyncio.to_thread(
        start_aiosmtpd, RecordingHandler(), "::1", tls_context=tls_files.server_context()
    )
    try:
        result = await run_check(
            SmtpCheck,
            address=f"[::1]:{controller.port}",
            ip_version="ip6",
            starttls=True,
            tls={"ca_file": tls_files.ca_file},
        )
    finally:
        await asyncio.to_thread(controller.stop)
    assert result.status is Status.OK, result.message
    assert result.message.startswith(f"[::1]:{controller.port}: connected")


async def test_cert_expiry_thresholds_apply_after_starttls(smtp_servers: SmtpServers) -> None:
    result = await smtp(
        smtp_servers,
        smtp_servers.starttls,
        starttls="auto",
        tls={"ca_file": smtp_servers.ca_file, "expiry_warn_days": 10**7},
    )
    assert (result.status, result.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    assert "TLS certificate expires in" in result.message


async def test_expiry_is_the_earliest_of_the_verified_chain(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue("127.0.0.1", leaf_days=90, intermediate_days=20)
    assert cert.intermediate_not_after is not None
    controller = await asyncio.to_thread(
        start_aiosmtpd, RecordingHandler(), tls_context=cert.context()
    )
    try:
        result = await run_check(
            SmtpCheck,
            address=addr(controller.port),
            starttls=True,
            tls={"ca_file": tls_chains.ca_file, "expiry_warn_days": 30},
        )
    finally:
        await asyncio.to_thread(controller.stop)
    assert (result.status, result.reason) == (Status.WARN, Reason.CERT_EXPIRY)
    assert result.message.startswith(
        f"127.0.0.1:{controller.port}: intermediate CN={INTERMEDIATE_CN}: "
        "TLS certificate expires in 20.0 days"
    )
    expiry = result.values["probed_tls_cert_expiry_timestamp_seconds"]
    assert expiry == pytest.approx(cert.intermediate_not_after, abs=1)
    assert expiry < cert.leaf_not_after


# -- failures ---------------------------------------------------------------------------------


async def test_banner_554_is_status_failure_with_code_and_text() -> None:
    async with stub_server(banner_554) as port:
        result = await run_check(SmtpCheck, address=addr(port), starttls=False)
    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert "greeted with 554 5.7.1 mx.probed.test: no SMTP service for you" in result.message
    assert "refuses sessions from this client" in result.message
    assert result.message.startswith(f"127.0.0.1:{port}: ")


async def test_wrong_password_is_auth_failure_and_never_shown(smtp_servers: SmtpServers) -> None:
    result = await smtp(
        smtp_servers, smtp_servers.starttls, username=SMTP_USER, password=WRONG_PASSWORD
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.AUTH)
    assert "AUTH PLAIN as probe was rejected: 535" in result.message
    assert "wrong user name or password" in result.message
    assert_no_secret(result)


async def test_rcpt_rejected_quotes_the_server(smtp_servers: SmtpServers) -> None:
    result = await smtp(
        smtp_servers,
        smtp_servers.starttls,
        mail_from="",
        rcpt_to=["postmaster@probed.test", REJECTED_RCPT],
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.STATUS)
    assert f"RCPT TO:<{REJECTED_RCPT}> was rejected: 550 5.1.1" in result.message
    assert "User unknown" in result.message
    assert "envelope" in result.phases


async def test_starttls_with_untrusted_certificate_is_tls_failure(
    smtp_servers: SmtpServers,
) -> None:
    result = await smtp(smtp_servers, smtp_servers.untrusted, starttls=True)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "certificate verify failed" in result.message
    assert "untrusted CA" in result.message and "after STARTTLS" in result.message


async def test_plain_text_pipelined_behind_the_starttls_reply_is_dropped(
    tls_files: TlsFiles,
) -> None:
    async with stub_server(starttls_injector(tls_files.server_context())) as port:
        result = await run_check(
            SmtpCheck, address=addr(port), starttls=True, tls={"ca_file": tls_files.ca_file}
        )
    assert result.status is Status.OK, result.message
    assert "STARTTLS (TLSv1." in result.message
    assert "injected" not in result.message


async def test_starttls_required_but_not_offered(smtp_servers: SmtpServers) -> None:
    result = await smtp(smtp_servers, smtp_servers.plain, starttls=True)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "does not offer STARTTLS (starttls: true requires it)" in result.message
    assert "AUTH" in result.message  # what it does offer


async def test_cleartext_auth_is_refused_by_default_and_allowed_on_request(
    smtp_servers: SmtpServers,
) -> None:
    refused = await smtp(
        smtp_servers, smtp_servers.plain, username=SMTP_USER, password=SMTP_PASSWORD
    )
    assert (refused.status, refused.reason) == (Status.FAIL, Reason.TLS)
    assert "did not log in: the password would travel in clear text" in refused.message
    assert "allow_plaintext_auth" in refused.message
    assert "auth" not in refused.phases  # nothing was sent
    allowed = await smtp(
        smtp_servers,
        smtp_servers.plain,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        allow_plaintext_auth=True,
    )
    assert allowed.status is Status.OK, allowed.message
    assert "no STARTTLS offered" in allowed.message


async def test_stalled_server_times_out_naming_the_banner() -> None:
    async with stub_server(silent) as port:
        result = await run_check(SmtpCheck, address=addr(port), timeout=0.5)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "no reply to the connection (the 220 banner) within" in result.message
    assert result.duration < 0.5


async def test_server_stalling_after_the_banner_times_out_naming_ehlo() -> None:
    async with stub_server(stall_after_banner) as port:
        result = await run_check(SmtpCheck, address=addr(port), timeout=0.5)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "no reply to EHLO within" in result.message
    assert "banner" in result.phases and "ehlo" in result.phases
    assert result.duration < 0.5


async def test_endless_line_stops_at_the_line_cap() -> None:
    async with stub_server(endless_line) as port:
        result = await run_check(SmtpCheck, address=addr(port), timeout=2.0)
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert f"longer than {MAX_LINE} bytes" in result.message
    assert "it starts '220-xxxx" in result.message
    assert result.duration < 1.0


async def test_not_smtp_is_protocol_failure() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with stub_server(http) as port:
        result = await run_check(SmtpCheck, address=addr(port))
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "does not speak SMTP: it sent 'HTTP/1.1 400 Bad Request'" in result.message


async def test_closed_port_is_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await run_check(SmtpCheck, address=addr(port))
    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED)


# -- the event loop and secrets ---------------------------------------------------------------


# Besides the house guard's calls: what an SMTP check could do on the loop by mistake.
_BLOCKING_NAMES = frozenset({"load_verify_locations", "load_cert_chain", "getaddrinfo",
                             "gethostbyname", "getfqdn", "open", "statvfs", "sleep"})  # fmt: skip


@contextlib.contextmanager
def blocking_on_loop_thread() -> Iterator[list[str]]:
    """The house loop guard, also catching the calls above by name."""
    with blocking_calls_on_loop_thread() as seen:
        previous = sys.getprofile()

        def profiler(frame: Any, event: Any, arg: Any) -> None:
            if previous is not None:
                previous(frame, event, arg)
            if event == "c_call" and getattr(arg, "__name__", "") in _BLOCKING_NAMES:
                seen.append(arg.__name__)

        sys.setprofile(profiler)
        try:
            yield seen
        finally:
            sys.setprofile(previous)


async def test_nothing_blocks_the_event_loop(smtp_servers: SmtpServers) -> None:
    with blocking_on_loop_thread() as control:
        # what building a check's TLS context does (build_context may answer from its cache
        # of shared contexts, so load the CA file directly), on the loop
        ssl.create_default_context(cafile=smtp_servers.ca_file)
    assert "load_verify_locations" in control  # the guard sees it
    with blocking_on_loop_thread() as seen:
        result = await smtp(
            smtp_servers,
            smtp_servers.starttls,
            username=SMTP_USER,
            password=SMTP_PASSWORD,
            mail_from="probe@probed.test",
            rcpt_to=["postmaster@probed.test"],
        )
    assert result.status is Status.OK, result.message
    assert seen == []


async def test_password_echoed_by_the_server_is_masked_in_message_api_logs_and_metrics(
    tmp_path: Path,
) -> None:
    secret_file = write(tmp_path / "checks.d" / "smtp.secret", SMTP_PASSWORD)
    with probed_logs() as stream:
        async with stub_server(echo_auth) as port:
            checks = tmp_path / "checks.d"
            write(
                checks / "mail.yaml",
                f"""
                defaults: {{interval: 1s, timeout: 900ms, failure_threshold: 1}}
                checks:
                  - name: mail-auth
                    type: smtp
                    address: 127.0.0.1:{port}
                    starttls: false
                    allow_plaintext_auth: true
                    username: {SMTP_USER}
                    password: "${{file:{secret_file}}}"
                """,
            )
            async with running_daemon(checks) as r:
                await r.runs("mail-auth", 1)
                await wait_for(lambda: not r.state("mail-auth").up, what="mail-auth down")
                outputs = {
                    "/metrics": (await r.get("/metrics"))[1],
                    "/api/v1/checks": (await r.get("/api/v1/checks"))[1],
                    "/api/v1/checks/mail-auth": (await r.get("/api/v1/checks/mail-auth"))[1],
                    "/health/ready?verbose": (await r.get("/health/ready?verbose"))[1],
                }
    outputs["logs"] = stream.getvalue()
    plain = base64.b64encode(f"\0{SMTP_USER}\0{SMTP_PASSWORD}".encode()).decode()
    for where, text in outputs.items():
        for form in (SMTP_PASSWORD, json.dumps(SMTP_PASSWORD)[1:-1], plain):
            assert form not in text, f"{where} shows {form!r}"
    detail = json.loads(outputs["/api/v1/checks/mail-auth"])
    message = detail["last_result"]["message"]
    assert detail["last_result"]["reason"] == Reason.AUTH
    assert f"bad credentials {SMTP_USER} {MASK} ({MASK})" in message
    assert detail["options"]["password"] == MASK
    assert "bad credentials" in outputs["logs"]


# -- options ----------------------------------------------------------------------------------


def test_password_without_tls_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="password would be sent without TLS"):
        SmtpOptions.model_validate(
            {"address": "mx:25", "starttls": False, "username": "u", "password": "pw12"}
        )


def test_validation_errors_name_the_fix() -> None:
    cases = {
        "rcpt_to needs mail_from": {"address": "mx:25", "rcpt_to": "a@b.test"},
        "needs both username and password": {"address": "mx:25", "username": "u"},
        "not a plain ASCII mail address": {"address": "mx:25", "mail_from": "a b@c"},
        "not a host name or address literal": {"address": "mx:25", "ehlo_name": "a b"},
        "use host:port": {"address": "mx"},
    }
    for text, options in cases.items():
        with pytest.raises(ValidationError, match=text):
            SmtpOptions.model_validate(options)


@pytest.mark.parametrize(
    ("options", "mode"),
    [
        ({}, "auto"),
        ({"tls": True}, "implicit"),
        ({"tls": {"verify": False}, "starttls": False}, "implicit"),
        ({"tls": True, "starttls": True}, "starttls"),
        ({"starttls": "auto"}, "auto"),
        ({"starttls": False}, "none"),
    ],
)
def test_tls_mode_from_starttls_and_tls(options: dict[str, Any], mode: str) -> None:
    assert SmtpOptions.model_validate({"address": "mx:25", **options}).tls_mode == mode


def test_validate_reports_file_line_did_you_mean_and_hides_the_password(tmp_path: Path) -> None:
    checks = write(
        tmp_path / "checks.d" / "mail.yaml",
        f"""
        checks:
          - name: mail
            type: smtp
            address: 127.0.0.1:25
            rcpt_too: postmaster@probed.test
          - name: mail-auth
            type: smtp
            address: 127.0.0.1:25
            starttls: false
            username: probe
            password: "{SMTP_PASSWORD}"
        """,
    ).parent
    result = CliRunner().invoke(cli, ["validate", "--checks-dir", str(checks)])
    assert result.exit_code == 1
    assert f"{checks / 'mail.yaml'}:5: checks[0].rcpt_too: unknown key 'rcpt_too'" in result.output
    assert "did you mean 'rcpt_to'" in result.output
    assert "mail.yaml:6: checks[1]: the password would be sent without TLS" in result.output
    assert "the password would be sent without TLS" in result.output
    assert SMTP_PASSWORD not in result.output
