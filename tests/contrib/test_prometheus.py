"""Prometheus rules, rule unit tests and scrape configurations, checked with promtool."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contrib._tools import (
    PROMETHEUS,
    RULE_FILES,
    alert_rules,
    load_yaml,
    output,
    recording_rules,
    run,
)
from tests.servers._util import require_binary

SD_ROLES = {"pod", "endpoints", "endpointslice", "service", "node", "ingress"}
UNIT_TESTS = tuple(sorted((PROMETHEUS / "tests").glob("*.test.yml")))


@pytest.fixture
def promtool() -> str:
    return require_binary("promtool", "apt-get install prometheus")


def test_rule_files_pass_promtool_check_rules(promtool: str) -> None:
    proc = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert proc.returncode == 0, output(proc)
    assert "SUCCESS" in proc.stdout


def test_broken_rule_fails_promtool_check_rules(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yml"
    # Unbalanced parenthesis in the expression.
    broken.write_text(
        "groups:\n- name: x\n  rules:\n"
        "  - alert: Broken\n    expr: rate(probed_check_runs_total[5m]\n"
    )
    proc = run([promtool, "check", "rules", str(broken)])
    assert proc.returncode != 0, output(proc)


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert UNIT_TESTS, "no promtool unit tests found"
    proc = run([promtool, "test", "rules", *map(str, UNIT_TESTS)])
    assert proc.returncode == 0, output(proc)


def test_wrong_expectation_fails_promtool_test_rules(promtool: str, tmp_path: Path) -> None:
    """A unit test expecting an alert that does not fire must fail: the harness bites."""
    bad = {
        "rule_files": [str(RULE_FILES[0])],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'probed_check_up{job="probed",instance="a",check="c",type="tcp"}',
                        "values": "1x10",
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "ProbedCheckDown",
                        "exp_alerts": [{"exp_labels": {"severity": "warning", "check": "c"}}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "bad.test.yml"
    path.write_text(yaml.safe_dump(bad))
    proc = run([promtool, "test", "rules", str(path)])
    assert proc.returncode != 0, output(proc)


def _alert_tests() -> list[dict[str, Any]]:
    cases = []
    for path in UNIT_TESTS:
        for group in load_yaml(path)["tests"]:
            cases.extend(group.get("alert_rule_test", []))
    return cases


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = _alert_tests()
    fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts without a unit test where they fire"
    assert names - quiet == set(), "alerts without a unit test where they stay quiet"
    assert (fired | quiet) - names == set(), "unit tests for alerts that do not exist"


def test_every_recording_rule_is_used_or_unit_tested() -> None:
    recorded = {rule["record"] for rule in recording_rules()}
    used = [p.read_text() for p in UNIT_TESTS]
    used += [rule["expr"] for rule in (*alert_rules(), *recording_rules())]
    text = "\n".join(used)
    unused = {name for name in recorded if name not in text}
    assert unused == set()


def test_every_alert_has_severity_team_summary_and_runbook() -> None:
    runbooks = (PROMETHEUS / "runbooks.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^## (\S+)", runbooks, re.M)}
    for rule in alert_rules():
        name = rule["alert"]
        labels = rule.get("labels", {})
        assert labels.get("severity") in {"critical", "warning"}, name
        # Team comes from the rule, or from the check's own `team` label with a default.
        has_default_team = (
            "label_replace" in rule["expr"] and '"team", "unassigned"' in rule["expr"]
        )
        assert "team" in labels or has_default_team, f"{name} has no team label"
        ann = rule["annotations"]
        assert ann["summary"], name
        assert ann["description"], name
        anchor = ann["runbook_url"].rsplit("#", 1)[1]
        assert anchor == name.lower(), f"{name}: runbook anchor {anchor}"
        assert anchor in anchors, f"{name}: no section '## {name}' in runbooks.md"
        assert "for" in rule, f"{name} has no explicit for: window"


def test_static_scrape_config_passes_promtool_check_config(promtool: str) -> None:
    proc = run([promtool, "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert proc.returncode == 0, output(proc)


def test_split_scrape_config_passes_promtool_check_config(promtool: str) -> None:
    proc = run([promtool, "check", "config", str(PROMETHEUS / "prometheus-shards.yml")])
    assert proc.returncode == 0, output(proc)


def test_split_scrape_config_asks_every_shard_once_as_job_probed() -> None:
    """docs/endpoints.md "Split scrapes": N jobs, shard 0..N-1 of the same N, each relabelled
    to job="probed" (what the alert rules expect) with a distinct shard label."""
    jobs = [
        s
        for s in load_yaml(PROMETHEUS / "prometheus-shards.yml")["scrape_configs"]
        if "shard" in s.get("params", {})
    ]
    counts = {int(s["params"]["shards"][0]) for s in jobs}
    assert counts == {len(jobs)} and len(jobs) > 1
    assert sorted(int(s["params"]["shard"][0]) for s in jobs) == list(range(len(jobs)))
    for job in jobs:
        relabel = job["relabel_configs"]
        assert {"target_label": "job", "replacement": "probed"} in relabel
        assert {"source_labels": ["__param_shard"], "target_label": "shard"} in relabel
        assert job["static_configs"][0]["targets"] == jobs[0]["static_configs"][0]["targets"]


def test_kubernetes_scrape_config_passes_promtool(promtool: str, tmp_path: Path) -> None:
    """Debian builds Prometheus without Kubernetes discovery, so promtool there rejects
    ``kubernetes_sd_configs`` as an unknown field. Everything else in the file (relabelling
    regexes, actions, target labels, rule files) is still checked by swapping each discovery
    block for a static one; the discovery blocks themselves are checked for a valid role."""
    config = load_yaml(PROMETHEUS / "prometheus-kubernetes.yml")
    blocks = [*config["scrape_configs"], *config["alerting"]["alertmanagers"]]
    for block in blocks:
        sd = block.pop("kubernetes_sd_configs")
        assert {c["role"] for c in sd} <= SD_ROLES
        block["static_configs"] = [{"targets": ["placeholder:9333"]}]
    config["rule_files"] = [str(PROMETHEUS / f) for f in config["rule_files"]]
    path = tmp_path / "prometheus-kubernetes.yml"
    path.write_text(yaml.safe_dump(config))
    proc = run([promtool, "check", "config", str(path)])
    assert proc.returncode == 0, output(proc)


def test_kubernetes_scrape_config_keeps_job_name_the_rules_expect() -> None:
    for name in ("prometheus.yml", "prometheus-kubernetes.yml"):
        jobs = [s["job_name"] for s in load_yaml(PROMETHEUS / name)["scrape_configs"]]
        assert "probed" in jobs, name
    assert any('up{job="probed"}' in rule["expr"] for rule in alert_rules())


def test_broken_scrape_config_fails_promtool(promtool: str, tmp_path: Path) -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    config["rule_files"] = []
    config["scrape_configs"][0]["relabel_configs"] = [{"regex": "(unclosed", "action": "keep"}]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(config))
    proc = run([promtool, "check", "config", str(path)])
    assert proc.returncode != 0, output(proc)
