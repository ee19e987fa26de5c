"""A healthy probed as Prometheus stores it, written as promtool unit tests.

The alert rules are only meaningful if they stay quiet while every check passes, and that
depends on what a real scrape produces: samples exist only at scrape times, a gauge such as
``probed_check_last_run_timestamp_seconds`` holds the end of the latest run *before* that
scrape, counters grow run by run, and rules are evaluated at their own interval, at some
fixed phase after the scrape. Hand-written ``input_series`` with one sample per minute and
values equal to the sample time hide every mistake of that kind.

This module simulates a daemon whose checks all pass, at 5 s, 30 s and 60 s intervals, run by
probed's own scheduling (first run within the startup spread, then on the check's wall-clock
phase), scraped at contrib's scrape interval (contrib/prometheus/prometheus.yml) with the
job's static labels, and writes one promtool test group per offset between scrape and rule
evaluation. Each group expects no alert at every evaluation time (``exp_alerts: []``).

Used by tests/contrib/test_alerts_quiet.py; ``python -m tests.contrib._healthy_series DIR``
writes the files for a look by hand.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from probed.check import Status
from probed.metrics import LAG_BUCKETS
from probed.scheduler import phase_fraction
from probed.state import DURATION_BUCKETS
from tests.contrib._tools import PROMETHEUS, load_yaml

STARTUP_SPREAD: Final = 2.0  # probed's default (probed/settings.py)
LAG: Final = 0.002  # scheduler delay of every run, seconds
DAY: Final = 86400.0


def seconds(duration: str) -> int:
    """A Prometheus duration such as ``15s`` or ``1m`` in whole seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d)", duration):
        total += int(number) * units[unit]
    return int(total)


@dataclass(frozen=True)
class ScrapeConfig:
    """What contrib's Prometheus configuration says about scraping and evaluating probed."""

    scrape_interval: int
    evaluation_interval: int
    target_labels: dict[str, str]

    @classmethod
    def from_contrib(cls, path: Path = PROMETHEUS / "prometheus.yml") -> ScrapeConfig:
        config = load_yaml(path)
        glob = config.get("global", {})
        [job] = [s for s in config["scrape_configs"] if s["job_name"] == "probed"]
        interval = job.get("scrape_interval", glob.get("scrape_interval", "1m"))
        static = job["static_configs"][0]
        labels = {"job": "probed", "instance": static["targets"][0], **static.get("labels", {})}
        return cls(seconds(interval), seconds(glob.get("evaluation_interval", "1m")), labels)


@dataclass(frozen=True)
class SimCheck:
    """One passing check: its schedule, run time, phases and type-specific gauges."""

    name: str
    type: str
    interval: float
    timeout: float
    durations: tuple[float, ...]  # run times, used in turn
    phases: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    labeled: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    readiness: bool = True
    first_failure: str | None = None  # reason of a failed first run, if it failed

    def run_starts(self, until: float) -> Iterator[float]:
        """Start times of the runs due before ``until``, as probed's scheduler places them:
        the first within the startup spread, the second on the check's wall-clock phase at
        least half an interval later, then one per interval."""
        phase = phase_fraction(self.name)
        due = phase * min(STARTUP_SPREAD, self.interval)
        yield due + LAG
        offset = phase * self.interval
        after = due + self.interval / 2
        due = (math.floor((after - offset) / self.interval) + 1) * self.interval + offset
        while due < until:
            yield due + LAG
            due += self.interval


