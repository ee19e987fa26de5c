"""The real Prometheus server (Debian's) scrapes a live probed with a failing check, evaluates
the contrib alert rules, and the check-down alerts go pending, then firing.

The rules are the shipped ones with one change: their `for:` windows (1-2 minutes) are
shortened to a few seconds in a test-time copy, so the test takes seconds. Expressions,
labels and annotations are exactly those in contrib/prometheus/rules/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.contrib._daemon import Daemon, running_probed
from tests.contrib._live import Prometheus, running_prometheus
from tests.contrib._tools import RULE_FILES, load_yaml
from tests.servers._util import free_port, wait_until

FOR_IN_TEST = "4s"
WATCHED = ("ProbedCheckDown", "ProbedReadinessCheckDown")


def _short_for_rules(tmp_path: Path) -> list[str]:
    paths = []
    for source in RULE_FILES:
        rules = load_yaml(source)
        for group in rules["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                if rule.get("alert") in WATCHED:
                    rule["for"] = FOR_IN_TEST
        path = tmp_path / source.name
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        paths.append(str(path))
    return paths


@pytest.fixture
def probed(tmp_path: Path) -> Iterator[Daemon]:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "failing.yaml").write_text(
        "checks:\n"
        "  - name: payments-db-port\n    type: tcp\n"
        f"    address: 127.0.0.1:{free_port()}\n"
        "    interval: 1s\n    timeout: 500ms\n    failure_threshold: 2\n"
        "    labels: {team: payments}\n"
    )
    with running_probed(checks) as daemon:
        yield daemon


@pytest.fixture
def prometheus(tmp_path: Path, probed: Daemon) -> Iterator[Prometheus]:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": _short_for_rules(tmp_path),
        "scrape_configs": [
            {"job_name": "probed", "static_configs": [{"targets": [probed.url.split("//")[1]]}]}
        ],
    }
    with running_prometheus(tmp_path, lambda _address: config) as prometheus:
        yield prometheus


@pytest.mark.parametrize("alertname", WATCHED)
def test_failing_check_alert_goes_pending_then_firing(
    prometheus: Prometheus, alertname: str
) -> None:
    wait_until(prometheus.target_up, timeout=30, what="Prometheus scraping probed")
    check = "payments-db-port"
    wait_until(
        lambda: prometheus.state(alertname, check) == "pending",
        timeout=30,
        what=f"{alertname} pending",
    )
    wait_until(
        lambda: prometheus.state(alertname, check) == "firing",
        timeout=30,
        what=f"{alertname} firing",
    )
    [alert] = [a for a in prometheus.alerts() if a["labels"]["alertname"] == alertname]
    assert alert["labels"]["team"] == "payments"
    assert alert["labels"]["type"] == "tcp"
    assert alert["labels"]["severity"] in {"warning", "critical"}
    assert check in alert["annotations"]["summary"]
