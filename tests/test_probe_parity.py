"""``/probe`` parity: one blackbox module file, the same targets, the real blackbox_exporter
(Debian's ``prometheus-blackbox-exporter``, tests/servers/blackbox.py) and probed's ``/probe``
in one run.

For every case both must agree on ``probe_success`` (and on the expected value), every series
probed answers must be one blackbox answers too (same name, same labels: a Prometheus rule or
dashboard written for blackbox finds it), the series of each shared concept must be in both,
and the values that are facts rather than timings (status code, redirects, TLS expiry, gRPC
status, DNS answer count, address hash) must be equal.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from probed.testing import start_daemon
from tests.servers._util import refused_port
from tests.servers.blackbox import BlackboxExporter, parse_samples
from tests.servers.dns import FakeDnsServer
from tests.servers.grpc import GrpcServers
from tests.servers.tls import TlsFiles

Case = tuple[str, str, bool]
"""(module, target, expected probe_success)."""

COMMON = {"probe_success", "probe_duration_seconds", "probe_ip_protocol", "probe_ip_addr_hash"}
HTTP = COMMON | {
    "probe_http_status_code",
    "probe_http_content_length",
    "probe_http_redirects",
    "probe_http_ssl",
    "probe_http_version",
    "probe_failed_due_to_regex",
    "probe_dns_lookup_time_seconds",
    *(f'probe_http_duration_seconds{{phase="{p}"}}' for p in ("resolve", "connect", "tls")),
    *(f'probe_http_duration_seconds{{phase="{p}"}}' for p in ("processing", "transfer")),
}
TLS = {"probe_ssl_earliest_cert_expiry"}
FACTS = (
    "probe_http_status_code",
    "probe_http_redirects",
    "probe_http_ssl",
    "probe_http_version",
    "probe_failed_due_to_regex",
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_grpc_status_code",
    'probe_grpc_healthcheck_response{serving_status="SERVING"}',
    "probe_dns_answer_rrs",
    "probe_dns_query_succeeded",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
)


def _handler(request: BaseHTTPRequestHandler) -> None:
    path = request.path
    if path == "/redirect":
        status, body, extra = 302, b"", {"Location": "/ok"}
    elif path == "/ok":
        status, body, extra = 200, b"all healthy here", {}
    elif path == "/sick":
        status, body, extra = 200, b"degraded", {}
    else:
        status, body, extra = 404, b"not found", {}
    request.send_response(status)
    for name, value in extra.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        _handler(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_servers(tls_files: TlsFiles) -> Iterator[tuple[int, int]]:
    """(plain port, TLS port) of one loopback HTTP server each."""
    plain = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = tls_files.server_context()
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (plain, secure)]
    for thread in threads:
        thread.start()
    try:
        yield plain.server_address[1], secure.server_address[1]
    finally:
        for server in (plain, secure):
            server.shutdown()
            server.server_close()


@pytest.fixture
def banner() -> Iterator[int]:
    """A TCP port greeting every connection with ``HELLO probed``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"HELLO probed\r\n")
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(1024)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _probe(base: str, module: str, target: str) -> dict[str, float]:
    import urllib.request

    query = urllib.parse.urlencode({"module": module, "target": target})
    with urllib.request.urlopen(f"{base}/probe?{query}", timeout=30) as resp:
        return parse_samples(resp.read().decode())


def _compare(bb: BlackboxExporter, probed_url: str, cases: list[Case], shared: set[str]) -> None:
    for module, target, expected in cases:
        theirs = bb.probe(module, target)
        ours = _probe(probed_url, module, target)
        where = f"{module} {target}"
        assert theirs["probe_success"] == float(expected), (where, theirs)
        assert ours["probe_success"] == float(expected), (where, ours)
        extra = set(ours) - set(theirs)
        assert not extra, f"{where}: probed answers series blackbox does not: {sorted(extra)}"
        missing = {s for s in shared if s in theirs} - set(ours)
        assert not missing, f"{where}: probed lacks blackbox's {sorted(missing)}"
        for name in FACTS:
            if name in theirs and name in ours:
                assert ours[name] == pytest.approx(theirs[name]), (where, name, ours, theirs)


@pytest.fixture
def closed() -> Iterator[int]:
    """A port that refuses connections for the whole test (bound, never listening): a port
    that was merely free once can be taken by the exporter or the daemon started after."""
    with refused_port() as port:
        yield port


@pytest.fixture
def both(
    tmp_path: Path, blackbox_exporter: Callable[[dict[str, Any]], BlackboxExporter]
) -> Callable[[dict[str, Any]], Any]:
    """Start blackbox with ``modules`` and probed with the same module file."""
    started: list[Any] = []

    def start(modules: dict[str, Any]) -> tuple[BlackboxExporter, str]:
        bb = blackbox_exporter(modules)
        checks = tmp_path / "checks"
        checks.mkdir(exist_ok=True)
        context = start_daemon(checks, args=["--blackbox-config", str(bb.config)])
        daemon = context.__enter__()
        started.append(context)
        return bb, daemon.url

    yield start
    for context in started:
        context.__exit__(None, None, None)