def healthy_checks(now: float = 0.0) -> tuple[SimCheck, ...]:
    """Checks of the common types at 5 s, 30 s and 60 s, all passing, some with a team label
    and some without. ``now`` is the simulated Unix time (certificate expiry is relative)."""
    https = {
        "probed_http_status_code": 200,
        "probed_http_content_length_bytes": 1234,
        "probed_http_redirects": 0,
        "probed_http_version": 1.1,
        "probed_tls_cert_expiry_timestamp_seconds": now + 75 * DAY,
    }
    return (
        SimCheck(
            "pg-app", "postgres", interval=5, timeout=4, durations=(0.012, 0.009, 0.015),
            phases={"connect": 0.006, "query": 0.003},
            values={"probed_postgres_rows": 1},
            labels={"team": "payments"},
            # Its first run was refused (the password was not mounted yet): a healthy daemon's
            # counters may hold old failures, which must not alert forever.
            first_failure="auth",
        ),
        SimCheck(
            "web-fast", "http", interval=5, timeout=4, durations=(0.031, 0.024, 0.048),
            phases={"resolve": 0.001, "connect": 0.002, "tls": 0.008, "processing": 0.015,
                    "transfer": 0.001},
            values=https, labels={"team": "web", "tier": "critical"},
        ),
        SimCheck(
            "db-port", "tcp", interval=5, timeout=2, durations=(0.002, 0.003),
            phases={"connect": 0.002},
        ),
        SimCheck(
            "cache", "redis", interval=30, timeout=5, durations=(0.004, 0.003),
            phases={"connect": 0.002, "ping": 0.0004},
            labeled={"probed_redis_info": {(("field", "connected_clients"),): 3}},
            labels={"team": "payments"},
        ),
        SimCheck(
            "gateway", "icmp", interval=30, timeout=10, durations=(2.004, 2.011),
            phases={"resolve": 0.0005},
            values={"probed_icmp_loss_ratio": 0, "probed_icmp_packets_sent": 3,
                    "probed_icmp_packets_received": 3},
            labeled={"probed_icmp_rtt_seconds": {(("stat", "avg"),): 0.0004}},
        ),
        SimCheck(
            "api-tls", "http", interval=60, timeout=10, durations=(0.080, 0.065),
            phases={"connect": 0.01, "tls": 0.03, "processing": 0.03},
            values=https, labels={"team": "web"},
        ),
        SimCheck(
            "root-disk", "disk", interval=60, timeout=10, durations=(0.0005,),
            values={"probed_disk_used_ratio": 0.41, "probed_disk_inodes_used_ratio": 0.07,
                    "probed_disk_free_bytes": 150e9, "probed_disk_size_bytes": 256e9},
        ),
        SimCheck(
            "memory", "memory", interval=60, timeout=10, durations=(0.0003,),
            values={"probed_memory_used_ratio": 0.52, "probed_swap_used_ratio": 0,
                    "probed_memory_total_bytes": 24e9, "probed_memory_available_bytes": 11.5e9},
        ),
        SimCheck(
            "cpu", "cpu", interval=60, timeout=10, durations=(1.001, 1.002),
            values={"probed_cpu_utilization_ratio": 0.23},
            labeled={"probed_cpu_load_per_core": {(("window", "1m"),): 0.4}},
        ),
        # The issue 9 types the rules read (each check adds ~35 series to promtool's work: the
        # websocket type is left out, no rule reads its series). An intermediate that expires
        # before the leaf, but 40 days away.
        SimCheck(
            "edge-chain", "tls", interval=60, timeout=10, durations=(0.021, 0.019),
            phases={"resolve": 0.001, "connect": 0.002, "tls": 0.015},
            values={"probed_tls_cert_expiry_timestamp_seconds": now + 40 * DAY,
                    "probed_tls_leaf_cert_expiry_timestamp_seconds": now + 75 * DAY,
                    "probed_tls_last_chain_expiry_timestamp_seconds": now + 40 * DAY},
            labeled={"probed_tls_version_info": {(("version", "TLS 1.3"),): 1},
                     "probed_tls_cipher_info": {(("cipher", "TLS_AES_256_GCM_SHA384"),): 1}},
            labels={"team": "web"},
        ),
        SimCheck(
            "ledger-grpc", "grpc", interval=30, timeout=5, durations=(0.006, 0.005),
            phases={"connect": 0.001, "rpc": 0.003},
            values={"probed_grpc_status_code": 0},
            labeled={"probed_grpc_healthcheck_response": {
                (("serving_status", status),): 1 if status == "SERVING" else 0
                for status in ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")}},
            labels={"team": "payments"},
        ),
        # A daily job: pinged two hours before the simulated window, due again in 22 h (+1 h
        # grace). The check runs every minute and only reads the pings.
        SimCheck(
            "nightly-backup", "heartbeat", interval=60, timeout=5, durations=(0.0002,),
            values={"probed_heartbeat_last_ping_timestamp_seconds": now - 2 * 3600,
                    "probed_heartbeat_last_start_timestamp_seconds": now - 2 * 3600 - 600,
                    "probed_heartbeat_last_run_duration_seconds": 600,
                    "probed_heartbeat_deadline_timestamp_seconds": now + 23 * 3600},
            labels={"team": "dba"},
        ),
        SimCheck(
            "raid-plugin", "exec", interval=60, timeout=10, durations=(0.035, 0.041),
            values={"probed_exec_exit_code": 0},
            labeled={"probed_exec_perfdata": {(("label", "degraded_disks"),): 0},
                     "probed_exec_perfdata_crit": {(("label", "degraded_disks"),): 1}},
        ),
    )  # fmt: skip


def _label_block(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _le(bound: float, python_client: bool) -> str:
    """An ``le`` label value as each exporter writes it: probed's own histograms with
    ``format(b, "g")``, prometheus_client's with a float (``1.0``)."""
    return repr(float(bound)) if python_client else format(bound, "g")


class Daemon:
    """The simulated daemon: every series a scrape of it returns, sample by sample."""

    def __init__(self, config: ScrapeConfig, checks: Sequence[SimCheck], until: float) -> None:
        self.config = config
        self.checks = checks
        self.until = until
        # (start, end, duration) of every run, per check, in order (runs never overlap)
        self.runs: dict[str, list[tuple[float, float, float]]] = {}
        for check in checks:
            runs = []
            for index, start in enumerate(check.run_starts(until)):
                duration = check.durations[index % len(check.durations)]
                assert duration < check.timeout < check.interval, check.name
                runs.append((start, start + duration, duration))
            self.runs[check.name] = runs
        self._starts = {name: [r[0] for r in runs] for name, runs in self.runs.items()}
        self._ends = {name: [r[1] for r in runs] for name, runs in self.runs.items()}
        # cumulative histogram counts and duration sums after the first n runs
        self._buckets: dict[str, list[list[int]]] = {}
        self._sums: dict[str, list[float]] = {}
        for name, runs in self.runs.items():
            durations = [r[2] for r in runs]
            self._buckets[name] = [
                [0, *itertools.accumulate(d <= bound for d in durations)]
                for bound in (*DURATION_BUCKETS, math.inf)
            ]
            self._sums[name] = [0.0, *itertools.accumulate(durations)]

    def scrape(self, at: float) -> dict[str, float]:
        """Series -> value of a scrape at ``at`` (runs that ended by then are counted)."""
        target = self.config.target_labels
        out: dict[str, float] = {f"up{_label_block(target)}": 1}
        started = 0
        for check in self.checks:
            ran = bisect.bisect_right(self._ends[check.name], at)
            started += bisect.bisect_right(self._starts[check.name], at)
            labels = {**target, "check": check.name, "type": check.type, **check.labels}
            out.update(self._check_series(check, labels, ran))
        out.update(self._daemon_series(target, started))
        return out

    def _check_series(
        self, check: SimCheck, labels: dict[str, str], ran: int
    ) -> Iterator[tuple[str, float]]:
        def series(name: str, value: float, **extra: str) -> tuple[str, float]:
            return f"{name}{_label_block({**labels, **extra})}", value

        failed = 1 if ran and check.first_failure else 0
        up = ran > failed  # failure_threshold (3) not reached: one ok run makes it up
        yield series("probed_check_up", 1 if up else 0)
        for status in Status:
            flag = status is (Status.OK if up else Status.UNKNOWN)
            yield series("probed_check_status", 1 if flag else 0, status=status.label)
        buckets = self._buckets[check.name]
        for index, bound in enumerate((*DURATION_BUCKETS, math.inf)):
            le = "+Inf" if bound == math.inf else _le(bound, python_client=False)
            yield series("probed_check_duration_seconds_bucket", buckets[index][ran], le=le)
        yield series("probed_check_duration_seconds_sum", self._sums[check.name][ran])
        yield series("probed_check_duration_seconds_count", ran)
        results = {Status.OK: ran - failed, Status.FAIL: failed}
        for status in Status:
            yield series("probed_check_runs_total", results.get(status, 0), result=status.label)
        if failed:  # probed creates a reason's series with its first failure
            yield series("probed_check_failures_total", failed, reason=str(check.first_failure))
        yield series("probed_check_state_changes_total", 1 if up else 0)
        yield series("probed_check_skipped_runs_total", 0)
        yield series("probed_check_interval_seconds", check.interval)
        yield series("probed_check_timeout_seconds", check.timeout)
        yield series("probed_check_readiness", 1 if check.readiness else 0)
        if not ran:
            return  # the series of the last run appear with the first one
        yield series("probed_check_success", 1 if up else 0)
        yield series("probed_check_last_run_timestamp_seconds", self._ends[check.name][ran - 1])
        for phase, took in check.phases.items():
            yield series("probed_check_phase_duration_seconds", took, phase=phase)
        for name, value in check.values.items():
            yield series(name, value)
        for name, samples in check.labeled.items():
            for pairs, value in samples.items():
                yield series(name, value, **dict(pairs))

    def _daemon_series(self, target: dict[str, str], started: int) -> Iterator[tuple[str, float]]:
        def series(name: str, value: float, **extra: str) -> tuple[str, float]:
            return f"{name}{_label_block({**target, **extra})}", value

        yield series("probed_build_info", 1, python="3.11.7", version="0.1.0")
        yield series("probed_config_last_reload_successful", 1)
        yield series("probed_config_last_reload_success_timestamp_seconds", 0.3)
        yield series("probed_config_errors", 0)
        for bound in (*LAG_BUCKETS, math.inf):
            le = "+Inf" if bound == math.inf else _le(bound, python_client=True)
            yield series(
                "probed_scheduler_lag_seconds_bucket", started if bound >= LAG else 0, le=le
            )
        yield series("probed_scheduler_lag_seconds_sum", started * LAG)
        yield series("probed_scheduler_lag_seconds_count", started)
        yield series("probed_scheduler_running_checks", 0)
        yield series("probed_scheduler_queued_checks", 0)
        for kind in sorted({c.type for c in self.checks}):
            yield series(
                "probed_checks_configured", sum(c.type == kind for c in self.checks), type=kind
            )
        yield series("probed_health_ready", 1)
        yield series("probed_health_started", 1)


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def input_series(daemon: Daemon, scrapes: Sequence[int]) -> list[dict[str, str]]:
    """promtool ``input_series`` at a 1 s interval: one sample per scrape, gaps between."""
    samples: dict[str, list[tuple[int, float]]] = {}
    for at in scrapes:
        for name, value in daemon.scrape(at).items():
            samples.setdefault(name, []).append((at, value))
    out = []
    for name, points in samples.items():
        parts: list[str] = []
        previous = -1
        for at, value in points:
            gap = at - previous - 1
            if gap:
                parts.append(f"_x{gap}")
            parts.append(_number(value))
            previous = at
        out.append({"series": name, "values": " ".join(parts)})
    return out


def alert_names(rule_files: Iterable[Path]) -> list[str]:
    """Every alert defined in ``rule_files``, in file order."""
    names: list[str] = []
    for path in rule_files:
        for group in load_yaml(path)["groups"]:
            names.extend(r["alert"] for r in group["rules"] if "alert" in r)
    return names


def offset_for(lag: int, config: ScrapeConfig) -> int:
    """The offset of scrapes (past multiples of the scrape interval) that puts promtool's
    evaluations, at 0, interval, 2 * interval, ..., ``lag`` seconds after a scrape."""
    return -lag % config.scrape_interval


def lag_instance(lag: int) -> str:
    """The ``instance`` of the simulated daemon whose scrapes come ``lag`` s before each
    evaluation."""
    return f"probed-lag{lag}s:9333"


def unit_tests(
    rule_files: Sequence[Path],
    *,
    lags: Sequence[int],
    minutes: int = 40,
    config: ScrapeConfig | None = None,
) -> dict[str, Any]:
    """A promtool test file with one healthy daemon per evaluation lag (seconds from its
    scrape to each rule evaluation; ``instance`` says which, see :func:`lag_instance`), as
    one Prometheus scraping several daemons at different phases. Its series span ``minutes``;
    every alert expects ``exp_alerts: []`` at every evaluation after the first scrapes (before
    them ``absent(up)`` is rightly true)."""
    config = config or ScrapeConfig.from_contrib()
    until = minutes * 60
    series: list[dict[str, str]] = []
    first_scrapes = []
    for lag in lags:
        offset = offset_for(lag, config)
        labels = {**config.target_labels, "instance": lag_instance(lag)}
        daemon = Daemon(replace(config, target_labels=labels), healthy_checks(), until)
        # Prometheus found the daemon already running: its first scrape comes one scrape
        # interval (plus the offset) after the daemon started, when every check has run once.
        scrapes = list(range(offset + config.scrape_interval, until + 1, config.scrape_interval))
        # The same lag at every evaluation (the evaluation interval is a multiple of the
        # scrape interval), as in a real Prometheus, where both run at fixed offsets.
        assert {
            (t - offset) % config.scrape_interval
            for t in range(0, until, config.evaluation_interval)
        } == {lag}
        series.extend(input_series(daemon, scrapes))
        first_scrapes.append(scrapes[0])
    first_eval = math.ceil(max(first_scrapes) / config.evaluation_interval)
    evals = range(first_eval * config.evaluation_interval, until + 1, config.evaluation_interval)
    test = {
        "name": f"healthy daemons, rules evaluated {', '.join(map(str, lags))}s after scrapes",
        "interval": "1s",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": f"{t}s", "alertname": name, "exp_alerts": []}
            for t in evals
            for name in alert_names(rule_files)
        ],
    }
    return {
        "rule_files": [str(p) for p in rule_files],
        "evaluation_interval": f"{config.evaluation_interval}s",
        "tests": [test],
    }


def series_families(tests: dict[str, Any]) -> dict[str, set[str]]:
    """Metric name -> label names, over every input series of a generated test file."""
    families: dict[str, set[str]] = {}
    for test in tests["tests"]:
        for item in test["input_series"]:
            name, _, labels = item["series"].partition("{")
            families.setdefault(name, set()).update(re.findall(r'(\w+)="', labels))
    return families


def write(path: Path, tests: dict[str, Any]) -> Path:
    """Write a generated test file. As JSON, which is YAML too, and many times faster to
    write than PyYAML's emitter for the megabytes of series involved."""
    path.write_text(json.dumps(tests, indent=1))
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    rules = sorted((PROMETHEUS / "rules").glob("*.rules.yml"))
    write(out / "healthy.test.yml", unit_tests(rules, lags=range(15)))
