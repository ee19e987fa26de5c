"""Helpers shared by the contrib tests: paths, running validators, reading PromQL.

Every contrib file is checked by the real tool for its kind; these helpers only run the tools
and collect their output so a failing assertion shows what the tool said.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
CONTRIB: Final = ROOT / "contrib"
PROMETHEUS: Final = CONTRIB / "prometheus"
RULE_FILES: Final = tuple(sorted((PROMETHEUS / "rules").glob("*.rules.yml")))

# Metric names as they appear in PromQL: probed's own series, process_* and up.
_METRIC_RE: Final = re.compile(r"(?<![\w:\"'])(probed_[a-z0-9_]+|process_[a-z0-9_]+)\b")
_HISTOGRAM_SUFFIXES: Final = ("_bucket", "_sum", "_count")


def run(
    args: Sequence[str], *, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a validator and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def output(proc: subprocess.CompletedProcess[str]) -> str:
    """Both streams of a finished process, for assertion messages."""
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def load_yaml(path: Path) -> Any:
    """Parse one YAML document."""
    return yaml.safe_load(path.read_text())


def alert_rules() -> Iterator[dict[str, Any]]:
    """Every alerting rule in contrib/prometheus/rules."""
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    yield rule


def recording_rules() -> Iterator[dict[str, Any]]:
    """Every recording rule in contrib/prometheus/rules."""
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    yield rule


def metric_names(expr: str) -> set[str]:
    """Names of probed_*/process_* series an expression reads, as written."""
    return set(_METRIC_RE.findall(expr))


def family_of(name: str, families: Collection[str]) -> str | None:
    """The metric family ``name`` belongs to (``x_bucket`` -> ``x`` for histograms), if any."""
    if name in families:
        return name
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return None


# --- Grafana ----------------------------------------------------------------------------------

GRAFANA: Final = CONTRIB / "grafana"
DASHBOARDS: Final = tuple(sorted((GRAFANA / "dashboards").glob("*.json")))

# Grafana's built-in interval variables become durations; any other variable sits inside a
# label matcher string and becomes a plain value, so that promtool sees valid PromQL.
_GRAFANA_DURATIONS: Final = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_GRAFANA_VAR_RE: Final = re.compile(r"\$\{[^}]+\}|\$[A-Za-z_]\w*")
_LABEL_VALUES_RE: Final = re.compile(r"^label_values\((?:(.*),\s*)?(\w+)\)$")


def grafana_to_promql(expr: str) -> str:
    """A panel or variable query with Grafana's variables replaced by concrete values."""
    for var, value in _GRAFANA_DURATIONS.items():
        expr = expr.replace(var, value)
    match = _LABEL_VALUES_RE.match(expr.strip())
    if match:  # label_values(selector, label) is Grafana's, not PromQL: check its selector
        expr = match.group(1) or "up"
    return _GRAFANA_VAR_RE.sub("x", expr)


def _walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _walk_panels(panel.get("panels", []))


def dashboard_panels(path: Path) -> list[dict[str, Any]]:
    """Every panel of a dashboard, rows' nested panels included."""
    return list(_walk_panels(json.loads(path.read_text())["panels"]))


def dashboard_promql(path: Path) -> list[tuple[str, str]]:
    """(where, expression) for every Prometheus query of a dashboard: panel targets and
    template variable queries. Loki targets are LogQL and are left out."""
    dashboard = json.loads(path.read_text())
    found = []
    for panel in dashboard_panels(path):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if source.get("type") == "prometheus":
                found.append(
                    (f"{path.name}: panel {panel['title']!r} {target['refId']}", target["expr"])
                )
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            found.append((f"{path.name}: variable {var['name']}", query))
    return found
