"""A real Prometheus with contrib's configuration, scraping a healthy probed for five minutes,
shows no pending or firing alert. Takes about six minutes, by nature.

Prometheus (Debian's) runs contrib/prometheus/prometheus.yml as shipped: its global
evaluation interval, the probed job's scrape interval and timeout, its static labels and
the shipped rule files (every group, its own intervals). Only the addresses change: the probed
target becomes the daemon on loopback, the self-scrape target Prometheus' own port, the
Alertmanager an unused loopback port. probed runs checks that all pass, at 5 s, 30 s and 60 s
intervals, against servers on loopback: TCP and HTTP on a local server, HTTPS with a
certificate valid for 90 days, PostgreSQL and Redis.

The five minutes start once Prometheus has scraped the daemon and evaluated every alerting
group after that scrape. Throughout them /api/v1/alerts is polled every two seconds: any
pending or firing alert fails the test. So that it cannot pass vacuously, it then checks that
every rule evaluated without error and recently, that the target was up at every scrape of
the window, and that Prometheus saw each check run at its interval.

Host checks (disk, memory, cpu) are left out: their alerts follow the machine's real state.
They are covered with the other alerts on simulated series by test_alerts_quiet.py.

The six minutes run beside the rest of the suite: tests/conftest.py puts
``test_simulated_series_match_a_real_scrape`` first in the session, its session-scoped
``quiet_window`` fixture starts the daemon, Prometheus and a thread that settles and watches
the window, and ``test_real_prometheus_shows_no_alert_for_a_healthy_daemon``, placed last,
joins that thread and asserts on what it saw. So the window is watched while the machine is
busy with every other test: a healthy daemon on a loaded machine must raise no alert either.
Run alone, the last test simply waits for its window.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.contrib import _healthy_series as healthy
from tests.contrib._daemon import Daemon
from tests.contrib._live import (
    Prometheus,
    https_server,
    probed_running_every_type,
    rfc3339,
    running_prometheus,
    scrape,
    series_labels,
)
from tests.contrib._tools import PROMETHEUS, family_of, load_yaml
from tests.servers._util import free_port, wait_until
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer
from tests.servers.tls import TlsFiles

WINDOW = 300.0
POLL = 2.0
# name -> interval (s)
INTERVALS = {
    "pg-app": 5, "web-tcp": 5, "web-http": 5,
    "cache": 30, "web-https": 30,
    "api-tcp": 60, "api-https": 60,
}  # fmt: skip


def _checks(http_port: int, https_port: int, ca_file: str, pg: PostgresServer, redis: str) -> str:
    return f"""
checks:
  - name: pg-app
    type: postgres
    interval: 5s
    dsn: {pg.dsn_without_password()}
    password: {pg.password}
    labels: {{team: payments}}
  - name: web-tcp
    type: tcp
    interval: 5s
    address: 127.0.0.1:{http_port}
  - name: web-http
    type: http
    interval: 5s
    url: http://127.0.0.1:{http_port}/
    labels: {{team: web, tier: critical}}
  - name: cache
    type: redis
    interval: 30s
    url: {redis}
    info_fields: {{connected_clients: null}}
    labels: {{team: payments}}
  - name: web-https
    type: http
    interval: 30s
    url: https://127.0.0.1:{https_port}/
    tls: {{ca_file: {ca_file}}}
    labels: {{team: web}}
  - name: api-tcp
    type: tcp
    interval: 60s
    address: 127.0.0.1:{https_port}
  - name: api-https
    type: http
    interval: 60s
    url: https://127.0.0.1:{https_port}/health
    tls: {{ca_file: {ca_file}}}
