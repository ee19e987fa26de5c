"""The ``tls`` check type against real servers on loopback: asyncio TLS servers with chains of
chosen expiry, aiosmtpd with STARTTLS, PostgreSQL with ``ssl = on``, small IMAP/POP3/FTP/LDAP
servers that upgrade to real TLS, and the same targets through blackbox_exporter."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from probed.check import Reason, Result, Status
from probed.checks._tlschain import Chain, ChainCert, chain_certs, read_chain
from probed.checks.tls import TlsCheck, TlsCheckOptions
from probed.config import load_checks, load_settings
from probed.plugins import DEFAULT_PLUGINS, check_types, get_plugin_manager
from probed.testing import run_check
from tests._require import ipv6_loopback, requires
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.servers._util import free_port
from tests.servers.tls_targets import (
    ROOT_CN,
    PostgresTls,
    SmtpTarget,
    TlsChains,
    serve,
    starttls_server,
    tls_server,
)

LEAF = "leaf CN=probed test leaf"
INTERMEDIATE = "intermediate CN=probed test intermediate"


def _version(result: Result) -> str:
    found = [s.labels[0] for s in result.samples if s.name == "probed_tls_version_info"]
    assert len(found) == 1, result.samples
    return found[0]


def _tls10_handshake_works() -> bool:
    """This OpenSSL build can do a TLS 1.0 handshake with itself (Debian's can, at SECLEVEL=0)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for ctx in (server, client):
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
    except (ssl.SSLError, ValueError):
        return False
    import threading

    import trustme

    trustme.CA().issue_cert("127.0.0.1").configure_cert(server)
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    s_obj = server.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
    c_obj = client.wrap_socket(b, do_handshake_on_connect=False)

    def serve() -> None:
        try:
            s_obj.do_handshake()
        except (ssl.SSLError, OSError):
            c_obj.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        c_obj.do_handshake()
        return c_obj.version() == "TLSv1"
    except (ssl.SSLError, OSError):
        return False
    finally:
        c_obj.close()
        thread.join(5)
        s_obj.close()


# -- plain TLS ---------------------------------------------------------------------------------


async def test_valid_chain_reports_leaf_earliest_and_last_chain_expiry_version_and_cipher(
    tls_chains: TlsChains,
) -> None:
    cert = tls_chains.issue(leaf_days=90, intermediate_days=400)
    async with tls_server(cert.context()) as port:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file)
    assert result.status is Status.OK, result.message
    assert result.values["probed_tls_leaf_cert_expiry_timestamp_seconds"] == cert.leaf_not_after
    # The leaf expires first here, so it is also the earliest of the verified chain.
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] == cert.leaf_not_after
    assert result.values["probed_tls_last_chain_expiry_timestamp_seconds"] == cert.leaf_not_after
    assert _version(result) == "TLS 1.3"
    cipher = [s.labels[0] for s in result.samples if s.name == "probed_tls_cipher_info"]
    assert cipher and cipher[0].startswith("TLS_"), result.samples
    assert set(result.phases) == {"connect", "tls"}
    assert f"127.0.0.1:{port}: TLS 1.3 {cipher[0]}, chain verified: {LEAF} until" in result.message
    assert f"{INTERMEDIATE} until" in result.message
    assert f"root CN={ROOT_CN} until" in result.message


