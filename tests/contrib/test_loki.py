"""Loki: the Promtail pipeline reads field names probed really writes (checked against log
lines of a live daemon), and every LogQL expression (ruler alerts, dashboard log panels)
parses with Grafana's LogQL grammar."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests._require import require
from tests.contrib._daemon import Daemon, running_probed
from tests.contrib._tools import CONTRIB, DASHBOARDS, dashboard_panels, load_yaml, output, run
from tests.servers._util import require_binary, wait_until

LOKI = CONTRIB / "loki"
PROMTAIL = load_yaml(LOKI / "promtail.yaml")
RULE_FILES = sorted((LOKI / "rules").rglob("*.yaml"))
TOOLS = CONTRIB / "tools"
STATUSES = {"ok", "warn", "fail", "unknown"}
# RFC 3339 with fractional seconds and a numeric or Z offset: what Promtail's RFC3339Nano parses.
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _stages() -> list[dict[str, Any]]:
    pipelines = [job["pipeline_stages"] for job in PROMTAIL["scrape_configs"]]
    assert all(p == pipelines[0] for p in pipelines), "every job shares the probed pipeline"
    return pipelines[0]  # type: ignore[no-any-return]


def _stage(name: str) -> dict[str, Any]:
    return next(s[name] for s in _stages() if name in s)


def _pipeline_labels() -> set[str]:
    labels = set(_stage("labels"))
    for job in PROMTAIL["scrape_configs"]:
        labels |= {r["target_label"] for r in job.get("relabel_configs", []) if "target_label" in r}
        labels |= set(job.get("journal", {}).get("labels", {}))
    return labels


def _logql() -> list[tuple[str, str]]:
    found = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                found.append((f"{path.name}: {rule['alert']}", rule["expr"].strip()))
    for path in DASHBOARDS:
        for panel in dashboard_panels(path):
            for target in panel.get("targets", []):
                if (target.get("datasource") or {}).get("type") == "loki":
                    found.append((f"{path.name}: panel {panel['title']!r}", target["expr"]))
    return found


# --- LogQL syntax ---------------------------------------------------------------------------


@pytest.fixture
def logql_checker() -> list[str]:
    node = require_binary("node", "apt-get install nodejs npm")
    require(
        (TOOLS / "node_modules" / "@grafana" / "lezer-logql").is_dir(),
        "contrib/tools/node_modules missing: run `npm ci --prefix contrib/tools`",
    )
    return [node, str(TOOLS / "check-logql.mjs")]


def _check_logql(checker: list[str], exprs: list[tuple[str, str]], tmp_path: Path) -> Any:
    path = tmp_path / "logql.json"
    path.write_text(json.dumps([{"where": w, "expr": e} for w, e in exprs]))
    return run([*checker, str(path)])


def test_every_logql_expression_parses(logql_checker: list[str], tmp_path: Path) -> None:
    exprs = _logql()
    assert len(exprs) >= 4
    proc = _check_logql(logql_checker, exprs, tmp_path)
    assert proc.returncode == 0, output(proc)
    assert proc.stdout.count(": ok") == len(exprs)


def test_broken_logql_fails(logql_checker: list[str], tmp_path: Path) -> None:
    broken = [("broken", 'sum by (check) (count_over_time({job="probed"[10m])) > 5')]
    proc = _check_logql(logql_checker, broken, tmp_path)
    assert proc.returncode != 0, output(proc)


def test_loki_rules_follow_the_alert_conventions() -> None:
    runbooks = (CONTRIB / "prometheus" / "runbooks.md").read_text()
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["severity"] in {"critical", "warning"}
                assert rule["labels"]["team"]
                assert "for" in rule
                anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
                assert f"\n## {anchor}" in runbooks.lower(), anchor


def test_logql_selects_only_labels_the_pipeline_sets() -> None:
    labels = _pipeline_labels()
    for where, expr in _logql():
        for selector in re.findall(r"\{([^}]*)\}", expr.split("|")[0] if "|" in expr else expr):
            for name in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector):
                assert name in labels, f"{where}: label {name!r} is not set by promtail.yaml"


# --- field names against real log lines -----------------------------------------------------


@pytest.fixture
def daemon_with_transitions(tmp_path: Path) -> Any:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    (checks / "logs.yaml").write_text(
        "checks:\n"
        "  - name: closed-port\n    type: tcp\n    address: 127.0.0.1:1\n"
        "    interval: 1s\n    timeout: 500ms\n    failure_threshold: 1\n"
        "  - name: root-disk\n    type: disk\n    path: /\n    interval: 1s\n    timeout: 900ms\n"
    )
    # A broken file makes probed log an error line, as it would in production.
    (checks / "broken.yaml").write_text("checks:\n  - name: broken\n    type: no_such_type\n")
    with running_probed(checks) as daemon:
        yield daemon


def _transitions(daemon: Daemon) -> list[dict[str, Any]]:
    return [r for r in daemon.log_records() if r.get("event") == "check_state_changed"]


def test_pipeline_fields_exist_in_real_probed_log_lines(daemon_with_transitions: Daemon) -> None:
    daemon = daemon_with_transitions
    wait_until(
        lambda: {r["check"] for r in _transitions(daemon)} >= {"closed-port", "root-disk"},
        what="state changes of both checks in probed's log",
    )
    records = daemon.log_records()
    transitions = _transitions(daemon)
    expressions = _stage("json")["expressions"]
    # Fields every line has:
    for field in ("ts", "level"):
        assert all(expressions[field] in r for r in records), field
    # Fields of state changes:
    for label in ("event", "check", "type", "status"):
        assert all(expressions[label] in r for r in transitions), label
    assert {r[expressions["status"]] for r in transitions} <= STATUSES
    assert "fail" in {r[expressions["status"]] for r in transitions}
    # Timestamps parse the way the timestamp stage reads them.
    timestamp = _stage("timestamp")
    assert timestamp["format"] == "RFC3339Nano"
    for record in records:
        assert RFC3339.fullmatch(record[timestamp["source"]]), record[timestamp["source"]]
        datetime.fromisoformat(record[timestamp["source"]])
    # The fields the dashboard's log panel formats exist too.
    for field in ("old", "new", "reason", "message"):
        assert all(field in r for r in transitions), field


def test_label_values_in_logql_occur_in_real_log_lines(daemon_with_transitions: Daemon) -> None:
    daemon = daemon_with_transitions
    wait_until(
        lambda: (
            any(r.get("level") == "error" for r in daemon.log_records())
            and any(r.get("new") == "fail" for r in _transitions(daemon))
        ),
        what="an error line and a failing transition",
    )
    records = daemon.log_records()
    expressions = _stage("json")["expressions"]
    seen: dict[str, set[str]] = {
        label: {str(r[field]) for r in records if field in r}
        for label, field in expressions.items()
    }
    seen["job"] = {"probed"}
    for where, expr in _logql():
        for name, value in re.findall(r'(\w+)="([^"$]+)"', expr.split("|")[0]):
            assert value in seen.get(name, set()), f"{where}: {name}={value!r} never logged"
