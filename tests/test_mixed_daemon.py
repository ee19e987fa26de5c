"""One daemon, one check of every type, half of them against dead or silent targets.

The healthy checks must keep their schedule: no skipped runs and no gap between consecutive
runs much longer than their interval, while the dead ones fail with the right reasons.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed import Result, Status, hookimpl
from probed.spec import CheckSpec
from tests.harness import running_daemon, wait_for, write
from tests.servers._util import free_port

ROOT = Path(__file__).parent.parent
INTERVAL = 0.4
HEALTHY = ("redis-ok", "dns-ok", "icmp-ok", "disk-ok", "memory-ok", "cpu-ok", "backup-ok")
DEAD = {
    "http-dead": "connection_refused",
    "json-silent": "timeout",
    "tcp-dead": "connection_refused",
    "pg-dead": "connection_refused",
    "dns-silent": "timeout",
}


class Timeline:
    """Records when each run of each check finished."""

    def __init__(self) -> None:
        self.ends: dict[str, list[float]] = {}
        self.results: dict[str, Result] = {}

    @hookimpl
    def probed_check_result(self, spec: CheckSpec, result: Result) -> None:
        self.ends.setdefault(spec.name, []).append(time.monotonic())
        self.results[spec.name] = result


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP listener that accepts and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


def write_every_type(
    tmp_path: Path,
    redis_server,
    dnsmasq,
    fake_dns,
    silent_port: int,  # type: ignore[no-untyped-def]
) -> Path:
    """A checks directory with one check of every type; the DEAD ones point at dead targets."""
    fake_dns.mode = "silent"
    backup = tmp_path / "backups" / "db.dump"
    backup.parent.mkdir()
    backup.write_bytes(b"x" * 100)
    timeout = "300ms"
    write(
        tmp_path / "checks" / "all.yaml",
        f"""
        defaults:
          interval: {int(INTERVAL * 1000)}ms
          timeout: {timeout}
          failure_threshold: 1
        checks:
          - {{name: redis-ok, type: redis, url: "{redis_server.url()}"}}
          - {{name: dns-ok, type: dns, query_name: ok.probed.test, server: "{dnsmasq.server}"}}
          - {{name: icmp-ok, type: icmp, host: 127.0.0.1, count: 1, reply_timeout: 200ms}}
          - {{name: disk-ok, type: disk, path: /, warn_used_percent: null, fail_used_percent: null,
              warn_inodes_used_percent: null, fail_inodes_used_percent: null}}
          - {{name: memory-ok, type: memory, warn_used_percent: null, fail_used_percent: null}}
          - {{name: cpu-ok, type: cpu, window: 100ms, warn_used_percent: null,
              warn_load_per_core: null, fail_load_per_core: null}}
          - {{name: backup-ok, type: file_age, path: "{backup}", max_age: 1h}}
          - {{name: http-dead, type: http, url: "http://127.0.0.1:{free_port()}/"}}
          - {{name: json-silent, type: json_api, url: "http://127.0.0.1:{silent_port}/health"}}
          - {{name: tcp-dead, type: tcp, address: "127.0.0.1:{free_port()}"}}
          - {{name: pg-dead, type: postgres,
              dsn: "postgresql://probe:pw@127.0.0.1:{free_port()}/postgres"}}
          - {{name: dns-silent, type: dns, query_name: ok.probed.test,
              server: "127.0.0.1:{fake_dns.port}"}}
        """,
    )
    return tmp_path / "checks"


async def test_dead_targets_do_not_disturb_healthy_checks(
    tmp_path: Path,
    redis_server,
    dnsmasq,
    fake_dns,
    silent_port: int,  # type: ignore[no-untyped-def]
) -> None:
    write_every_type(tmp_path, redis_server, dnsmasq, fake_dns, silent_port)
    timeline = Timeline()
    async with running_daemon(
        tmp_path / "checks",
        plugins=[("timeline", timeline)],
        plugins_dirs=[ROOT / "plugins"],
        startup_spread=0.2,
    ) as r:
        assert not r.daemon.errors, [str(e) for e in r.daemon.errors]
        assert len(r.daemon.jobs) == 12
        types = {job.spec.type for job in r.daemon.jobs.values()}
        assert types == {
            "redis", "dns", "icmp", "disk", "memory", "cpu", "file_age", "http", "json_api",
            "tcp", "postgres",
        }  # fmt: skip
        await wait_for(
            lambda: all(len(timeline.ends.get(n, ())) >= 8 for n in (*HEALTHY, *DEAD)),
            30,
            "8 runs of every check",
        )
        for name in HEALTHY:
            state = r.state(name)
            assert state.status in (Status.OK, Status.WARN), (name, state.last)
            assert state.skipped_runs == 0, name
            ends = timeline.ends[name][1:]  # the first run comes early, within startup_spread
            gaps = [b - a for a, b in itertools.pairwise(ends)]
            # Runs keep a fixed-rate schedule, so the median gap is the interval. The margins
            # hold on a loaded 2-CPU machine (a late run lengthens one gap and shortens the
            # next; one stall may miss a slot) but not when a healthy check waits behind the
            # dead ones' timeouts: then it misses slots all along (median >= 2 intervals).
            assert 0.5 * INTERVAL < statistics.median(gaps) < 1.5 * INTERVAL, (name, gaps)
            assert max(gaps) < 3 * INTERVAL, (name, gaps)
        for name, reason in DEAD.items():
            last = timeline.results[name]
            assert last.status is Status.FAIL, (name, last)
            assert last.reason == reason, (name, last)
        _, metrics, _ = await r.get("/metrics")
        up = {
            s.labels["check"]
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "probed_check_up" and s.value == 1
        }
        assert up == set(HEALTHY)
        failures = {
            (s.labels["check"], s.labels["reason"])
            for family in text_string_to_metric_families(metrics)
            for s in family.samples
            if s.name == "probed_check_failures_total" and s.labels["check"] in DEAD
        }
        assert failures >= set(DEAD.items())


def test_probed_once_and_validate_run_every_type(
    tmp_path: Path,
    redis_server,
    dnsmasq,
    fake_dns,
    silent_port: int,  # type: ignore[no-untyped-def]
) -> None:
    checks = write_every_type(tmp_path, redis_server, dnsmasq, fake_dns, silent_port)
    base = [sys.executable, "-m", "probed"]
    common = ["--checks-dir", str(checks), "--plugins-dir", str(ROOT / "plugins")]
    valid = subprocess.run([*base, "validate", *common], capture_output=True, text=True)
    assert valid.returncode == 0, valid.stderr
    once = subprocess.run(
        [*base, "once", *common, "--format", "json"], capture_output=True, text=True, timeout=60
    )
    assert once.returncode == 2, once.stderr
    outcome = {c["name"]: (c["type"], c["status"], c["reason"]) for c in json.loads(once.stdout)}
    for name in HEALTHY:
        assert outcome[name][1] in ("ok", "warn"), outcome[name]
    for name, reason in DEAD.items():
        assert outcome[name][1:] == ("fail", reason), outcome[name]
    assert len({t for t, _, _ in outcome.values()}) == 11
