"""A probed daemon running one check of every built-in type against real local servers, so
that the contrib tests can compare their PromQL with the series probed really exports."""

from __future__ import annotations

import http.server
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.contrib._daemon import Daemon, running_probed
from tests.servers._util import free_port, wait_until

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def https_server(context: ssl.SSLContext) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 answering 200 to every GET; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def every_type_checks(
    https_port: int, ca_file: str, dns_port: int, pg_dsn: str, pg_password: str, redis_url: str
) -> str:
    """A checks file with one check of every built-in type (one of them failing)."""
    return f"""
defaults:
  interval: 1s
  timeout: 900ms
  failure_threshold: 1
  labels: {{team: payments, tier: critical}}
checks:
  - name: live-http
    type: http
    url: https://127.0.0.1:{https_port}/
    tls: {{ca_file: {ca_file}}}
  - name: live-tcp
    type: tcp
    address: 127.0.0.1:{https_port}
  - name: live-closed
    type: tcp
    address: 127.0.0.1:{free_port()}
  - name: live-dns
    type: dns
    server: 127.0.0.1:{dns_port}
    query_name: ok.fake.test.
  - name: live-icmp
    type: icmp
    host: 127.0.0.1
    count: 2
    packet_interval: 100ms
    reply_timeout: 500ms
  - name: live-disk
    type: disk
    path: /
  - name: live-memory
    type: memory
  - name: live-cpu
    type: cpu
    window: 300ms
  - name: live-postgres
    type: postgres
    dsn: {pg_dsn}
    password: {pg_password}
  - name: live-redis
    type: redis
    url: {redis_url}
"""


def scrape(daemon: Daemon) -> str:
    status, body = daemon.get("/metrics")
    assert status == 200
    return body


def series_labels(exposition: str) -> dict[str, set[str]]:
    """Metric family name -> label names seen on its samples (histogram suffixes folded)."""
    families: dict[str, set[str]] = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            families.setdefault(line.split()[2], set())
            continue
        match = _SAMPLE_RE.match(line)
        if not match:
            continue
        name = match.group(1)
        for suffix in _HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in families:
                name = name[: -len(suffix)]
                break
        families.setdefault(name, set()).update(_LABEL_RE.findall(match.group(2) or ""))
    return families


def all_checks_ran(daemon: Daemon, names: list[str]) -> bool:
    body = scrape(daemon)
    ran = set(re.findall(r'probed_check_last_run_timestamp_seconds\{[^}]*check="([^"]+)"', body))
    return set(names) <= ran


@contextmanager
def probed_running_every_type(tmp_path: Path, checks: str) -> Iterator[Daemon]:
    """Start probed on ``checks`` and wait until every check has run at least once."""
    checks_dir = tmp_path / "checks.d"
    checks_dir.mkdir()
    (checks_dir / "live.yaml").write_text(checks)
    names = re.findall(r"- name: (\S+)", checks)
    with running_probed(checks_dir) as daemon:
        wait_until(lambda: all_checks_ran(daemon, names), timeout=30, what=f"first runs of {names}")
        yield daemon
