"""The ``grpc`` check type against real grpcio servers with the standard health servicer.

The fault matrix of issue 9 (SERVING, NOT_SERVING, unknown service, server down, TLS valid /
expired / wrong host, deadline exceeded) plus metadata secrets, the reply size bound, the
private relay, option validation, and agreement with blackbox_exporter's ``grpc`` prober.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from probed.check import Reason, Result, Status
from probed.checks._grpc_relay import Relay
from probed.checks.grpc import SERVING_STATUSES, GrpcCheck, GrpcOptions
from probed.cli import cli
from probed.config import load_checks, load_settings
from probed.plugins import check_types, get_plugin_manager
from probed.testing import make_spec, run_check, run_check_sync
from tests._require import ipv6_loopback, requires
from tests.checks._loop_guard import blocking_calls_on_loop_thread
from tests.harness import running_daemon, wait_for, write
from tests.servers import grpc as targets
from tests.servers._stub import stub_server
from tests.servers.blackbox import BlackboxExporter
from tests.servers.grpc import GrpcServers

pytestmark = pytest.mark.services

ROOT = Path(__file__).parents[2]


def serving(result: Result) -> dict[str, float]:
    """``serving_status`` label -> value of ``probed_grpc_healthcheck_response``."""
    return {
        s.labels[0]: s.value for s in result.samples if s.name == "probed_grpc_healthcheck_response"
    }


# --- the health service answers ------------------------------------------------------------


async def test_serving_server_passes_with_phases_status_code_and_serving_status(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(GrpcCheck, address=f"127.0.0.1:{grpc_servers.plain}")
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "rpc"}
    assert all(0 < t < 1 for t in result.phases.values())
    assert result.values["probed_grpc_status_code"] == 0
    assert serving(result) == {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 0, "SERVICE_UNKNOWN": 0}
    assert f"127.0.0.1:{grpc_servers.plain}: the server is SERVING" in result.message


async def test_named_service_that_serves_passes_and_a_host_name_is_resolved(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(
        GrpcCheck, address=f"localhost:{grpc_servers.plain}", service=targets.SERVING
    )
    assert result.status is Status.OK, result.message
    assert {"resolve", "connect", "rpc"} <= set(result.phases)
    assert f"service '{targets.SERVING}' is SERVING" in result.message


async def test_not_serving_service_fails_with_not_serving(grpc_servers: GrpcServers) -> None:
    result = await run_check(
        GrpcCheck, address=f"127.0.0.1:{grpc_servers.plain}", service=targets.NOT_SERVING
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.NOT_SERVING)
    assert f"service '{targets.NOT_SERVING}' is NOT_SERVING" in result.message
    assert result.values["probed_grpc_status_code"] == 0  # the call itself succeeded
    assert serving(result)["NOT_SERVING"] == 1
    assert serving(result)["SERVING"] == 0


async def test_unknown_service_fails_with_not_found_and_says_what_to_set(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(
        GrpcCheck, address=f"127.0.0.1:{grpc_servers.plain}", service="no.such.Service"
    )
    assert (result.status, result.reason) == (Status.FAIL, "not_found")
    assert "knows no service 'no.such.Service' (NOT_FOUND)" in result.message
    assert "leave it empty for the whole server" in result.message
    assert result.values["probed_grpc_status_code"] == 5  # NOT_FOUND
    assert set(serving(result).values()) == {0}
    assert set(serving(result)) == set(SERVING_STATUSES)


async def test_server_down_fails_with_connection_refused_without_a_call(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(GrpcCheck, address=f"127.0.0.1:{grpc_servers.down}")
    assert (result.status, result.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED)
    assert "nothing listens there" in result.message
    assert "probed_grpc_status_code" not in result.values
    assert "rpc" not in result.phases


async def test_stalled_health_servicer_fails_with_deadline_exceeded_within_the_timeout(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(
        GrpcCheck, address=f"127.0.0.1:{grpc_servers.plain}", service=targets.STALL, timeout=1.0
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "no Health/Check answer within the timeout of 1s (DEADLINE_EXCEEDED)" in result.message
    # grpcio's deadline ended the call (status 4), not the daemon cancelling the run.
    assert result.values["probed_grpc_status_code"] == 4
    assert 0.7 < result.phases["rpc"] < 1.0
    assert result.duration < 1.0


async def test_unavailable_answer_fails_with_unavailable_and_the_server_s_words(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(
        GrpcCheck, address=f"127.0.0.1:{grpc_servers.plain}", service=targets.UNAVAILABLE
    )
    assert (result.status, result.reason) == (Status.FAIL, "unavailable")
    assert "answered UNAVAILABLE: draining for a restart" in result.message
    assert result.values["probed_grpc_status_code"] == 14


async def test_reply_over_max_receive_message_length_fails_with_body_size(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(
        GrpcCheck,
        address=f"127.0.0.1:{grpc_servers.plain}",
        service=targets.HUGE,
        max_receive_message_length="4KiB",
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.BODY_SIZE)
    assert "larger than max_receive_message_length (4.0 KiB)" in result.message


def test_relay_cuts_a_server_that_sends_past_the_limit() -> None:
    relay = Relay(limit=1000)

    class Sink:
        def __init__(self) -> None:
            self.aborted = False

        def abort(self) -> None:
            self.aborted = True

    upstream = Sink()
    relay.upstream = upstream  # type: ignore[assignment]
    relay.from_target(b"x" * 600)
    assert not relay.exceeded and bytes(relay._pending) == b"x" * 600
    relay.from_target(b"x" * 600)
    assert relay.exceeded and upstream.aborted
    assert not relay._pending  # nothing past the limit is kept


# --- TLS -----------------------------------------------------------------------------------


async def test_tls_with_the_ca_passes_with_a_tls_phase_and_the_certificate_expiry(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(
        GrpcCheck,
        address=f"127.0.0.1:{grpc_servers.tls}",
        tls={"ca_file": grpc_servers.ca_file},
    )
    assert result.status is Status.OK, result.message
    assert set(result.phases) == {"connect", "tls", "rpc"}
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0
    assert "is SERVING (TLS," in result.message


async def test_tls_expired_certificate_fails_and_says_when_it_expired(
    grpc_servers: GrpcServers,
) -> None:
    result = await run_check(
        GrpcCheck,
        address=f"127.0.0.1:{grpc_servers.expired}",
        tls={"ca_file": grpc_servers.ca_file},
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "certificate has expired (notAfter " in result.message
    assert result.values["probed_tls_cert_expiry_timestamp_seconds"] > 0
    assert "probed_grpc_status_code" not in result.values


async def test_tls_wrong_host_fails_and_server_name_fixes_it(grpc_servers: GrpcServers) -> None:
    address = f"127.0.0.1:{grpc_servers.wrong_host}"
    wrong = await run_check(GrpcCheck, address=address, tls={"ca_file": grpc_servers.ca_file})
    assert (wrong.status, wrong.reason) == (Status.FAIL, Reason.TLS)
    assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in wrong.message
    named = await run_check(
        GrpcCheck,
        address=address,
        tls={"ca_file": grpc_servers.ca_file, "server_name": "other.probed.test"},
    )
    assert named.status is Status.OK, named.message


async def test_tls_untrusted_ca_fails_unless_verification_is_off(grpc_servers: GrpcServers) -> None:
    address = f"127.0.0.1:{grpc_servers.tls}"
    untrusted = await run_check(GrpcCheck, address=address, tls=True)
    assert (untrusted.status, untrusted.reason) == (Status.FAIL, Reason.TLS)
    assert "untrusted CA (set tls.ca_file to trust it)" in untrusted.message
    unverified = await run_check(GrpcCheck, address=address, tls={"verify": False})
    assert unverified.status is Status.OK, unverified.message


async def test_client_certificate_required_fails_without_one_and_passes_with_it(
    grpc_servers: GrpcServers,
) -> None:
    address = f"127.0.0.1:{grpc_servers.mtls}"
    without = await run_check(GrpcCheck, address=address, tls={"ca_file": grpc_servers.ca_file})
    assert without.status is Status.FAIL
    assert "does it require a client certificate (tls.cert_file)" in without.message
    cert_file, key_file = grpc_servers.client_cert
    tls = {"ca_file": grpc_servers.ca_file, "cert_file": cert_file, "key_file": key_file}
    with_cert = await run_check(GrpcCheck, address=address, tls=tls)
    assert with_cert.status is Status.OK, with_cert.message


async def test_plaintext_to_a_tls_server_fails_and_suggests_tls(grpc_servers: GrpcServers) -> None:
    result = await run_check(GrpcCheck, address=f"127.0.0.1:{grpc_servers.tls}")
    assert (result.status, result.reason) == (Status.FAIL, Reason.PROTOCOL)
    assert "does it expect TLS (set tls)?" in result.message


async def test_tls_to_a_plaintext_server_fails_with_tls(grpc_servers: GrpcServers) -> None:
    result = await run_check(
        GrpcCheck, address=f"127.0.0.1:{grpc_servers.plain}", tls={"ca_file": grpc_servers.ca_file}
    )
    assert (result.status, result.reason) == (Status.FAIL, Reason.TLS)
    assert "did not answer with TLS" in result.message


async def test_a_server_that_is_not_grpc_fails_with_protocol() -> None:
    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async with stub_server(http1) as port:
        result = await run_check(GrpcCheck, address=f"127.0.0.1:{port}", timeout=2.0)
    assert result.status is Status.FAIL
    assert result.reason == Reason.PROTOCOL, result
    assert "gRPC" in result.message
    assert "unix-abstract" not in result.message  # the private relay is no one's business


@requires(ipv6_loopback, "no IPv6 on loopback (::1)")
async def test_ipv6_server_passes() -> None:
    server, port = targets.start_server(host="::1")
    try:
        result = await run_check(GrpcCheck, address=f"[::1]:{port}", ip_version="ip6")
    finally:
        server.stop(None)
    assert result.status is Status.OK, result.message
    assert f"[::1]:{port}" in result.message


# --- metadata and secrets ------------------------------------------------------------------


async def test_metadata_credentials_pass_and_never_show_when_refused(
    grpc_servers: GrpcServers,
) -> None:
    address = f"127.0.0.1:{grpc_servers.plain}"
    missing = await run_check(GrpcCheck, address=address, service=targets.AUTH)
    assert (missing.status, missing.reason) == (Status.FAIL, Reason.AUTH)
    assert "UNAUTHENTICATED" in missing.message
    good = await run_check(
        GrpcCheck,
        address=address,
        service=targets.AUTH,
        metadata={"x-tenant": "probed"},
        secret_metadata={"authorization": f"Bearer {targets.TOKEN}"},
    )
    assert good.status is Status.OK, good.message
    wrong = "wr0ng-Secret-t0ken"
    refused = await run_check(
        GrpcCheck,
        address=address,
        service=targets.AUTH,
        secret_metadata={"authorization": f"Bearer {wrong}"},
    )
    # The server echoes the credentials it refused; probed must not repeat them.
    assert (refused.status, refused.reason) == (Status.FAIL, Reason.AUTH)
    assert "PERMISSION_DENIED: bad credentials Bearer ***" in refused.message
    assert wrong not in repr(refused)


async def test_echoed_metadata_secret_never_reaches_api_metrics_health_or_logs(
    grpc_servers: GrpcServers, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "f1le-Secret-grpc-t0ken"
    checks = tmp_path / "checks"
    write(checks / "token.txt", f"Bearer {secret}\n")
    write(
        checks / "grpc.yaml",
        f"""
        checks:
          - name: grpc-auth
            type: grpc
            interval: 1s
            timeout: 900ms
            address: 127.0.0.1:{grpc_servers.plain}
            service: {targets.AUTH}
            secret_metadata:
              authorization: ${{file:{checks / "token.txt"}}}
        """,
    )
    async with running_daemon(checks) as daemon:
        await daemon.runs("grpc-auth", 1)
        outputs = {
            path: (await daemon.get(path))[1]
            for path in (
                "/api/v1/checks",
                "/api/v1/checks/grpc-auth",
                "/metrics",
                "/health/ready?verbose=1",
            )
        }
        state = daemon.state("grpc-auth")
    # The server refused the token and echoed it in its details: the message shows the mask.
    assert "PERMISSION_DENIED: bad credentials Bearer ***" in outputs["/api/v1/checks/grpc-auth"]
    assert 'probed_grpc_status_code{check="grpc-auth",type="grpc"} 7\n' in outputs["/metrics"]
    for where, text in [*outputs.items(), ("logs", caplog.text), ("state", repr(state))]:
        assert secret not in text, f"{where} shows the secret"


def test_secret_metadata_is_redacted_in_dumps_and_plain_credentials_are_refused() -> None:
    options = GrpcOptions.model_validate(
        {"address": "h:50051", "secret_metadata": {"Authorization": f"Bearer {targets.TOKEN}"}}
    )
    assert "authorization" in options.secret_metadata  # keys are lower-cased, as gRPC sends them
    assert targets.TOKEN not in repr(options)
    assert targets.TOKEN not in options.model_dump_json()
    with pytest.raises(ValidationError, match="put it in secret_metadata") as info:
        GrpcOptions.model_validate(
            {"address": "h:50051", "metadata": {"authorization": f"Bearer {targets.TOKEN}"}}
        )
    assert targets.TOKEN not in str(info.value)


# --- the event loop, the relay -------------------------------------------------------------


async def test_tls_run_makes_no_blocking_calls_on_the_loop(grpc_servers: GrpcServers) -> None:
    with blocking_calls_on_loop_thread() as seen:
        result = await run_check(
            GrpcCheck,
            address=f"127.0.0.1:{grpc_servers.tls}",
            tls={"ca_file": grpc_servers.ca_file},
        )
    assert result.status is Status.OK, result.message
    assert seen == []


def relay_sockets() -> int:
    """Sockets of this process's relays (listeners and accepted connections) in the kernel."""
    with open("/proc/net/unix") as table:
        return table.read().count(f"@probed-grpc-{os.getpid()}-")