async def test_intermediate_expiring_before_the_leaf_is_the_earliest_expiry_and_warns(
    tls_chains: TlsChains,
) -> None:
    cert = tls_chains.issue(leaf_days=90, intermediate_days=10)
    assert cert.intermediate_not_after is not None
    async with tls_server(cert.context()) as port:
        warned = await run_check(TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file)
        failed = await run_check(
            TlsCheck,
            address=f"localhost:{port}",
            ca_file=tls_chains.ca_file,
            expiry_warn_days=30,
            expiry_fail_days=12,
        )
    assert (warned.status, warned.reason) == (Status.WARN, Reason.CERT_EXPIRY), warned.message
    assert warned.values["probed_tls_cert_expiry_timestamp_seconds"] == cert.intermediate_not_after
    assert warned.values["probed_tls_leaf_cert_expiry_timestamp_seconds"] == cert.leaf_not_after
    assert (
        warned.values["probed_tls_last_chain_expiry_timestamp_seconds"]
        == cert.intermediate_not_after
    )
    assert f"127.0.0.1:{port}: {INTERMEDIATE}: TLS certificate expires in 10.0 days" in (
        warned.message
    )
    assert "below the warn threshold 14 days (expiry_warn_days)" in warned.message
    assert (failed.status, failed.reason) == (Status.FAIL, Reason.CERT_EXPIRY), failed.message
    assert "(expiry_fail_days)" in failed.message


async def test_expired_leaf_fails_naming_the_expired_certificate(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue(leaf_days=-3, intermediate_days=400)
    async with tls_server(cert.context()) as port:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS), result.message
    assert "TLS certificate verify failed: certificate has expired" in result.message
    assert f"({LEAF} expired " in result.message
    # What the unverified second look saw: the presented chain's figures, no verified chain.
    assert result.values["probed_tls_leaf_cert_expiry_timestamp_seconds"] == cert.leaf_not_after
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] == cert.leaf_not_after
    assert "probed_tls_last_chain_expiry_timestamp_seconds" not in result.values
    assert "tls" in result.phases


