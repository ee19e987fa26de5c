"""Kubernetes manifests: kubernetes-validate --strict for built-in kinds, the Prometheus
Operator's CRD schemas for PodMonitor/ServiceMonitor, probed's own validator for the checks in
the ConfigMaps, and the wiring between them (probes, ports, sysctl, secrets)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._require import require
from tests.contrib._tools import CONTRIB, PROMETHEUS, load_yaml, output, run
from tests.servers._util import require_binary

K8S = CONTRIB / "kubernetes"
SHARDED_MONITOR = K8S / "sharded" / "servicemonitor.yaml"  # a CRD kind, in a folder of built-ins
BUILTIN = sorted(
    [*(K8S / "sidecar").glob("*.yaml"), *(K8S / "standalone").glob("*.yaml"),
     *(K8S / "examples").glob("*.yaml"),
     *(p for p in (K8S / "sharded").glob("*.yaml") if p != SHARDED_MONITOR)]
)  # fmt: skip
CUSTOM = sorted([*(K8S / "monitoring").glob("*.yaml"), SHARDED_MONITOR])
TOOLS = CONTRIB / "tools"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _one(kind: str, name: str) -> dict[str, Any]:
    for path in [*BUILTIN, *CUSTOM]:
        for doc in _docs(path):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind}/{name} in contrib/kubernetes")


def _containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


@pytest.fixture
def kubernetes_validate() -> str:
    return require_binary("kubernetes-validate", "pip install kubernetes-validate")


def test_builtin_manifests_pass_kubernetes_validate_strict(kubernetes_validate: str) -> None:
    proc = run([kubernetes_validate, "--strict", *map(str, BUILTIN)])
    assert proc.returncode == 0, output(proc)
    assert proc.stdout.count(" passed ") == sum(len(_docs(p)) for p in BUILTIN), output(proc)
    assert "WARN" not in proc.stdout + proc.stderr, output(proc)


def test_unknown_field_fails_kubernetes_validate_strict(
    kubernetes_validate: str, tmp_path: Path
) -> None:
    deployment = _one("Deployment", "probed")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"exec": {}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(deployment))
    proc = run([kubernetes_validate, "--strict", str(path)])
    assert proc.returncode != 0, output(proc)


@pytest.fixture
def crd_validator() -> list[str]:
    node = require_binary("node", "apt-get install nodejs npm")
    require(
        (TOOLS / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir(),
        "contrib/tools/node_modules missing: run `npm ci --prefix contrib/tools`",
    )
    return [node, str(TOOLS / "validate-crds.mjs")]


def _as_json(docs: list[dict[str, Any]], path: Path) -> str:
    path.write_text(json.dumps(docs))
    return str(path)


def test_prometheus_operator_resources_match_their_crd_schemas(
    crd_validator: list[str], tmp_path: Path
) -> None:
    files = [_as_json(_docs(p), tmp_path / f"{p.parent.name}-{p.stem}.json") for p in CUSTOM]
    proc = run([*crd_validator, *files])
    assert proc.returncode == 0, output(proc)
    assert proc.stdout.count(": valid") == len(CUSTOM)


def test_broken_podmonitor_fails_crd_schema(crd_validator: list[str], tmp_path: Path) -> None:
    monitor = _one("PodMonitor", "probed")
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "every 15 seconds"
    proc = run([*crd_validator, _as_json([monitor], tmp_path / "broken.json")])
    assert proc.returncode != 0, output(proc)
    assert "interval" in proc.stderr


def test_sidecar_app_is_ready_only_when_probed_says_so() -> None:
    containers = _containers(_one("Deployment", "shop"))
    probed_ports = {p["name"]: p["containerPort"] for p in containers["probed"]["ports"]}
    probe = containers["shop"]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/health/ready"
    # By number: a named port would be looked up in the shop container's own ports.
    assert probe["port"] == probed_ports["probed-health"]
    # probed's own liveness never depends on the checks.
    assert containers["probed"]["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert containers["probed"]["startupProbe"]["httpGet"]["path"] == "/health/startup"
    # The kubelet asks the health-only listener; 9333 is for Prometheus (and auth). Liveness
    # asks the live listener, answered off the event loop (a blocking check is no restart).
    for key in ("readinessProbe", "startupProbe"):
        assert containers["probed"][key]["httpGet"]["port"] == "probed-health"
    assert containers["probed"]["livenessProbe"]["httpGet"]["port"] == "probed-live"
    env = {e["name"]: e.get("value") for e in containers["probed"]["env"]}
    assert env["PROBED_HEALTH_LISTEN"].endswith(f":{probed_ports['probed-health']}")
    assert env["PROBED_LIVE_LISTEN"].endswith(f":{probed_ports['probed-live']}")


def test_sidecar_gets_checks_from_configmap_and_secrets_from_secret() -> None:
    deployment = _one("Deployment", "shop")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _containers(deployment)["probed"]["volumeMounts"]}
    checks_volume = volumes[mounts["/etc/probed/checks.d"]]
    secret_volume = volumes[mounts["/run/secrets/probed"]]
    configmap = _one("ConfigMap", checks_volume["configMap"]["name"])
    secret = _one("Secret", secret_volume["secret"]["secretName"])
    checks_text = "\n".join(configmap["data"].values())
    for key in secret["stringData"]:
        assert f"${{file:/run/secrets/probed/{key}}}" in checks_text
    assert set(secret["stringData"].values()) == {"CHANGE-ME"}, "example secrets are placeholders"


def test_pods_allow_unprivileged_icmp_and_run_as_non_root() -> None:
    for name in ("shop", "probed"):
        pod = _one("Deployment", name)["spec"]["template"]["spec"]
        sysctls = {s["name"]: s["value"] for s in pod["securityContext"]["sysctls"]}
        low, high = map(int, sysctls["net.ipv4.ping_group_range"].split())
        assert low <= pod["securityContext"]["runAsGroup"] <= high
        assert pod["securityContext"]["runAsNonRoot"] is True
        probed = _containers(_one("Deployment", name))["probed"]
        assert probed["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_every_container_has_requests_and_a_memory_limit() -> None:
    for name in ("shop", "probed"):
        for container in _containers(_one("Deployment", name)).values():
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
            assert "memory" in container["resources"]["limits"], container["name"]


def test_standalone_has_liveness_readiness_and_startup_probes() -> None:
    probed = _containers(_one("Deployment", "probed"))["probed"]
    paths = {
        k: probed[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert paths == {
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
        "startupProbe": "/health/startup",
    }


def test_disruption_budgets_select_their_deployments() -> None:
    for name in ("shop", "probed"):
        pdb = _one("PodDisruptionBudget", name)
        labels = _one("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_scrape_configs_keep_the_port_the_pods_expose() -> None:
    """Pod discovery, PodMonitor and ServiceMonitor all select the port named probed-metrics."""
    port = "probed-metrics"
    for name in ("shop", "probed"):
        pod = _one("Deployment", name)["spec"]["template"]
        assert pod["metadata"]["annotations"]["probed.io/scrape"] == "true"
        assert port in {p["name"] for p in _containers(_one("Deployment", name))["probed"]["ports"]}
    scrape = load_yaml(PROMETHEUS / "prometheus-kubernetes.yml")["scrape_configs"][0]
    assert {"regex": port, "action": "keep"}.items() <= scrape["relabel_configs"][1].items()
    assert _one("PodMonitor", "probed")["spec"]["podMetricsEndpoints"][0]["port"] == port
    assert _one("ServiceMonitor", "probed")["spec"]["endpoints"][0]["port"] == port
    assert _one("Service", "probed")["spec"]["ports"][0]["name"] == port


def test_configmap_checks_pass_probed_validate(tmp_path: Path) -> None:
    """The checks shipped in the ConfigMaps load with probed's own configuration loader."""
    checks = tmp_path / "checks.d"
    checks.mkdir()
    secrets = checks / "secrets"  # under the checks' directory: ${file:} may read there
    secrets.mkdir()
    for key in _one("Secret", "shop-probed-secrets")["stringData"]:
        (secrets / key).write_text("placeholder\n")
    for configmap in (_one("ConfigMap", "shop-probed-checks"), _one("ConfigMap", "probed-checks")):
        for key, text in configmap["data"].items():
            text = text.replace("/run/secrets/probed/", f"{secrets}/")
            (checks / f"{configmap['metadata']['name']}-{key}").write_text(text)
    proc = run([sys.executable, "-m", "probed", "validate", "--checks-dir", str(checks)])
    assert proc.returncode == 0, output(proc)