"""


@pytest.fixture(scope="session")
def daemon(
    tmp_path_factory: pytest.TempPathFactory,
    tls_files: TlsFiles,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Daemon]:
    tmp_path = tmp_path_factory.mktemp("quiet")
    not_after = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
    with (
        https_server(None) as http_port,
        https_server(tls_files.server_context(not_after=not_after)) as https_port,
    ):
        checks = _checks(
            http_port, https_port, tls_files.ca_file, postgres_server, redis_server.url()
        )
        assert set(INTERVALS) == set(re.findall(r"- name: (\S+)", checks))
        with probed_running_every_type(tmp_path, checks) as running:
            yield running


def _contrib_config(daemon: Daemon, address: str) -> dict[str, Any]:
    """contrib/prometheus/prometheus.yml with only its addresses moved to loopback."""
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    config["rule_files"] = [str(PROMETHEUS / pattern) for pattern in config["rule_files"]]
    unused = f"127.0.0.1:{free_port()}"
    for alertmanager in config["alerting"]["alertmanagers"]:
        alertmanager["static_configs"] = [{"targets": [unused]}]
    for job in config["scrape_configs"]:
        target = daemon.url.split("//")[1] if job["job_name"] == "probed" else address
        for static in job["static_configs"]:
            static["targets"] = [target]
    return dict(config)


def _active(prometheus: Prometheus) -> list[str]:
    """Pending or firing alerts, as /api/v1/alerts and /api/v1/rules both report them, and
    rules whose evaluation failed."""
    active = {
        f"{a['state']} {a['labels']['alertname']} {a['labels'].get('check', '')}".strip()
        for a in prometheus.alerts()
    }
    for group in prometheus.rule_groups():
        for rule in group["rules"]:
            if rule["type"] == "alerting" and rule["state"] != "inactive":
                active.update(
                    f"{rule['state']} {rule['name']} {a['labels'].get('check', '')}".strip()
                    for a in rule["alerts"]
                )
            if rule["health"] == "err":
                active.add(f"error {rule['name']}: {rule['lastError']}")
    return sorted(active)


def _alerting_groups(prometheus: Prometheus) -> list[dict[str, Any]]:
    return [g for g in prometheus.rule_groups() if any(r["type"] == "alerting" for r in g["rules"])]


def test_simulated_series_match_a_real_scrape(daemon: Daemon, quiet_window: QuietWindow) -> None:
    """The series test_alerts_quiet.py simulates have the names and labels of a real scrape
    (for the families of the check types running here and the daemon's own).

    Run first in the session (tests/conftest.py): it also starts the quiet window."""
    real = series_labels(scrape(daemon))
    running_types = {"postgres", "http", "tcp", "redis"}
    sim_checks = [c for c in healthy.healthy_checks() if c.type in running_types]
    config = healthy.ScrapeConfig.from_contrib()
    sim = healthy.Daemon(config, sim_checks, until=120).scrape(60)
    added = set(config.target_labels)  # by Prometheus: job, instance and the static labels
    own = {"team", "tier"}  # the checks' own labels, different here and there
    families: dict[str, set[str]] = {}  # histogram series folded into their family
    for key in sim:
        name, _, block = key.partition("{")
        if name == "up":
            continue
        family = family_of(name, real)
        assert family is not None, f"{name} is not in a real scrape"
        families.setdefault(family, set()).update(re.findall(r'(\w+)="', block))
    for family, names in families.items():
        if real[family]:  # no sample here (probed_check_failures_total of passing checks)
            assert names - added - own == real[family] - own, family
    assert len(families) >= 20


@dataclass
class QuietWindow:
    """What the watcher thread saw: settling alerts, then every alert active in the window."""

    prometheus: Prometheus
    settling: set[str] = field(default_factory=set)
    seen: dict[str, float] = field(default_factory=dict)
    polls: int = 0
    start: float = 0.0
    end: float = 0.0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, evaluation: float) -> None:
        """Settle, then sample the window (runs in a thread; errors are kept for the test)."""
        prom = self.prometheus
        try:
            # Settle: the first scrape, then an evaluation of every alerting group after it.
            # Before the first scrape absent(up{job="probed"}) is rightly true: ProbedAbsent
            # may be pending then, and nothing else can be.
            def scraped() -> bool:
                self.settling.update(_active(prom))
                return prom.target_up()

            wait_until(scraped, timeout=60, what="Prometheus scraping probed")
            [target] = prom.targets("probed")
            first_scrape = rfc3339(target["lastScrape"])

            def evaluated_after_scrape() -> bool:
                self.settling.update(_active(prom))
                groups = _alerting_groups(prom)
                return all(rfc3339(g["lastEvaluation"]) > first_scrape for g in groups)

            wait_until(evaluated_after_scrape, timeout=3 * evaluation, what="rules evaluated")
            # The window: any pending or firing alert fails.
            self.start = time.time()
            while time.time() - self.start < WINDOW and not self.stop.is_set():
                for alert in _active(prom):
                    self.seen.setdefault(alert, time.time() - self.start)
                self.polls += 1
                self.stop.wait(POLL)  # sampling a fixed window, not waiting for an event
            self.end = time.time()
        except BaseException as exc:  # reported by the test that joins
            self.error = exc
        finally:
            self.done.set()


@pytest.fixture(scope="session")
def quiet_window(tmp_path_factory: pytest.TempPathFactory, daemon: Daemon) -> Iterator[QuietWindow]:
    """Prometheus on contrib's configuration, and a thread watching its alerts for the window.

    Starts at once and returns: the window runs while the rest of the session does.
    """
    tmp_path = tmp_path_factory.mktemp("quiet-prometheus")
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    evaluation = healthy.seconds(config["global"]["evaluation_interval"])
    with running_prometheus(tmp_path, lambda address: _contrib_config(daemon, address)) as prom:
        window = QuietWindow(prom)
        thread = threading.Thread(
            target=window.watch, args=(evaluation,), name="quiet-window", daemon=True
        )
        thread.start()
        yield window
        window.stop.set()  # the session ends early (-x, a deselected test): stop watching
        thread.join()


@pytest.mark.timeout(480)
def test_real_prometheus_shows_no_alert_for_a_healthy_daemon(
    daemon: Daemon, quiet_window: QuietWindow
) -> None:
    assert quiet_window.done.wait(timeout=WINDOW + 150), "the window watcher did not finish"
    if quiet_window.error is not None:
        raise quiet_window.error
    prom, start, end = quiet_window.prometheus, quiet_window.start, quiet_window.end
    settling = quiet_window.settling
    assert {a.split()[1] for a in settling} <= {"ProbedAbsent"}, settling
    seen = quiet_window.seen
    assert seen == {}, f"alerts active during the window (s after start): {seen}"
    assert quiet_window.polls >= WINDOW / POLL / 2

    # Not vacuous: every rule evaluated, without error, recently.
    for group in prom.rule_groups():
        interval = float(group["interval"])
        last = rfc3339(group["lastEvaluation"])
        assert last > start and end - last <= interval + 5, group["name"]
        for rule in group["rules"]:
            assert rule["health"] == "ok", (group["name"], rule["name"], rule["lastError"])
            if rule["type"] == "alerting":
                assert rule["state"] == "inactive", rule["name"]
    names = {r["name"] for g in _alerting_groups(prom) for r in g["rules"]}
    assert len(names) >= 25
    # The target was up at every scrape of the window, scraped at contrib's interval.
    window = f"[{int(WINDOW)}s]"
    [scrapes] = prom.query(f'count_over_time(up{{job="probed"}}{window})', at=end)
    [lowest] = prom.query(f'min_over_time(up{{job="probed"}}{window})', at=end)
    assert float(lowest["value"][1]) == 1
    assert float(scrapes["value"][1]) >= WINDOW / 15 - 2
    # Prometheus saw each check run at its interval.
    ran = prom.query(f'increase(probed_check_runs_total{{result="ok"}}{window})', at=end)
    runs = {r["metric"]["check"]: float(r["value"][1]) for r in ran}
    assert set(runs) == set(INTERVALS)
    for check, count in runs.items():
        assert count == pytest.approx(WINDOW / INTERVALS[check], rel=0.3), (check, count)
    # The age of the last run as the rule measures it, at every second of the window:
    # under two intervals (interval + timeout), far from the alert's 3 intervals + 10 s.
    # (Up to 20 s before the end, so that the comparison below has each scrape's next
    # 15 s inside the window.)
    age = "timestamp({0}) - {0}".format("probed_check_last_run_timestamp_seconds")
    oldest = prom.query(f"max_over_time(({age})[{int(WINDOW) - 20}s:1s])", at=end - 20)
    assert {r["metric"]["check"] for r in oldest} == set(INTERVALS)
    for result in oldest:
        check = result["metric"]["check"]
        assert float(result["value"][1]) < 2 * INTERVALS[check], result
    # contrib/loki/rules count probed's log lines (Loki itself is not run here): on this
    # daemon's log none of their conditions holds. One state change per check (unknown
    # to ok at its first run), none to fail, no error.
    records = daemon.log_records()
    changes = Counter(r["check"] for r in records if r.get("event") == "check_state_changed")
    assert changes == Counter(INTERVALS.keys()), changes
    assert [r for r in records if r.get("level") == "error"] == []
    # The age as the old rule measured it, `time() - last run` at evaluation time, adds
    # the age of the sample itself: up to a scrape interval more (nearly 15 s at 1 s
    # resolution), which made the healthy 5 s checks cross 3 intervals.
    old = prom.query(
        f"max_over_time((time() - probed_check_last_run_timestamp_seconds){window[:-1]}:1s])",
        at=end,
    )
    at_scrape = {r["metric"]["check"]: float(r["value"][1]) for r in oldest}
    at_evaluation = {r["metric"]["check"]: float(r["value"][1]) for r in old}
    print("max age of the last run, at the scrape:", at_scrape, "at evaluation:", at_evaluation)
    for check, age_at_scrape in at_scrape.items():
        assert at_evaluation[check] >= age_at_scrape + 10, (check, at_evaluation)
