"""contrib/kubernetes/sharded: a StatefulSet of probed replicas splitting the checks.

kubernetes-validate, the CRD schemas and the semantic checks (named ports, Service targets,
ConfigMaps) cover these files with the rest (test_kubernetes.py, test_kubernetes_semantics.py);
here: the wiring only this folder has. The replica count in the environment matches the
StatefulSet's, each pod's name gives it its ordinal the way probed reads it, and the pods
together run every check of the ConfigMap exactly redundancy times.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from probed.config import load_settings
from probed.replicas import Replicas, owners
from tests.contrib._tools import CONTRIB, output, run

SHARDED = CONTRIB / "kubernetes" / "sharded"


def _objects() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(SHARDED.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[doc["kind"]] = doc
    return found


OBJECTS = _objects()
STATEFULSET = OBJECTS["StatefulSet"]
PROBED = {c["name"]: c for c in STATEFULSET["spec"]["template"]["spec"]["containers"]}["probed"]
ENV = {e["name"]: e for e in PROBED["env"]}


def _replica_env() -> tuple[int, int]:
    return int(ENV["PROBED_REPLICAS"]["value"]), int(ENV["PROBED_REPLICA_REDUNDANCY"]["value"])


def _check_names() -> list[str]:
    names = []
    for text in OBJECTS["ConfigMap"]["data"].values():
        names += [check["name"] for check in yaml.safe_load(text)["checks"]]
    return names


def test_the_folder_has_statefulset_headless_service_pdb_servicemonitor_and_checks() -> None:
    assert set(OBJECTS) == {
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "ConfigMap",
    }


def test_replica_count_in_the_environment_is_the_statefulsets() -> None:
    count, redundancy = _replica_env()
    assert count == STATEFULSET["spec"]["replicas"]
    assert 1 <= redundancy <= count


def test_each_pod_takes_its_ordinal_from_its_own_name() -> None:
    assert ENV["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "PROBED_REPLICA_ORDINAL" not in ENV  # the same for every pod: from its name instead


def test_the_pods_together_run_every_check_exactly_redundancy_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What each pod of the StatefulSet resolves, as probed does from the pod's environment."""
    count, redundancy = _replica_env()
    name = STATEFULSET["metadata"]["name"]
    checks = _check_names()
    runs: dict[str, int] = dict.fromkeys(checks, 0)
    overrides = {"replicas": {"count": count, "redundancy": redundancy}}
    for ordinal in range(count):
        monkeypatch.setenv("POD_NAME", f"{name}-{ordinal}")  # what the downward API gives
        replicas = load_settings(None, overrides).replicas
        assert replicas == Replicas(count, ordinal, redundancy)
        for check in checks:
            runs[check] += replicas.owns(check)
    assert runs == dict.fromkeys(checks, redundancy)
    assert {owners(c, count, redundancy)[0] for c in checks} != {0}  # the work is spread


def test_the_disruption_budget_leaves_every_check_a_running_replica() -> None:
    _, redundancy = _replica_env()
    pdb = OBJECTS["PodDisruptionBudget"]["spec"]
    assert pdb["maxUnavailable"] <= max(redundancy - 1, 1)
    labels = STATEFULSET["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_service_is_headless_and_the_statefulsets_service_name() -> None:
    service = OBJECTS["Service"]
    assert service["spec"]["clusterIP"] == "None"
    assert STATEFULSET["spec"]["serviceName"] == service["metadata"]["name"]
    labels = STATEFULSET["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_servicemonitor_scrapes_every_replica_as_job_probed() -> None:
    monitor = OBJECTS["ServiceMonitor"]["spec"]
    service = OBJECTS["Service"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = monitor["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert {"targetLabel": "job", "replacement": "probed"}.items() <= (
        endpoint["relabelings"][0].items()
    )


def test_probes_ask_the_health_and_live_listeners() -> None:
    ports = {p["name"]: p["containerPort"] for p in PROBED["ports"]}
    assert {k: PROBED[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe")} == {
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    assert PROBED["livenessProbe"]["httpGet"]["port"] == "probed-live"
    assert PROBED["readinessProbe"]["httpGet"]["port"] == "probed-health"
    args = PROBED["args"]
    assert args[args.index("--health-listen") + 1].endswith(f":{ports['probed-health']}")
    assert args[args.index("--live-listen") + 1].endswith(f":{ports['probed-live']}")


def test_labels_do_not_overlap_the_standalone_deployment() -> None:
    """The standalone Service selects app.kubernetes.io/name=probed: a shared label would put
    the replicas behind it too (each answering for its share of the checks only)."""
    standalone = yaml.safe_load(
        (CONTRIB / "kubernetes" / "standalone" / "service.yaml").read_text()
    )
    labels = STATEFULSET["spec"]["template"]["metadata"]["labels"]
    assert not standalone["spec"]["selector"].items() <= labels.items()


def test_configmap_checks_pass_probed_validate_with_the_replica_environment(
    tmp_path: Path,
) -> None:
    """Every replica validates every check (no ordinal needed outside the pods)."""
    for key, text in OBJECTS["ConfigMap"]["data"].items():
        (tmp_path / key).write_text(text)
    count, redundancy = _replica_env()
    env_args = ["--replicas", str(count), "--replica-redundancy", str(redundancy)]
    proc = run(
        [sys.executable, "-m", "probed", "validate", "--checks-dir", str(tmp_path), *env_args]
    )
    assert proc.returncode == 0, output(proc)
    assert f"configuration valid: {len(_check_names())} check(s)" in proc.stdout