async def test_expired_certificate_fails_even_with_verify_off(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue(leaf_days=90, intermediate_days=-1)
    async with tls_server(cert.context()) as port:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", verify=False)
    assert (result.status, result.reason) == (Status.FAIL, Reason.CERT_EXPIRY), result.message
    assert result.message.startswith(f"127.0.0.1:{port}: {INTERMEDIATE} expired ")
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] == cert.intermediate_not_after


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_address(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue()
    async with tls_server(cert.context(), host="::1") as port:
        result = await run_check(
            TlsCheck, address=f"[::1]:{port}", ip_version="ip6", ca_file=tls_chains.ca_file
        )
    assert result.status is Status.OK, result.message
    assert result.message.startswith(f"[::1]:{port}: TLS 1.3")


async def test_wrong_host_name_fails_with_the_mismatch(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue("other.probed.test")
    async with tls_server(cert.context()) as port:
        by_ip = await run_check(TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file)
        by_name = await run_check(
            TlsCheck,
            address=f"127.0.0.1:{port}",
            ca_file=tls_chains.ca_file,
            server_name="api.probed.test",
        )
        right = await run_check(
            TlsCheck,
            address=f"127.0.0.1:{port}",
            ca_file=tls_chains.ca_file,
            server_name="other.probed.test",
        )
    assert (by_ip.status, by_ip.reason) == (Status.FAIL, Reason.TLS)
    assert "IP address mismatch" in by_ip.message, by_ip.message
    assert (by_name.status, by_name.reason) == (Status.FAIL, Reason.TLS)
    assert "Hostname mismatch" in by_name.message, by_name.message
    assert "api.probed.test" in by_name.message
    assert right.status is Status.OK, right.message


async def test_self_signed_fails_unless_verify_is_off(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue(self_signed=True, leaf_days=200)
    async with tls_server(cert.context()) as port:
        verified = await run_check(TlsCheck, address=f"127.0.0.1:{port}")
        unverified = await run_check(TlsCheck, address=f"127.0.0.1:{port}", verify=False)
    assert (verified.status, verified.reason) == (Status.FAIL, Reason.TLS)
    assert "self-signed certificate (set ca_file to trust it, or verify: false)" in (
        verified.message
    )
    assert unverified.status is Status.OK, unverified.message
    assert "chain not verified (verify: false): leaf CN=probed test leaf until" in (
        unverified.message
    )
    assert unverified.values["probed_tls_cert_expiry_timestamp_seconds"] == cert.leaf_not_after
    assert "probed_tls_last_chain_expiry_timestamp_seconds" not in unverified.values


async def test_server_capped_at_tls12_fails_min_version_13_naming_what_it_speaks(
    tls_chains: TlsChains,
) -> None:
    cert = tls_chains.issue()
    ctx = cert.context(max_version=ssl.TLSVersion.TLSv1_2)
    async with tls_server(ctx) as port:
        default = await run_check(TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file)
        strict = await run_check(
            TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file, min_version=1.3
        )
    assert default.status is Status.OK, default.message
    assert _version(default) == "TLS 1.2"
    assert (strict.status, strict.reason) == (Status.FAIL, Reason.TLS), strict.message
    assert "the server negotiates TLS 1.2, below min_version 1.3" in strict.message
    assert _version(strict) == "TLS 1.2"


@requires(_tls10_handshake_works, "this OpenSSL build refuses TLS 1.0 even at SECLEVEL=0")
async def test_tls10_only_server_fails_the_default_min_version_and_passes_min_10(
    tls_chains: TlsChains,
) -> None:
    cert = tls_chains.issue()
    async with tls_server(cert.context(tls10_only=True)) as port:
        default = await run_check(TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file)
        allowed = await run_check(
            TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file, min_version="1.0"
        )
    assert (default.status, default.reason) == (Status.FAIL, Reason.TLS), default.message
    assert "the server negotiates TLS 1.0, below min_version 1.2" in default.message
    assert allowed.status is Status.OK, allowed.message
    assert _version(allowed) == "TLS 1.0"


async def test_plain_tcp_server_is_a_tls_failure_not_a_hang(tls_chains: TlsChains) -> None:
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 plain text service here\r\n" * 4)
        await writer.drain()
        await reader.read()

    async with serve(banner) as port:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", timeout=3)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS), result.message
    assert "did not answer with TLS" in result.message or "handshake failed" in result.message


async def test_closed_port_is_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}")
    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED)
    assert f"connection refused by 127.0.0.1:{port}" in result.message


async def test_silent_server_times_out_naming_the_phase() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serve(silent) as port:
        handshake = await run_check(TlsCheck, address=f"127.0.0.1:{port}", timeout=0.4)
        greeting = await run_check(
            TlsCheck, address=f"127.0.0.1:{port}", starttls="smtp", timeout=0.4
        )
    assert (handshake.status, handshake.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert f"while in the TLS handshake with 127.0.0.1:{port}" in handshake.message
    assert (greeting.status, greeting.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "while waiting for the SMTP greeting" in greeting.message
    assert handshake.duration < 1 and greeting.duration < 1


async def test_the_run_does_not_block_the_event_loop(tls_chains: TlsChains) -> None:
    cert = tls_chains.issue()
    async with tls_server(cert.context()) as port:
        with blocking_calls_on_loop_thread() as seen:
            result = await run_check(
                TlsCheck, address=f"127.0.0.1:{port}", ca_file=tls_chains.ca_file
            )
    assert result.status is Status.OK, result.message
    assert seen == []


# -- STARTTLS ----------------------------------------------------------------------------------


async def test_smtp_starttls_with_aiosmtpd(
    tls_smtp_server: SmtpTarget, tls_chains: TlsChains
) -> None:
    result = await run_check(
        TlsCheck,
        address=f"127.0.0.1:{tls_smtp_server.port}",
        starttls="smtp",
        ca_file=tls_chains.ca_file,
    )
    assert result.status is Status.OK, result.message
    assert "STARTTLS (smtp), TLS 1.3" in result.message
    assert set(result.phases) == {"connect", "starttls", "tls"}
    leaf = tls_smtp_server.cert.leaf_not_after
    assert result.values["probed_tls_leaf_cert_expiry_timestamp_seconds"] == leaf


async def test_smtp_server_without_starttls_is_a_protocol_failure() -> None:
    port = free_port()
    controller = Controller(object(), hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", starttls="smtp")
    finally:
        await asyncio.to_thread(controller.stop)
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    assert "STARTTLS (smtp): the SMTP server does not offer STARTTLS" in result.message


async def test_postgres_with_ssl_on(tls_postgres: PostgresTls, tls_chains: TlsChains) -> None:
    result = await run_check(
        TlsCheck,
        address=f"{tls_postgres.host}:{tls_postgres.port}",
        starttls="postgres",
        ca_file=tls_chains.ca_file,
    )
    assert result.status is Status.OK, result.message
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] == (
        tls_postgres.cert.leaf_not_after
    )
    assert "STARTTLS (postgres)" in result.message


async def test_postgres_with_ssl_off_says_so(postgres_server: Any) -> None:
    result = await run_check(
        TlsCheck, address=f"{postgres_server.host}:{postgres_server.port}", starttls="postgres"
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS), result.message
    assert "does not accept TLS (answered N to the SSLRequest" in result.message


@pytest.mark.parametrize("kind", ["imap", "pop3", "ftp", "ldap"])
async def test_starttls_exchanges_reach_a_verified_handshake(
    kind: str, tls_chains: TlsChains
) -> None:
    cert = tls_chains.issue(leaf_days=50)
    async with starttls_server(kind, cert.context()) as port:
        result = await run_check(
            TlsCheck, address=f"127.0.0.1:{port}", starttls=kind, ca_file=tls_chains.ca_file
        )
    assert result.status is Status.OK, result.message
    assert f"STARTTLS ({kind}), TLS 1.3" in result.message
    assert result.values["probed_tls_leaf_cert_expiry_timestamp_seconds"] == cert.leaf_not_after


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("imap", "the IMAP server refused STARTTLS: 'a1 BAD STARTTLS not available'"),
        ("pop3", "the POP3 server refused STLS: '-ERR not now'"),
        ("ftp", "the FTP AUTH TLS reply is '500 AUTH not understood', expected 234"),
        ("ldap", "the LDAP server refused StartTLS: resultCode 53 (unwillingToPerform)"),
    ],
)
async def test_starttls_refusals_are_protocol_failures_quoting_the_server(
    kind: str, words: str, tls_chains: TlsChains
) -> None:
    cert = tls_chains.issue()
    async with starttls_server(kind, cert.context(), refuse=True) as port:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", starttls=kind)
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    assert f"127.0.0.1:{port}: STARTTLS ({kind}): {words}" in result.message


@pytest.mark.parametrize(
    ("kind", "sends", "words"),
    [
        ("smtp", b"554 5.3.2 no service for you\r\n", "the SMTP greeting is '554 5.3.2 no "
         "service for you', expected 220"),
        ("smtp", b"220-half a greeting", "the server closed the connection while sending the "
         "SMTP greeting after '220-half a greeting'"),
        ("smtp", b"hello there\r\n", "the SMTP greeting is not a numbered reply: 'hello there'"),
        ("ldap", b"HTTP/1.1 400 Bad Request\r\n\r\n", "not an LDAP message"),
        ("postgres", b"E", "answer b'E' to the PostgreSQL SSLRequest (is it PostgreSQL"),
        ("pop3", b"-ERR go away\r\n", "the POP3 greeting is '-ERR go away', expected '+OK'"),
        ("imap", b"* BYE busy\r\n", "the IMAP greeting is '* BYE busy', expected '* OK'"),
    ],
)  # fmt: skip
async def test_starttls_servers_that_misbehave_are_protocol_failures(
    kind: str, sends: bytes, words: str
) -> None:
    async def stub(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if kind in ("ldap", "postgres"):
            await reader.read(1)  # the request
        writer.write(sends)
        await writer.drain()
        if sends.endswith(b"\n"):
            await reader.read()  # until the probe hangs up
        # else: return, and the server closes the connection mid-line

    async with serve(stub) as port:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", starttls=kind)
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    assert f"127.0.0.1:{port}: STARTTLS ({kind}): {words}" in result.message


async def test_endless_greeting_line_is_cut_at_the_line_limit() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 " + b"x" * 100_000)
        await writer.drain()
        await reader.read()

    async with serve(endless) as port:
        result = await run_check(TlsCheck, address=f"127.0.0.1:{port}", starttls="ftp")
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL), result.message
    assert "a line longer than 4096 bytes in the FTP greeting" in result.message


# -- options, registration, chain helpers ------------------------------------------------------


def test_options_accept_yaml_floats_and_openssl_names_for_min_version() -> None:
    def min_version(value: object) -> str:
        return TlsCheckOptions.model_validate({"address": "h:1", "min_version": value}).min_version

    assert [min_version(v) for v in (1.3, 1.0, "TLSv1", "TLS 1.1", "1.2")] == [
        "1.3",
        "1.0",
        "1.0",
        "1.1",
        "1.2",
    ]
    with pytest.raises(ValueError, match=re.escape("'1.0', '1.1', '1.2' or '1.3'")):
        TlsCheckOptions.model_validate({"address": "h:1", "min_version": "1.4"})
    with pytest.raises(ValueError, match="invalid address"):
        TlsCheckOptions.model_validate({"address": "no-port"})


def test_validate_names_file_line_and_suggests_the_key(tmp_path: Path) -> None:
    (tmp_path / "tls.yaml").write_text(
        "checks:\n  - name: mail\n    type: tls\n    address: 127.0.0.1:25\n    startls: smtp\n"
    )
    types = check_types(get_plugin_manager(entry_points=False))
    loaded = load_checks(load_settings(None, {"checks_dirs": (tmp_path,)}), types)
    assert [str(e) for e in loaded.errors] == [
        f"{tmp_path / 'tls.yaml'}:5: checks[0].startls: unknown key 'startls' "
        "(did you mean 'starttls'?)"
    ]


def test_registered_as_a_default_plugin_and_example_file_validates(tmp_path: Path) -> None:
    assert "probed.checks.tls" in DEFAULT_PLUGINS
    example = Path(__file__).parents[2] / "checks.d" / "tls.yaml"
    (tmp_path / "tls.yaml").write_text(example.read_text())
    types = check_types(get_plugin_manager(entry_points=False))
    assert types["tls"].cls is TlsCheck
    loaded = load_checks(load_settings(None, {"checks_dirs": (tmp_path,)}), types)
    assert not loaded.errors
    kinds = {getattr(s.options, "starttls", "?") for s in loaded.specs.values()}
    assert kinds == {None, "smtp", "postgres", "ldap"}


def test_chain_figures_without_a_verified_chain_and_with_unparsable_certificates() -> None:
    leaf = ChainCert("leaf", "ca", 0.0, 200.0)
    root = ChainCert("ca", "ca", 0.0, 100.0)
    chain = Chain(presented=(leaf, root), verified=(), version="TLSv1.2", cipher="X")
    assert (chain.leaf_not_after, chain.earliest_not_after) == (200.0, 100.0)
    assert chain.last_chain_not_after is None
    assert chain.role(root) == "root"
    assert chain_certs([b"not a certificate", object()]) == ()
    assert read_chain(None, verified=True) is None


def test_time_of_expiry_math_is_in_days() -> None:
    """A guard on the units of the thresholds: 14 days of warn is 14*86400 seconds."""
    options = TlsCheckOptions.model_validate({"address": "h:1", "expiry_warn_days": 14})
    from probed.checks._tls import expiry_verdict

    now = time.time()
    assert expiry_verdict(now + 13.9 * 86400, options, now) is not None
    assert expiry_verdict(now + 14.1 * 86400, options, now) is None


# -- blackbox_exporter agreement ---------------------------------------------------------------


async def test_blackbox_tcp_tls_and_smtp_starttls_agree_with_probed(
    blackbox_exporter: Callable[[dict[str, Any]], Any],
    tls_chains: TlsChains,
    tls_smtp_server: SmtpTarget,
) -> None:
    tls_config = {"ca_file": tls_chains.ca_file}
    tcp_tls = {"tls": True, "tls_config": tls_config}
    bb = await asyncio.to_thread(
        blackbox_exporter,
        {
            "tls": {"prober": "tcp", "timeout": "3s", "tcp": tcp_tls},
            "tls13": {
                "prober": "tcp",
                "timeout": "3s",
                "tcp": {"tls": True, "tls_config": {**tls_config, "min_version": "TLS13"}},
            },
            "smtp_starttls": {
                "prober": "tcp",
                "timeout": "3s",
                "tcp": {
                    "query_response": [
                        {"expect": "^220 "},
                        {"send": "EHLO prober\r"},
                        {"expect": "^250[ -]STARTTLS"},
                        {"expect": "^250 "},
                        {"send": "STARTTLS\r"},
                        {"expect": "^220"},
                        {"starttls": True},
                        {"send": "QUIT\r"},
                    ],
                    "tls_config": tls_config,
                },
            },
        },
    )
    capped = ssl.TLSVersion.TLSv1_2
    # name: (certificate, server's highest version, blackbox module, probed's min_version)
    targets: dict[str, tuple[Any, ssl.TLSVersion | None, str, str]] = {
        "valid": (tls_chains.issue(), None, "tls", "1.2"),
        "intermediate first": (tls_chains.issue(intermediate_days=20), None, "tls", "1.2"),
        "expired leaf": (tls_chains.issue(leaf_days=-2), None, "tls", "1.2"),
        "expired intermediate": (
            tls_chains.issue(leaf_days=-1, intermediate_days=-1),
            None,
            "tls",
            "1.2",
        ),
        "wrong host": (tls_chains.issue("other.probed.test"), None, "tls", "1.2"),
        "self-signed": (tls_chains.issue(self_signed=True), None, "tls", "1.2"),
        "tls 1.2 server, 1.3 asked": (tls_chains.issue(), capped, "tls13", "1.3"),
        "tls 1.2 server, 1.2 asked": (tls_chains.issue(), capped, "tls", "1.2"),
    }
    verdicts: dict[str, tuple[bool, bool]] = {}
    figures: dict[str, tuple[Result, dict[str, float]]] = {}
    for name, (cert, highest, module, min_version) in targets.items():
        async with tls_server(cert.context(max_version=highest)) as port:
            target = f"127.0.0.1:{port}"
            ours = await run_check(
                TlsCheck, address=target, ca_file=tls_chains.ca_file, min_version=min_version
            )
            theirs = await asyncio.to_thread(bb.probe, module, target)
        verdicts[name] = (ours.status.passed, theirs["probe_success"] == 1.0)
        figures[name] = (ours, theirs)
    smtp = f"127.0.0.1:{tls_smtp_server.port}"
    ours = await run_check(TlsCheck, address=smtp, starttls="smtp", ca_file=tls_chains.ca_file)
    theirs = await asyncio.to_thread(bb.probe, "smtp_starttls", smtp)
    verdicts["smtp starttls"] = (ours.status.passed, theirs["probe_success"] == 1.0)
    figures["smtp starttls"] = (ours, theirs)
    assert verdicts == {
        "valid": (True, True),
        "intermediate first": (True, True),
        "expired leaf": (False, False),
        "expired intermediate": (False, False),
        "wrong host": (False, False),
        "self-signed": (False, False),
        "tls 1.2 server, 1.3 asked": (False, False),
        "tls 1.2 server, 1.2 asked": (True, True),
        "smtp starttls": (True, True),
    }
    # Where both verified the chain, the expiry figures and the version are the same numbers.
    for name in ("valid", "intermediate first", "tls 1.2 server, 1.2 asked", "smtp starttls"):
        ours, theirs = figures[name]
        assert (
            ours.values["probed_tls_cert_expiry_timestamp_seconds"]
            == (theirs["probe_ssl_earliest_cert_expiry"])
        ), name
        assert (
            ours.values["probed_tls_last_chain_expiry_timestamp_seconds"]
            == (theirs["probe_ssl_last_chain_expiry_timestamp_seconds"])
        ), name
        assert theirs[f'probe_tls_version_info{{version="{_version(ours)}"}}'] == 1.0, name
