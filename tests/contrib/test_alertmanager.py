"""Alertmanager configuration: amtool checks, routing cases, templates, and inhibition
observed on a real Alertmanager."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contrib._tools import CONTRIB, load_yaml, output, run
from tests.servers._util import free_port, require_binary, wait_until

ALERTMANAGER = CONTRIB / "alertmanager"
CONFIG = ALERTMANAGER / "alertmanager.yml"
TEMPLATES = ALERTMANAGER / "templates"
ROUTE_CASES = load_yaml(ALERTMANAGER / "tests" / "routes.yml")["cases"]


@pytest.fixture
def amtool() -> str:
    return require_binary("amtool", "apt-get install prometheus-alertmanager")


def _local_config(tmp_path: Path, *, strip_notifiers: bool = False) -> Path:
    """The shipped config with its template glob pointing at contrib/ (so templates are parsed),
    optionally with every notifier removed (a receiver without notifiers is a valid sink)."""
    config = load_yaml(CONFIG)
    config["templates"] = [str(TEMPLATES / "*.tmpl")]
    if strip_notifiers:
        config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_passes_amtool_check_config(amtool: str, tmp_path: Path) -> None:
    for path in (CONFIG, _local_config(tmp_path)):
        proc = run([amtool, "check-config", str(path)])
        assert proc.returncode == 0, output(proc)
    assert "1 templates" in proc.stdout


def test_route_to_undefined_receiver_fails_amtool(amtool: str, tmp_path: Path) -> None:
    config = load_yaml(CONFIG)
    config["route"]["routes"][0]["receiver"] = "nobody"
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(config))
    proc = run([amtool, "check-config", str(path)])
    assert proc.returncode != 0, output(proc)
    assert "nobody" in proc.stdout + proc.stderr


@pytest.mark.parametrize("case", ROUTE_CASES, ids=[c["name"] for c in ROUTE_CASES])
def test_alert_routes_to_expected_receiver(amtool: str, case: dict[str, Any]) -> None:
    labels = [f"{k}={v}" for k, v in case["labels"].items()]
    proc = run(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}",
         f"--verify.receivers={case['receiver']}", *labels]
    )  # fmt: skip
    assert proc.returncode == 0, output(proc)


def test_route_test_with_wrong_receiver_fails(amtool: str) -> None:
    proc = run(
        [amtool, "config", "routes", "test", f"--config.file={CONFIG}",
         "--verify.receivers=oncall-pager", "severity=warning"]
    )  # fmt: skip
    assert proc.returncode != 0, output(proc)


def test_every_receiver_is_reached_by_some_route_case() -> None:
    receivers = {r["name"] for r in load_yaml(CONFIG)["receivers"]}
    assert receivers - {c["receiver"] for c in ROUTE_CASES} == set()


def test_templates_render_with_amtool(amtool: str) -> None:
    for name in ("probed.slack.title", "probed.slack.text", "probed.pagerduty.description"):
        proc = run(
            [amtool, "template", "render", f"--template.glob={TEMPLATES}/*.tmpl",
             f'--template.text={{{{ template "{name}" . }}}}']
        )  # fmt: skip
        assert proc.returncode == 0, output(proc)


def test_broken_template_fails_amtool(amtool: str, tmp_path: Path) -> None:
    (tmp_path / "broken.tmpl").write_text('{{ define "x" }}{{ if .Status }}unclosed{{ end }}\n')
    proc = run(
        [amtool, "template", "render", f"--template.glob={tmp_path}/*.tmpl",
         '--template.text={{ template "x" . }}']
    )  # fmt: skip
    assert proc.returncode != 0, output(proc)


# --- inhibition, on a real Alertmanager ----------------------------------------------------


class Alertmanager:
    """A throwaway Alertmanager on loopback, driven through its v2 API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, *alerts: dict[str, str]) -> None:
        body = json.dumps([{"labels": labels} for labels in alerts]).encode()
        req = urllib.request.Request(
            f"{self.url}/api/v2/alerts", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200

    def states(self) -> dict[tuple[str, str, str], str]:
        """(alertname, check, instance) -> "active" or "suppressed"."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            alerts = json.load(resp)
        states = {}
        for alert in alerts:
            labels = alert["labels"]
            key = (labels["alertname"], labels.get("check", ""), labels.get("instance", ""))
            states[key] = alert["status"]["state"]
        return states


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    binary = require_binary("prometheus-alertmanager", "apt-get install prometheus-alertmanager")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, f"--config.file={_local_config(tmp_path, strip_notifiers=True)}",
         f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until(lambda: proc.poll() is None and _ready(url), what="Alertmanager /-/ready")
        yield Alertmanager(url)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        if proc.returncode not in (0, -15):
            print(err.decode())


def _alert(name: str, severity: str, instance: str, **labels: str) -> dict[str, str]:
    return {
        "alertname": name,
        "severity": severity,
        "job": "probed",
        "instance": instance,
        **labels,
    }


def test_warning_is_inhibited_by_critical_for_same_check_only(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        _alert("ProbedReadinessCheckDown", "critical", "a:9333", check="web", team="payments"),
        _alert("ProbedCheckDown", "warning", "a:9333", check="web", team="payments"),
        _alert("ProbedCheckDown", "warning", "b:9333", check="web", team="payments"),
        _alert("ProbedCheckSlow", "warning", "a:9333", check="api", team="payments"),
        _alert("ProbedConfigReloadFailed", "warning", "a:9333", team="observability"),
    )
    expected = {
        ("ProbedReadinessCheckDown", "web", "a:9333"): "active",
        ("ProbedCheckDown", "web", "a:9333"): "suppressed",
        ("ProbedCheckDown", "web", "b:9333"): "active",  # another probed: not the same check
        ("ProbedCheckSlow", "api", "a:9333"): "active",  # another check
        ("ProbedConfigReloadFailed", "", "a:9333"): "active",  # no check label: never paired
    }
    wait_until(lambda: alertmanager.states() == expected, what=f"states {expected}")


def test_check_alerts_are_inhibited_while_probed_is_down(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        _alert("ProbedTargetDown", "critical", "c:9333", team="observability"),
        _alert("ProbedCheckDown", "warning", "c:9333", check="api", team="payments"),
        _alert("ProbedReadinessCheckDown", "critical", "c:9333", check="api", team="payments"),
        _alert("ProbedCheckDown", "warning", "d:9333", check="api", team="payments"),
    )
    expected = {
        ("ProbedTargetDown", "", "c:9333"): "active",
        ("ProbedCheckDown", "api", "c:9333"): "suppressed",
        ("ProbedReadinessCheckDown", "api", "c:9333"): "suppressed",
        ("ProbedCheckDown", "api", "d:9333"): "active",
    }
    wait_until(lambda: alertmanager.states() == expected, what=f"states {expected}")

    # No probed target at all: every check alert of the job goes quiet.
    alertmanager.post({"alertname": "ProbedAbsent", "severity": "critical", "job": "probed"})
    wait_until(
        lambda: alertmanager.states()[("ProbedCheckDown", "api", "d:9333")] == "suppressed",
        what="ProbedAbsent to inhibit check alerts",
    )
    assert alertmanager.states()[("ProbedTargetDown", "", "c:9333")] == "active"


def test_type_specific_alerts_inhibit_the_generic_one_for_the_same_check(
    alertmanager: Alertmanager,
) -> None:
    alertmanager.post(
        _alert("ProbedHeartbeatLate", "warning", "a:9333", check="backup", team="dba"),
        _alert("ProbedCheckDown", "warning", "a:9333", check="backup", team="dba"),
        _alert("ProbedExecUnknown", "warning", "a:9333", check="raid", team="infra"),
        _alert("ProbedCheckDown", "warning", "a:9333", check="raid", team="infra"),
        _alert("ProbedGRPCNotServing", "warning", "a:9333", check="ledger", team="payments"),
        _alert("ProbedCheckDown", "warning", "a:9333", check="ledger", team="payments"),
        _alert("ProbedCheckDown", "warning", "b:9333", check="ledger", team="payments"),
        _alert("ProbedCheckDown", "warning", "a:9333", check="web", team="payments"),
        _alert("ProbedTLSChainCertificateExpiring", "warning", "a:9333", check="edge"),
        _alert("ProbedTLSCertificateExpiring", "warning", "a:9333", check="edge"),
        _alert("ProbedTLSCertificateExpiring", "warning", "a:9333", check="mail"),
    )
    expected = {
        ("ProbedHeartbeatLate", "backup", "a:9333"): "active",
        ("ProbedCheckDown", "backup", "a:9333"): "suppressed",
        ("ProbedExecUnknown", "raid", "a:9333"): "active",
        ("ProbedCheckDown", "raid", "a:9333"): "suppressed",
        ("ProbedGRPCNotServing", "ledger", "a:9333"): "active",
        ("ProbedCheckDown", "ledger", "a:9333"): "suppressed",
        ("ProbedCheckDown", "ledger", "b:9333"): "active",  # another probed
        ("ProbedCheckDown", "web", "a:9333"): "active",  # no type-specific alert for it
        ("ProbedTLSChainCertificateExpiring", "edge", "a:9333"): "active",
        ("ProbedTLSCertificateExpiring", "edge", "a:9333"): "suppressed",
        ("ProbedTLSCertificateExpiring", "mail", "a:9333"): "active",  # its leaf expires first
    }
    wait_until(lambda: alertmanager.states() == expected, what=f"states {expected}")