async def test_a_run_cancelled_mid_call_leaves_no_relay_socket_behind(
    grpc_servers: GrpcServers,
) -> None:
    spec = make_spec(
        GrpcCheck,
        timeout=5.0,
        interval=10.0,
        address=f"127.0.0.1:{grpc_servers.plain}",
        service=targets.STALL,
    )
    check = GrpcCheck(spec)
    await check.setup()
    run = asyncio.create_task(check.run())
    await wait_for(lambda: relay_sockets() >= 2, what="grpcio connected to the relay")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await wait_for(lambda: relay_sockets() == 0, what="the relay sockets to close")


async def test_relay_refuses_a_connection_from_another_process() -> None:
    relay = Relay(limit=1024)
    await relay.listen()
    try:
        code = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            f"s.connect('\\0{relay.name}')\n"
            "s.settimeout(5)\n"
            "sys.stdout.write(repr(s.recv(10)))\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        relay.close()
    assert out == b"b''"  # closed at once: the stranger gets nothing
    assert relay.strangers == 1
    assert relay.local is None


# --- options, validation, the extra -------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"address": "h"}, "use host:port"),
        ({"address": "h:1", "metadata": {"bad key": "v"}}, "invalid metadata key 'bad key'"),
        ({"address": "h:1", "metadata": {"grpc-timeout": "1"}}, "grpc-* keys are reserved"),
        ({"address": "h:1", "metadata": {"x": "a\nb"}}, "must be printable ASCII"),
        ({"address": "h:1", "metadata": {"X-A": "1", "x-a": "2"}}, "is given twice"),
        (
            {"address": "h:1", "metadata": {"x-a": "1"}, "secret_metadata": {"x-a": "secret"}},
            "in both metadata and secret_metadata",
        ),
        ({"address": "[::1]:1", "ip_version": "ip4"}, "is an IPv6 address but ip_version is ip4"),
        ({"address": "h:1", "max_receive_message_length": 10}, "greater than or equal to 64"),
        ({"address": "h:1", "servce": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options_are_rejected_with_a_clear_message(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        GrpcOptions.model_validate(options)
    assert message in str(info.value)


def test_validate_reports_file_line_and_did_you_mean(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "grpc.yaml").write_text(
        "checks:\n"
        "  - name: api-health\n"
        "    type: grpc\n"
        "    address: 127.0.0.1:50051\n"
        "    servce: payments.v1.Payments\n"
    )
    result = CliRunner().invoke(cli, ["validate", "--checks-dir", str(checks)])
    assert result.exit_code == 1
    assert f"{checks / 'grpc.yaml'}:5: checks[0].servce: unknown key 'servce'" in result.output
    assert "did you mean 'service'" in result.output


def test_validate_names_the_extra_when_grpcio_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("grpc", "grpc_health") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "grpc.yaml").write_text(
        "checks:\n  - name: api-health\n    type: grpc\n    address: 127.0.0.1:50051\n"
    )
    result = CliRunner().invoke(cli, ["validate", "--checks-dir", str(checks)])
    assert result.exit_code == 1
    assert "type 'grpc' needs the grpc module: pip install 'probed[grpc]'" in result.output


def test_schema_describes_the_options() -> None:
    schema = GrpcOptions.model_json_schema()
    assert schema["required"] == ["address"]
    assert {"service", "tls", "metadata", "secret_metadata", "max_receive_message_length"} <= set(
        schema["properties"]
    )
    assert "writeOnly" in json.dumps(schema["properties"]["secret_metadata"])


def test_example_file_loads_with_its_interpolations_and_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORDERS_GRPC_ADDR", raising=False)
    monkeypatch.setenv("PAYMENTS_TOKEN", targets.TOKEN)
    (tmp_path / "grpc.yaml").write_text((ROOT / "checks.d" / "grpc.yaml").read_text())
    pm = get_plugin_manager(entry_points=False)
    loaded = load_checks(load_settings(None, {"checks_dirs": (tmp_path,)}), check_types(pm))
    assert not loaded.errors
    assert {spec.type for spec in loaded.specs.values()} == {"grpc"}
    payments = loaded.specs["payments-grpc"].options
    assert isinstance(payments, GrpcOptions)
    assert payments.secret_metadata["authorization"].get_secret_value() == f"Bearer {targets.TOKEN}"
    assert targets.TOKEN in loaded.secrets


# --- agreement with blackbox_exporter's grpc prober -------------------------------------------


def test_pass_and_fail_agree_with_blackbox_exporter(
    blackbox_exporter: Callable[[dict[str, Any]], BlackboxExporter],
    grpc_servers: GrpcServers,
) -> None:
    """Same targets, both tools, one run: pass/fail agree, and so do the gRPC status codes.

    Not compared: a stalled server. Debian's blackbox_exporter 0.23 calls Health/Check with
    ``context.Background()`` (no deadline: the module timeout does not reach the call), so it
    waits as long as the server stalls; probed gives DEADLINE_EXCEEDED within its timeout.
    """

    def module(service: str = "", tls: dict[str, Any] | None = None, timeout: str = "2s") -> Any:
        grpc: dict[str, Any] = {"service": service, "preferred_ip_protocol": "ip4"}
        grpc |= {"tls": True, "tls_config": tls} if tls is not None else {"tls": False}
        return {"prober": "grpc", "timeout": timeout, "grpc": grpc}

    ca = {"ca_file": grpc_servers.ca_file}
    bb = blackbox_exporter(
        {
            "plain": module(),
            "serving": module(targets.SERVING),
            "not_serving": module(targets.NOT_SERVING),
            "unknown": module("no.such.Service"),
            "unavailable": module(targets.UNAVAILABLE),
            "tls": module(tls=ca),
            "tls_system_ca": module(tls={}),
            "tls_skip_verify": module(tls={"insecure_skip_verify": True}),
        }
    )
    s = grpc_servers
    tls = {"ca_file": s.ca_file}
    cases: list[tuple[str, int, dict[str, Any], bool]] = [
        ("plain", s.plain, {}, True),
        ("serving", s.plain, {"service": targets.SERVING}, True),
        ("not_serving", s.plain, {"service": targets.NOT_SERVING}, False),
        ("unknown", s.plain, {"service": "no.such.Service"}, False),
        ("unavailable", s.plain, {"service": targets.UNAVAILABLE}, False),
        ("plain", s.down, {}, False),
        ("plain", s.tls, {}, False),
        ("tls", s.tls, {"tls": tls}, True),
        ("tls", s.expired, {"tls": tls}, False),
        ("tls", s.wrong_host, {"tls": tls}, False),
        ("tls", s.plain, {"tls": tls}, False),
        ("tls", s.mtls, {"tls": tls}, False),
        ("tls_system_ca", s.tls, {"tls": True}, False),
        ("tls_skip_verify", s.expired, {"tls": {"verify": False}}, True),
    ]
    for name, port, options, expected in cases:
        target = f"127.0.0.1:{port}"
        samples = bb.probe(name, target)
        options = {"timeout": 2.0, **options}
        result = run_check_sync(GrpcCheck, address=target, **options)
        case = f"{name} {target}: blackbox {samples.get('probe_success')}, probed {result}"
        assert (samples["probe_success"] == 1.0) is expected, case
        assert result.status.passed is expected, case
        code = samples.get("probe_grpc_status_code")
        if "probed_grpc_status_code" in result.values and code is not None and code != 0:
            assert result.values["probed_grpc_status_code"] == code, case
        if expected:
            seen = serving(result)
            assert samples['probe_grpc_healthcheck_response{serving_status="SERVING"}'] == 1, case
            assert seen["SERVING"] == 1, case
