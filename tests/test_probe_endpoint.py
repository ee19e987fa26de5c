"""``GET /probe`` (probed.probe_endpoint): bad input is a 400 with no probe run, the module
file's problems name file, line and field, ``debug=true`` masks secrets, the module's timeout
and Prometheus' scrape-timeout header bound a probe, the module file is re-read when it
changes (a broken one keeps the modules read before), and probes over the in-flight cap get 503.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, web

from probed._blackbox_metrics import fnv32a
from probed._blackbox_modules import Module, TargetError, parse_duration
from probed.probe_endpoint import (
    PROBES,
    CheckCache,
    ProbeEndpoint,
    load_blackbox_modules,
    probe,
    probe_timeout,
)
from probed.testing import RunningDaemon, start_daemon, wait_until
from tests.servers._util import free_port

SECRET = "s3cr3t-pass-word"


class Listener:
    """A loopback TCP port counting connections; ``greet`` is sent to each, then it waits."""

    def __init__(self, greet: bytes = b"") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.greet = greet
        self.conns: list[socket.socket] = []
        self.connected = threading.Event()
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.closed:  # accepted while closing: no socket left for the GC to warn about
                conn.close()
                return
            self.accepted += 1
            self.conns.append(conn)
            self.connected.set()
            if self.greet:
                conn.sendall(self.greet)

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def _write(path: Path, modules: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"modules": modules}, sort_keys=False))
    return path


MODULES: dict[str, Any] = {
    "tcp_connect": {"prober": "tcp", "timeout": "2s"},
    "tcp_wait": {
        "prober": "tcp",
        "timeout": "1s",
        "tcp": {"query_response": [{"expect": "^NEVER"}]},
    },
    "tcp_slow": {
        "prober": "tcp",
        "timeout": "20s",
        "tcp": {"query_response": [{"expect": "^NEVER"}]},
    },
    "http_auth": {
        "prober": "http",
        "timeout": "2s",
        "http": {"basic_auth": {"username": "probe", "password": SECRET}},
    },
    "icmp": {"prober": "icmp", "timeout": "2s"},
}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[RunningDaemon, Path]]:
    module_file = _write(tmp_path / "blackbox.yml", MODULES)
    checks = tmp_path / "checks"
    checks.mkdir()
    with start_daemon(checks, args=["--blackbox-config", str(module_file)]) as d:
        yield d, module_file


def _get(d: RunningDaemon, timeout: float = 10.0, **query: str) -> Any:
    return d.get("/probe?" + urllib.parse.urlencode(query), timeout=timeout)


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_unknown_module_is_a_400_naming_the_known_ones_and_probes_nothing(
    daemon: tuple[RunningDaemon, Path], listener: Listener
) -> None:
    d, _ = daemon
    answer = _get(d, module="http_2xx_typo", target=f"127.0.0.1:{listener.port}")
    assert answer.status == 400
    assert "Unknown module 'http_2xx_typo'" in answer.body
    assert "tcp_connect" in answer.body
    assert listener.accepted == 0


def test_missing_or_empty_target_is_a_400(daemon: tuple[RunningDaemon, Path]) -> None:
    d, _ = daemon
    for query in ({"module": "tcp_connect"}, {"module": "tcp_connect", "target": " "}):
        answer = _get(d, **query)
        assert answer.status == 400, answer
        assert "Target parameter is missing" in answer.body


@pytest.mark.parametrize(
    ("module", "target", "said"),
    [
        ("tcp_connect", "http://127.0.0.1:{port}/", "takes host:port"),
        ("tcp_connect", "127.0.0.1", "takes host:port"),
        ("http_auth", "ftp://127.0.0.1:{port}/", "not a ftp:// target"),
        ("icmp", "https://127.0.0.1/", "host name or IP address"),
    ],
)
def test_target_form_the_module_does_not_take_is_a_400_and_probes_nothing(
    daemon: tuple[RunningDaemon, Path], listener: Listener, module: str, target: str, said: str
) -> None:
    d, _ = daemon
    answer = _get(d, module=module, target=target.format(port=listener.port))
    assert answer.status == 400, answer
    assert said in answer.body
    assert listener.accepted == 0


def test_a_probe_answers_blackbox_names(
    daemon: tuple[RunningDaemon, Path], listener: Listener
) -> None:
    d, _ = daemon
    answer = _get(d, module="tcp_connect", target=f"127.0.0.1:{listener.port}")
    assert answer.status == 200
    samples = _samples(answer.body)
    assert samples["probe_success"] == 1.0
    assert samples["probe_ip_protocol"] == 4.0
    assert samples["probe_ip_addr_hash"] == 3668918509.0  # blackbox's value for 127.0.0.1
    assert "# TYPE probe_success gauge" in answer.body
    # the kernel completes the handshake before the listener's thread accepts it
    wait_until(lambda: listener.accepted == 1, timeout=5)


def test_debug_logs_the_probe_and_masks_the_modules_secrets(
    daemon: tuple[RunningDaemon, Path], listener: Listener
) -> None:
    d, _ = daemon
    answer = _get(d, module="http_auth", target=f"127.0.0.1:{listener.port}", debug="true")
    assert answer.status == 200
    assert "Logs for the probe:" in answer.body
    assert "Beginning probe" in answer.body
    assert "Probe failed" in answer.body  # the listener never answers HTTP
    assert "Metrics that would have been returned:" in answer.body
    assert "probe_success 0" in answer.body
    assert "basic_auth" in answer.body
    assert SECRET not in answer.body
    assert "<secret>" in answer.body


def test_module_timeout_bounds_the_probe(
    daemon: tuple[RunningDaemon, Path], listener: Listener
) -> None:
    d, _ = daemon
    start = time.monotonic()
    answer = _get(d, module="tcp_wait", target=f"127.0.0.1:{listener.port}")
    took = time.monotonic() - start
    samples = _samples(answer.body)
    assert samples["probe_success"] == 0.0
    assert samples["probe_duration_seconds"] <= 1.2
    assert took < 5.0


def test_scrape_timeout_header_bounds_a_longer_module_timeout(
    daemon: tuple[RunningDaemon, Path], listener: Listener
) -> None:
    d, _ = daemon
    query = urllib.parse.urlencode({"module": "tcp_slow", "target": f"127.0.0.1:{listener.port}"})
    start = time.monotonic()
    answer = d.get(f"/probe?{query}", timeout=15, **{"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert time.monotonic() - start < 8.0
    samples = _samples(answer.body)
    assert samples["probe_success"] == 0.0
    assert samples["probe_duration_seconds"] <= 1.2  # 1.5 s minus blackbox's 0.5 s offset


def test_unreadable_scrape_timeout_header_is_a_400(
    daemon: tuple[RunningDaemon, Path], listener: Listener
) -> None:
    d, _ = daemon
    query = urllib.parse.urlencode(
        {"module": "tcp_connect", "target": f"127.0.0.1:{listener.port}"}
    )
    answer = d.get(f"/probe?{query}", **{"X-Prometheus-Scrape-Timeout-Seconds": "soon"})
    assert answer.status == 400
    assert "X-Prometheus-Scrape-Timeout-Seconds" in answer.body
    assert listener.accepted == 0


def test_timeout_rule_is_blackboxs() -> None:
    module = Module("m", "tcp", 5.0, {})
    assert probe_timeout(module, None) == 5.0
    assert probe_timeout(module, "10") == 5.0
    assert probe_timeout(module, "3") == 2.5
    assert probe_timeout(Module("m", "tcp", 0.0, {}), None) == 119.5
    with pytest.raises(ValueError, match="nan"):
        probe_timeout(module, "nan")
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="Prometheus duration"):
        parse_duration("5 seconds")


def test_changed_module_file_is_read_again_and_a_broken_one_keeps_the_last_modules(
    daemon: tuple[RunningDaemon, Path], listener: Listener
) -> None:
    d, module_file = daemon
    target = f"127.0.0.1:{listener.port}"
    assert _get(d, module="tcp_new", target=target).status == 400
    _write(module_file, {**MODULES, "tcp_new": {"prober": "tcp", "timeout": "2s"}})
    answer = _get(d, module="tcp_new", target=target)
    assert answer.status == 200, answer
    assert _samples(answer.body)["probe_success"] == 1.0
    module_file.write_text(
        "modules:\n  tcp_new: {prober: tcp, tcp: {source_ip_address: 1.2.3.4}}\n"
    )
    answer = _get(d, module="tcp_new", target=target)
    assert answer.status == 200, answer  # the modules read before still serve
    # log lines leave through a queue: wait for them rather than read the file at once
    d.wait_for(lambda: "keeping the modules read before" in d.log_path.read_text())
    log = d.log_path.read_text()
    assert "modules.tcp_new.tcp.source_ip_address: blackbox option not supported" in log


def _run_with(module_file: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    checks = tmp_path / "checks"
    checks.mkdir(exist_ok=True)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "probed",
            "run",
            "--checks-dir",
            str(checks),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--blackbox-config",
            str(module_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unsupported_options_stop_startup_naming_file_line_and_field(tmp_path: Path) -> None:
    module_file = tmp_path / "blackbox.yml"
    module_file.write_text(
        "modules:\n"
        "  http_2xx:\n"
        "    prober: http\n"
        "    http:\n"
        "      source_ip_address: 10.0.0.1\n"
        "      valid_status_codes: [200]\n"
        "  dns_tls:\n"
        "    prober: dns\n"
        "    dns:\n"
        "      query_name: example.com\n"
        "      dns_over_tls: true\n"
        "  ssh:\n"
        "    prober: ssh_banner\n"
        "  bad_timeout:\n"
        "    prober: tcp\n"
        "    timeout: soon\n"
    )
    done = _run_with(module_file, tmp_path)
    assert done.returncode != 0
    err = done.stderr
    assert f"{module_file}:5: modules.http_2xx.http.source_ip_address: blackbox option not " in err
    assert f"{module_file}:11: modules.dns_tls.dns.dns_over_tls: blackbox option not" in err
    assert f"{module_file}:13: modules.ssh.prober: prober 'ssh_banner' is not supported" in err
    assert f"{module_file}:16: modules.bad_timeout.timeout: invalid duration 'soon'" in err


def test_an_option_probed_cannot_take_is_named_with_its_line(tmp_path: Path) -> None:
    module_file = tmp_path / "blackbox.yml"
    module_file.write_text(
        "modules:\n"
        "  tcp_steps:\n"
        "    prober: tcp\n"
        "    tcp:\n"
        "      query_response:\n"
        "        - expect: '^220'\n"
        "        - send: 'EHLO probed'\n"
        "        - expect: '^250'\n"
        "  typo:\n"
        "    prober: http\n"
        "    http:\n"
        "      valid_status_code: [200]\n"
    )
    err = _run_with(module_file, tmp_path).stderr
    assert f"{module_file}:5: modules.tcp_steps.tcp.query_response:" in err
    assert "expect then send then expect" in err
    assert f"{module_file}:12: modules.typo.http.valid_status_code: unknown http option" in err


def test_probe_without_a_module_file_is_a_404(tmp_path: Path) -> None:
    checks = tmp_path / "checks"
    checks.mkdir()
    with start_daemon(checks) as d:
        answer = d.get("/probe?module=x&target=y")
        assert answer.status == 404
        assert "--blackbox-config" in answer.body


def test_address_hash_is_fnv1a_of_the_address_bytes() -> None:
    assert fnv32a(bytes([127, 0, 0, 1])) == 3668918509


def test_probes_over_the_in_flight_cap_are_answered_503(tmp_path: Path) -> None:
    module_file = _write(tmp_path / "blackbox.yml", MODULES)
    silent = Listener()

    async def scenario() -> tuple[int, int, str]:
        app = web.Application()
        running = SimpleNamespace(
            settings=SimpleNamespace(blackbox_config=module_file), redact=lambda t: t
        )
        app[PROBES] = ProbeEndpoint(limit=1, config=lambda: running)
        app.router.add_get("/probe", probe)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            async with ClientSession() as session:
                url = (
                    f"http://127.0.0.1:{port}/probe?module=tcp_wait&target=127.0.0.1:{silent.port}"
                )
                first = asyncio.create_task(session.get(url))
                # the first probe is in flight once it has connected
                assert await asyncio.to_thread(silent.connected.wait, 10)
                async with session.get(url) as second:
                    text = await second.text()
                    second_status = second.status
                response = await first
                first_status = response.status
                response.release()
                return first_status, second_status, text
        finally:
            await runner.cleanup()

    try:
        first, second, text = asyncio.run(scenario())
    finally:
        silent.close()
    assert first == 200
    assert second == 503
    assert "too many probes in flight (1)" in text


def _reload(d: RunningDaemon) -> tuple[int, dict[str, Any]]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{d.url}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_reload_reports_a_broken_module_file_set_in_probed_yaml(
    tmp_path: Path, listener: Listener
) -> None:
    module_file = _write(tmp_path / "blackbox.yml", MODULES)
    checks = tmp_path / "checks"
    checks.mkdir()
    with start_daemon(checks, config=f"blackbox_config: {module_file}\n") as d:
        target = f"127.0.0.1:{listener.port}"
        assert _samples(_get(d, module="tcp_connect", target=target).body)["probe_success"] == 1
        module_file.write_text("modules:\n  tcp_connect: {prober: tcp, timeout: 2x}\n")
        status, body = _reload(d)
        assert status == 400
        assert any(
            f"{module_file}:2: modules.tcp_connect.timeout: invalid duration" in e
            for e in body["errors"]
        ), body
        answer = _get(d, module="tcp_connect", target=target)
        assert answer.status == 200  # the modules read before still serve


def test_check_cache_builds_once_per_target_and_closes_what_it_drops_when_unused() -> None:
    closed: list[int] = []
    built: list[int] = []

    class Fake:
        def __init__(self, n: int) -> None:
            built.append(n)
            self.n = n

        async def close(self) -> None:
            closed.append(self.n)

    async def scenario() -> None:
        cache = CheckCache(size=1)
        first = cache.acquire(("m", "t1", 1.0), lambda: Fake(1))  # type: ignore[arg-type,return-value]
        await cache.release(first)
        again = cache.acquire(("m", "t1", 1.0), lambda: Fake(99))  # type: ignore[arg-type,return-value]
        assert again is first
        other = cache.acquire(("m", "t2", 1.0), lambda: Fake(2))  # type: ignore[arg-type,return-value]
        assert closed == []  # t1 was pushed out while in use: closed once released
        await cache.release(again)
        assert closed == [1]
        cache.clear()  # the module file changed
        await cache.release(other)
        assert closed == [1, 2]
        assert built == [1, 2]

    asyncio.run(scenario())


def test_target_forms_map_like_blackbox() -> None:
    dns = Module("d", "dns", 1.0, {})
    assert dns.options_for("192.0.2.1")["server"] == "192.0.2.1:53"
    assert dns.options_for("[::1]")["server"] == "[::1]:53"
    http = Module("h", "http", 1.0, {})
    assert http.options_for("example.com:8080/health")["url"] == "http://example.com:8080/health"
    with pytest.raises(TargetError, match="not a file:// target"):
        http.options_for("file:///etc/passwd")


def test_query_response_maps_to_send_then_expect(tmp_path: Path) -> None:
    module_file = _write(
        tmp_path / "blackbox.yml",
        {
            "smtp_quit": {
                "prober": "tcp",
                "tcp": {"query_response": [{"send": "QUIT"}, {"expect": "^221"}]},
            }
        },
    )
    module = load_blackbox_modules(module_file)["smtp_quit"]
    assert module.options["send"] == "QUIT\n"  # blackbox ends every send with a newline
    assert module.options["expect"] == "^221"


def test_web_config_basic_auth_guards_probe(tmp_path: Path, listener: Listener) -> None:
    import base64

    import bcrypt

    module_file = _write(tmp_path / "blackbox.yml", MODULES)
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    checks = tmp_path / "checks"
    checks.mkdir()
    args = ["--blackbox-config", str(module_file), "--web-config", str(web_config)]
    with start_daemon(checks, args=args) as d:
        query = urllib.parse.urlencode(
            {"module": "tcp_connect", "target": f"127.0.0.1:{listener.port}"}
        )
        refused = d.get(f"/probe?{query}")
        assert refused.status == 401
        assert listener.accepted == 0
        token = base64.b64encode(b"prometheus:scrape-pass").decode()
        answer = d.get(f"/probe?{query}", Authorization=f"Basic {token}")
        assert answer.status == 200
        assert _samples(answer.body)["probe_success"] == 1.0
