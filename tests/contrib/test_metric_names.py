"""Every series the contrib PromQL reads (alert and recording rules, dashboard panels and
variables) is one that probed really exports, with the labels the expressions select on.

The reference is not a hand-written list: a live daemon runs one check of every built-in type
against real local servers (HTTPS with a trustme certificate, DNS, ICMP on loopback,
PostgreSQL, Redis, host checks, a refused TCP port) and its /metrics is read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.contrib._live import (
    every_type_checks,
    https_server,
    ping,
    probed_running_every_type,
    scrape,
    series_labels,
)
from tests.contrib._tools import (
    DASHBOARDS,
    alert_rules,
    dashboard_promql,
    family_of,
    grafana_to_promql,
    metric_names,
    recording_rules,
)
from tests.servers._util import wait_until
from tests.servers.dns import FakeDnsServer
from tests.servers.grpc import GrpcServers
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer
from tests.servers.tls import TlsFiles

# Labels Prometheus adds or computes, not probed: target labels and histogram buckets.
_NOT_FROM_PROBED = {"job", "instance", "le", "__name__"}
# Labels probed sets only in a mode the reference daemon does not run in: `replica` on every
# series of a check when replicas.redundancy > 1 (tests/test_replicas.py shows it there).
_MODE_LABELS = {"replica"}
_SELECTOR_RE = re.compile(r"\b(probed_[a-z0-9_]+|process_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER_RE = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")


def _contrib_promql() -> list[tuple[str, str]]:
    exprs = [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    exprs += [(f"record {r['record']}", r["expr"]) for r in recording_rules()]
    for path in DASHBOARDS:
        exprs += [(where, grafana_to_promql(expr)) for where, expr in dashboard_promql(path)]
    return exprs


@pytest.fixture
def exported(
    tmp_path: Path,
    tls_files: TlsFiles,
    fake_dns: FakeDnsServer,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    grpc_servers: GrpcServers,
) -> dict[str, set[str]]:
    with https_server(tls_files.server_context()) as port:
        checks = every_type_checks(
            port, tls_files.ca_file, fake_dns.port, postgres_server.dsn_without_password(),
            postgres_server.password, redis_server.url(), grpc_port=grpc_servers.plain,
        )  # fmt: skip
        with probed_running_every_type(tmp_path, checks) as daemon:
            # A heartbeat's last-ping series appears with its first ping.
            ping(daemon)
            wait_until(
                lambda: "probed_heartbeat_last_ping_timestamp_seconds{" in scrape(daemon),
                timeout=10,
                what="the heartbeat ping in /metrics",
            )
            return series_labels(scrape(daemon))


def test_contrib_promql_reads_only_series_probed_exports(exported: dict[str, set[str]]) -> None:
    missing: dict[str, list[str]] = {}
    for where, expr in _contrib_promql():
        for name in metric_names(expr):
            if family_of(name, exported) is None:
                missing.setdefault(name, []).append(where)
    assert missing == {}, "series used in contrib/ that probed does not export"


def test_contrib_promql_selects_only_labels_probed_sets(exported: dict[str, set[str]]) -> None:
    wrong = []
    for where, expr in _contrib_promql():
        for name, matchers in _SELECTOR_RE.findall(expr):
            family = family_of(name, exported)
            for label in set(_MATCHER_RE.findall(matchers)) - _NOT_FROM_PROBED - _MODE_LABELS:
                if family is not None and label not in exported[family]:
                    wrong.append(f"{where}: {name} has no label {label!r}")
    assert wrong == []


def test_reference_daemon_exported_type_specific_series(exported: dict[str, set[str]]) -> None:
    """Guard against a vacuous pass: the live daemon did run checks of every type."""
    for name in (
        "probed_http_status_code",
        "probed_tls_cert_expiry_timestamp_seconds",
        "probed_dns_answer_count",
        "probed_icmp_rtt_seconds",
        "probed_disk_used_ratio",
        "probed_memory_used_ratio",
        "probed_cpu_utilization_ratio",
        "probed_check_failures_total",
        "probed_check_phase_duration_seconds",
        "probed_tls_leaf_cert_expiry_timestamp_seconds",
        "probed_grpc_healthcheck_response",
        "probed_heartbeat_deadline_timestamp_seconds",
        "probed_heartbeat_last_ping_timestamp_seconds",
        "probed_exec_perfdata",
    ):
        assert name in exported, name
    assert {"check", "type", "team", "tier"} <= exported["probed_check_up"]
