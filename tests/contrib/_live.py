"""Live harnesses for the contrib tests: a probed daemon running one check of every built-in
type against real local servers (so the contrib PromQL can be compared with the series probed
really exports), HTTP(S) servers for its checks, and a real Prometheus server (Debian's) with
its HTTP API."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import re
import ssl
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.contrib._daemon import Daemon, running_probed
from tests.servers._util import free_port, require_binary, wait_until

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
def https_server(context: ssl.SSLContext | None) -> Iterator[int]:
    """An HTTPS server (plain HTTP when ``context`` is None) on 127.0.0.1 answering 200 to
    every GET; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


HEARTBEAT_CHECK = "live-heartbeat"
HEARTBEAT_TOKEN = "live-heartbeat-t0ken-2f8e1c"


def every_type_checks(
    https_port: int,
    ca_file: str,
    dns_port: int,
    pg_dsn: str,
    pg_password: str,
    redis_url: str,
    *,
    grpc_port: int | None = None,
) -> str:
    """A checks file with one check of every built-in type (two of them failing: a closed TCP
    port, and a gRPC service that is NOT_SERVING, on ``grpc_port`` when given). The heartbeat
    check expects a ping with :data:`HEARTBEAT_TOKEN` (see :func:`ping`)."""
    grpc = (
        f"""
  - name: live-grpc
    type: grpc
    address: 127.0.0.1:{grpc_port}
    service: probed.test.NotServing
"""
        if grpc_port is not None
        else ""
    )
    return (
        f"""
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
  - name: live-tls
    type: tls
    address: 127.0.0.1:{https_port}
    ca_file: {ca_file}
  - name: live-exec
    type: exec
    command: [/bin/echo, "OK - array clean | degraded_disks=0;;1;0"]
  - name: {HEARTBEAT_CHECK}
    type: heartbeat
    token: {HEARTBEAT_TOKEN}
    period: 1h
"""
        + grpc
    )


def ping(daemon: Daemon, check: str = HEARTBEAT_CHECK, token: str = HEARTBEAT_TOKEN) -> None:
    """A success ping to heartbeat ``check``, as a job would send it."""
    request = urllib.request.Request(
        f"{daemon.url}/ping/{check}",
        data=b"backup done",
        headers={"Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


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


# --- Prometheus -------------------------------------------------------------------------------


def rfc3339(value: str) -> float:
    """Unix time of a timestamp in Prometheus' API (nanoseconds cut to microseconds)."""
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(value).timestamp()


class Prometheus:
    """A running Prometheus server, read through its HTTP API."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def api(self, path: str, **params: str | float) -> Any:
        """``data`` of a GET on ``/api/v1/<path>``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active (pending or firing) alerts."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def state(self, alertname: str, check: str) -> str | None:
        for alert in self.alerts():
            labels = alert["labels"]
            if labels["alertname"] == alertname and labels.get("check") == check:
                return str(alert["state"])
        return None

    def targets(self, job: str) -> list[dict[str, Any]]:
        return [t for t in self.api("targets")["activeTargets"] if t["labels"]["job"] == job]

    def target_up(self, job: str = "probed") -> bool:
        return any(t["health"] == "up" for t in self.targets(job))

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant vector result of ``expr`` (now, or at Unix time ``at``)."""
        params: dict[str, str | float] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self.api("query", **params)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        result: list[dict[str, Any]] = data["result"]
        return result

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@contextmanager
def running_prometheus(
    tmp_path: Path, config: Callable[[str], dict[str, Any]]
) -> Iterator[Prometheus]:
    """Run Debian's ``prometheus`` on a loopback port with ``config(listen_address)``."""
    binary = require_binary("prometheus", "apt-get install prometheus")
    address = f"127.0.0.1:{free_port()}"
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config(address), sort_keys=False))
    url = f"http://{address}"
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={address}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: proc.poll() is not None or _ready(url), timeout=30, what="Prometheus")
        assert proc.poll() is None, f"prometheus exited: {log_path.read_text()}"
        yield Prometheus(url, log_path)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