def test_http_probes_agree_with_blackbox(
    both: Callable[[dict[str, Any]], tuple[BlackboxExporter, str]],
    web_servers: tuple[int, int],
    tls_files: TlsFiles,
    closed: int,
) -> None:
    plain, secure = web_servers
    bb, url = both(
        {
            "http_2xx": {"prober": "http", "timeout": "3s"},
            "http_no_redirect": {
                "prober": "http",
                "timeout": "3s",
                "http": {"follow_redirects": False},
            },
            "http_body": {
                "prober": "http",
                "timeout": "3s",
                "http": {"fail_if_body_not_matches_regexp": ["healthy"]},
            },
            "http_tls": {
                "prober": "http",
                "timeout": "3s",
                "http": {"tls_config": {"ca_file": tls_files.ca_file}, "fail_if_not_ssl": True},
            },
        }
    )
    _compare(
        bb,
        url,
        [
            ("http_2xx", f"http://127.0.0.1:{plain}/ok", True),
            ("http_2xx", f"127.0.0.1:{plain}/ok", True),
            ("http_2xx", f"http://127.0.0.1:{plain}/missing", False),
            ("http_2xx", f"http://127.0.0.1:{closed}/", False),
            ("http_2xx", f"http://127.0.0.1:{plain}/redirect", True),
            ("http_no_redirect", f"http://127.0.0.1:{plain}/redirect", False),
            ("http_body", f"http://127.0.0.1:{plain}/ok", True),
            ("http_body", f"http://127.0.0.1:{plain}/sick", False),
            ("http_tls", f"https://127.0.0.1:{secure}/ok", True),
            ("http_tls", f"http://127.0.0.1:{plain}/ok", False),
        ],
        HTTP,
    )
    ours = _probe(url, "http_tls", f"https://127.0.0.1:{secure}/ok")
    assert ours["probe_http_ssl"] == 1.0
    assert set(ours) >= TLS
    redirected = _probe(url, "http_2xx", f"http://127.0.0.1:{plain}/redirect")
    assert redirected["probe_http_redirects"] == 1.0
    regex = _probe(url, "http_body", f"http://127.0.0.1:{plain}/sick")
    assert regex["probe_failed_due_to_regex"] == 1.0


def test_tcp_probes_agree_with_blackbox(
    both: Callable[[dict[str, Any]], tuple[BlackboxExporter, str]],
    web_servers: tuple[int, int],
    banner: int,
    tls_files: TlsFiles,
    closed: int,
) -> None:
    plain, secure = web_servers
    bb, url = both(
        {
            "tcp_connect": {"prober": "tcp", "timeout": "2s"},
            "tcp_tls": {
                "prober": "tcp",
                "timeout": "2s",
                "tcp": {"tls": True, "tls_config": {"ca_file": tls_files.ca_file}},
            },
            "tcp_banner": {
                "prober": "tcp",
                "timeout": "2s",
                "tcp": {"query_response": [{"expect": "^HELLO"}]},
            },
        }
    )
    tcp = COMMON | {"probe_dns_lookup_time_seconds", "probe_failed_due_to_regex"}
    _compare(
        bb,
        url,
        [
            ("tcp_connect", f"127.0.0.1:{plain}", True),
            ("tcp_connect", f"127.0.0.1:{closed}", False),
            ("tcp_tls", f"127.0.0.1:{secure}", True),
            ("tcp_banner", f"127.0.0.1:{banner}", True),
        ],
        tcp | TLS,
    )
    assert set(_probe(url, "tcp_tls", f"127.0.0.1:{secure}")) >= TLS


def test_dns_icmp_and_grpc_probes_agree_with_blackbox(
    both: Callable[[dict[str, Any]], tuple[BlackboxExporter, str]],
    fake_dns: FakeDnsServer,
    grpc_servers: GrpcServers,
    closed: int,
) -> None:
    bb, url = both(
        {
            "dns_a": {
                "prober": "dns",
                "timeout": "2s",
                "dns": {"query_name": "ok.fake.test", "query_type": "A"},
            },
            "dns_tcp": {
                "prober": "dns",
                "timeout": "2s",
                "dns": {
                    "query_name": "ok.fake.test",
                    "query_type": "A",
                    "transport_protocol": "tcp",
                },
            },
            "icmp": {"prober": "icmp", "timeout": "2s"},
            "grpc_plain": {"prober": "grpc", "timeout": "2s", "grpc": {"tls": False}},
            "grpc_tls": {
                "prober": "grpc",
                "timeout": "2s",
                "grpc": {"tls": True, "tls_config": {"ca_file": grpc_servers.ca_file}},
            },
        }
    )
    dns = COMMON | {
        "probe_dns_answer_rrs",
        "probe_dns_authority_rrs",
        "probe_dns_additional_rrs",
        "probe_dns_lookup_time_seconds",
        "probe_dns_query_succeeded",
    }
    _compare(
        bb,
        url,
        [
            ("dns_a", f"127.0.0.1:{fake_dns.port}", True),
            ("dns_tcp", f"127.0.0.1:{fake_dns.port}", True),
            ("dns_tcp", f"127.0.0.1:{closed}", False),
        ],
        dns,
    )
    icmp = COMMON | {
        'probe_icmp_duration_seconds{phase="rtt"}',
        'probe_icmp_duration_seconds{phase="resolve"}',
    }
    _compare(bb, url, [("icmp", "127.0.0.1", True)], icmp)
    grpc = COMMON | {
        "probe_grpc_status_code",
        "probe_grpc_ssl",
        'probe_grpc_healthcheck_response{serving_status="SERVING"}',
        'probe_grpc_healthcheck_response{serving_status="NOT_SERVING"}',
    }
    _compare(
        bb,
        url,
        [
            ("grpc_plain", f"127.0.0.1:{grpc_servers.plain}", True),
            ("grpc_plain", f"127.0.0.1:{grpc_servers.down}", False),
            ("grpc_tls", f"127.0.0.1:{grpc_servers.tls}", True),
        ],
        grpc,
    )
    answer = _probe(url, "dns_a", f"127.0.0.1:{fake_dns.port}")
    assert answer["probe_dns_answer_rrs"] == 1.0
