"""Grafana dashboards and provisioning: Grafana's dashboard JSON Schema (generated from
@grafana/schema and checked in) and every panel's PromQL parsed by promtool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contrib._tools import (
    DASHBOARDS,
    GRAFANA,
    dashboard_panels,
    dashboard_promql,
    grafana_to_promql,
    load_yaml,
    output,
    run,
)
from tests.servers._util import require_binary

SCHEMA = GRAFANA / "schema" / "dashboard.schema.json"


@pytest.fixture
def check_jsonschema() -> str:
    return require_binary("check-jsonschema", "pip install check-jsonschema")


@pytest.fixture
def promtool() -> str:
    return require_binary("promtool", "apt-get install prometheus")


def test_dashboards_match_grafana_schema(check_jsonschema: str) -> None:
    assert len(DASHBOARDS) == 2
    proc = run([check_jsonschema, "--schemafile", str(SCHEMA), *map(str, DASHBOARDS)])
    assert proc.returncode == 0, output(proc)


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda d: d["panels"][1].pop("type"), id="panel-without-type"),
        pytest.param(lambda d: d["panels"][1].update(gridpos={}), id="misspelt-property"),
        pytest.param(lambda d: d["templating"]["list"][0].update(type="dropdown"), id="bad-enum"),
        pytest.param(lambda d: d.update(schemaVersion="39"), id="wrong-type"),
    ],
)
def test_broken_dashboard_fails_schema(
    check_jsonschema: str, tmp_path: Path, breakage: Any
) -> None:
    dashboard = json.loads(DASHBOARDS[0].read_text())
    breakage(dashboard)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(dashboard))
    proc = run([check_jsonschema, "--schemafile", str(SCHEMA), str(path)])
    assert proc.returncode != 0, output(proc)


def _check_promql(promtool: str, queries: list[tuple[str, str]], tmp_path: Path) -> Any:
    """Write each query as a recording rule and let promtool parse them all."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    return run([promtool, "check", "rules", str(path)])


def test_every_dashboard_query_parses_with_promtool(promtool: str, tmp_path: Path) -> None:
    queries = [q for path in DASHBOARDS for q in dashboard_promql(path)]
    assert len(queries) > 40
    proc = _check_promql(promtool, queries, tmp_path)
    assert proc.returncode == 0, output(proc) + "\n".join(
        f"{i}: {w}" for i, (w, _) in enumerate(queries)
    )


def test_broken_dashboard_query_fails_promtool(promtool: str, tmp_path: Path) -> None:
    queries = [("broken", 'sum by (check (rate(probed_check_runs_total{check="$check"}[5m]))')]
    proc = _check_promql(promtool, queries, tmp_path)
    assert proc.returncode != 0, output(proc)


def test_grafana_variables_are_substituted_into_valid_promql() -> None:
    expr = 'rate(x{check=~"$check", job="${job}"}[$__rate_interval])'
    assert grafana_to_promql(expr) == 'rate(x{check=~"x", job="x"}[5m])'
    assert grafana_to_promql('label_values(probed_check_up{job=~"$job"}, check)') == (
        'probed_check_up{job=~"x"}'
    )


def test_panel_ids_are_unique_and_panels_fit_the_grid() -> None:
    for path in DASHBOARDS:
        panels = dashboard_panels(path)
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), path.name
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (path.name, panel["title"])


def test_overview_shows_status_availability_latency_certificates_jobs_and_failures() -> None:
    overview = json.loads((GRAFANA / "dashboards" / "probed-overview.json").read_text())
    exprs = "\n".join(
        expr for _, expr in dashboard_promql(GRAFANA / "dashboards" / "probed-overview.json")
    )
    for needle in (
        "probed_check_up",
        "probed:check_availability:ratio_30d",
        "probed_check_phase_duration_seconds",
        "probed_tls_cert_expiry_timestamp_seconds",
        "probed_check_failures_total",
        # issue 9: the chain's earliest expiry beside the leaf's, heartbeats, exec, gRPC
        "probed_tls_leaf_cert_expiry_timestamp_seconds",
        "probed_heartbeat_deadline_timestamp_seconds",
        "probed_heartbeat_last_ping_timestamp_seconds",
        'type="exec", status="unknown"',
        'serving_status="NOT_SERVING"',
    ):
        assert needle in exprs, needle
    assert overview["uid"] == "probed-overview"


def test_drill_down_is_per_check_and_linked_from_overview() -> None:
    check = json.loads((GRAFANA / "dashboards" / "probed-check.json").read_text())
    variables = {v["name"]: v for v in check["templating"]["list"]}
    assert variables["check"]["type"] == "query"
    assert variables["check"]["multi"] is False
    for _, expr in dashboard_promql(GRAFANA / "dashboards" / "probed-check.json"):
        if expr.startswith("label_values"):
            continue
        assert 'check="$check"' in expr, expr
    overview_text = (GRAFANA / "dashboards" / "probed-overview.json").read_text()
    assert f"/d/{check['uid']}/" in overview_text


def test_dashboards_use_provisioned_datasource_types() -> None:
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "probed.yaml")["datasources"]
    types = {d["type"] for d in provisioned}
    for path in DASHBOARDS:
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] == "datasource":
                assert var["query"] in types, (path.name, var["name"])


def test_dashboard_provider_points_at_a_directory() -> None:
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "probed.yaml")["providers"]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards/probed"]
