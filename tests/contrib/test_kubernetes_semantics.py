"""Kubernetes manifests: mistakes of meaning that `kubernetes-validate` cannot see.

Every manifest under contrib/ (any YAML document with apiVersion, kind and metadata) is held to
what the kubelet and the API server really do:

- a named probe port (httpGet/tcpSocket/grpc) is looked up in the probe's OWN container's
  ports, never in a sibling container's;
- a Service's targetPort (named or numeric) exists in the containers of the pods its selector
  picks in the same folder; a PodMonitor's/ServiceMonitor's port is a port name of the pods or
  Services it selects;
- a ConfigMap or Secret a pod uses (volumes, projected volumes, envFrom, env valueFrom) is
  defined in the same folder or listed as user-provided in contrib/kubernetes/README.md
  ("Objects you provide");
- no example Secret (file or name containing "example", or a CHANGE-ME value) sits in a folder
  that the docs say to apply as a whole, where it would overwrite the real one.

Each checker takes a directory, so the negative controls below run it on a small broken copy.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from tests.contrib._tools import CONTRIB, ROOT

K8S: Final = CONTRIB / "kubernetes"
K8S_README: Final = K8S / "README.md"
SKIP_DIRS: Final = {"node_modules", ".ruff_cache", "__pycache__", ".git"}
PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")
POD_KINDS: Final = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
USER_PROVIDED_HEADING: Final = "## Objects you provide"
# `| `sidecar/` | Secret | `shop-probed-secrets` | ...` under the heading above.
_USER_PROVIDED_ROW: Final = re.compile(
    r"^\|\s*`(?P<folder>[\w./-]+?)/?`\s*\|\s*(?P<kind>Secret|ConfigMap)\s*\|\s*`(?P<name>[\w.-]+)`"
)
_APPLY_COMMAND: Final = re.compile(r"kubectl\s+apply\b[^\n`]*?\s-[fk]\s+(?P<path>[^\s`;&|)]+)")
_APPLY_PROSE: Final = re.compile(r"\bapply\s+`(?P<path>[\w./-]+/)`", re.IGNORECASE)


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and the file it came from."""

    path: Path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"].get("name", "?"))

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}: {self.kind}/{self.name}"


def _yaml_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if SKIP_DIRS & set(path.relative_to(root).parts):
            continue
        if path.suffix in (".yaml", ".yml") and path.is_file():
            yield path


def manifests(root: Path) -> list[Manifest]:
    """Every Kubernetes object in the YAML files under ``root``."""
    found = []
    for path in _yaml_files(root):
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except yaml.YAMLError:
            continue  # templated files (Helm-like) are not manifests; yamllint checks syntax
        for doc in docs:
            if isinstance(doc, dict) and {"apiVersion", "kind", "metadata"} <= doc.keys():
                found.append(Manifest(path, doc))
    return found


def by_folder(items: list[Manifest]) -> dict[Path, list[Manifest]]:
    folders: dict[Path, list[Manifest]] = {}
    for item in items:
        folders.setdefault(item.path.parent, []).append(item)
    return folders


def pod_templates(item: Manifest) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """(pod labels, pod spec) of a Pod or of the pod template of a workload."""
    doc = item.doc
    if item.kind == "Pod":
        return [(doc["metadata"].get("labels") or {}, doc["spec"])]
    if item.kind == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
    elif item.kind in POD_KINDS:
        template = doc["spec"]["template"]
    else:
        return []
    return [((template.get("metadata") or {}).get("labels") or {}, template["spec"])]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


# --- probes -----------------------------------------------------------------------------------


def probe_port_problems(root: Path) -> list[str]:
    """Named probe ports that the probe's own container does not declare."""
    problems = []
    for item in manifests(root):
        for _, pod in pod_templates(item):
            for container in _containers(pod):
                names = {p["name"] for p in container.get("ports", []) if "name" in p}
                for probe_key in PROBES:
                    probe = container.get(probe_key) or {}
                    for handler in ("httpGet", "tcpSocket", "grpc"):
                        port = (probe.get(handler) or {}).get("port")
                        if isinstance(port, str) and not port.isdigit() and port not in names:
                            problems.append(
                                f"{item.where(root)}: container {container['name']!r} "
                                f"{probe_key}.{handler}.port {port!r} is not one of its own "
                                f"ports {sorted(names)} (the kubelet never looks in other "
                                "containers)"
                            )
    return problems


# --- Services ---------------------------------------------------------------------------------


def service_target_port_problems(root: Path) -> list[str]:
    """Services whose selector picks no pod of their folder, or whose targetPort those pods'
    containers do not declare."""
    problems = []
    for items in by_folder(manifests(root)).values():
        pods = [p for item in items for p in pod_templates(item)]
        for service in (i for i in items if i.kind == "Service"):
            selector = service.doc["spec"].get("selector") or {}
            if not selector:
                continue  # a Service without selector has hand-made Endpoints
            selected = [pod for labels, pod in pods if selector.items() <= labels.items()]
            if not selected:
                problems.append(f"{service.where(root)}: selector {selector} picks no pod here")
                continue
            for port in service.doc["spec"].get("ports", []):
                target = port.get("targetPort", port["port"])
                for pod in selected:
                    declared = [p for c in _containers(pod) for p in c.get("ports", [])]
                    if isinstance(target, str) and not target.isdigit():
                        ok = any(p.get("name") == target for p in declared)
                    else:
                        ok = any(p["containerPort"] == int(target) for p in declared)
                    if not ok:
                        problems.append(
                            f"{service.where(root)}: targetPort {target!r} is not a port of "
                            "the pods it selects"
                        )
    return problems


# --- Prometheus Operator monitors -------------------------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a set of labels."""
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def monitor_port_problems(root: Path) -> list[str]:
    """PodMonitor ports no selected pod's container names, ServiceMonitor ports no selected
    Service names (monitors select across folders: they watch every namespace)."""
    items = manifests(root)
    pods = [p for item in items for p in pod_templates(item)]
    services = [i for i in items if i.kind == "Service"]
    problems = []
    for monitor in items:
        spec = monitor.doc.get("spec") or {}
        if monitor.kind == "PodMonitor":
            selected = [pod for labels, pod in pods if selects(spec.get("selector") or {}, labels)]
            names = {
                p.get("name")
                for pod in selected
                for c in _containers(pod)
                for p in c.get("ports", [])
            }
            endpoints = spec.get("podMetricsEndpoints") or []
            picked = len(selected)
        elif monitor.kind == "ServiceMonitor":
            chosen = [
                s
                for s in services
                if selects(spec.get("selector") or {}, s.doc["metadata"].get("labels") or {})
            ]
            names = {p.get("name") for s in chosen for p in s.doc["spec"].get("ports", [])}
            endpoints = spec.get("endpoints") or []
            picked = len(chosen)
        else:
            continue
        if not picked:
            problems.append(f"{monitor.where(root)}: its selector picks nothing in contrib")
            continue
        for endpoint in endpoints:
            port = endpoint.get("port")
            if port is not None and port not in names:
                problems.append(
                    f"{monitor.where(root)}: port {port!r} is not a port name of what it selects "
                    f"({sorted(n for n in names if n)})"
                )
    return problems


# --- ConfigMaps and Secrets -------------------------------------------------------------------


def user_provided(readme: Path) -> set[tuple[str, str, str]]:
    """(folder, kind, name) rows of the "Objects you provide" table of ``readme``."""
    if not readme.is_file():
        return set()
    rows = set()
    in_section = False
    for line in readme.read_text().splitlines():
        if line.startswith("## "):
            in_section = line.strip() == USER_PROVIDED_HEADING
        elif in_section and (match := _USER_PROVIDED_ROW.match(line)):
            rows.add((match["folder"].strip("/"), match["kind"], match["name"]))
    return rows


def _referenced(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of every non-optional ConfigMap/Secret the pod spec uses."""

    def ref(
        kind: str, source: dict[str, Any] | None, key: str = "name"
    ) -> Iterator[tuple[str, str]]:
        if source and not source.get("optional", False):
            yield kind, source[key]

    for volume in pod.get("volumes", []):
        yield from ref("ConfigMap", volume.get("configMap"))
        yield from ref("Secret", volume.get("secret"), "secretName")
        for source in (volume.get("projected") or {}).get("sources", []):
            yield from ref("ConfigMap", source.get("configMap"))
            yield from ref("Secret", source.get("secret"))
    for container in _containers(pod):
        for env_from in container.get("envFrom", []):
            yield from ref("ConfigMap", env_from.get("configMapRef"))
            yield from ref("Secret", env_from.get("secretRef"))
        for env in container.get("env", []):
            value_from = env.get("valueFrom") or {}
            yield from ref("ConfigMap", value_from.get("configMapKeyRef"))
            yield from ref("Secret", value_from.get("secretKeyRef"))


def _folder_label(folder: Path, base: Path) -> str:
    """``folder`` as the README's table names it: relative to the README's own folder."""
    try:
        return str(folder.relative_to(base))
    except ValueError:
        return str(folder)


def reference_problems(root: Path, readme: Path) -> list[str]:
    """ConfigMaps/Secrets used by pods that neither their folder nor the README provides."""
    provided = user_provided(readme)
    problems = []
    for folder, items in by_folder(manifests(root)).items():
        defined = {(i.kind, i.name) for i in items}
        label = _folder_label(folder, readme.parent)
        for item in items:
            for _, pod in pod_templates(item):
                for kind, name in _referenced(pod):
                    if (kind, name) in defined or (label, kind, name) in provided:
                        continue
                    problems.append(
                        f"{item.where(root)}: uses {kind} {name!r}, defined neither in "
                        f"{label}/ nor listed for {label}/ under {USER_PROVIDED_HEADING!r} in "
                        f"{readme.name}"
                    )
    return problems


# --- example Secrets --------------------------------------------------------------------------


def applied_whole(doc_files: list[Path], repo: Path) -> set[Path]:
    """Folders the docs tell the reader to apply as a whole (`kubectl apply -f DIR/` or
    "apply `DIR/`"), resolved against the repository, contrib/ and the doc's own folder."""
    folders = set()
    for doc in doc_files:
        if not doc.is_file():
            continue
        text = doc.read_text()
        mentions = [m["path"] for m in _APPLY_COMMAND.finditer(text)]
        mentions += [m["path"] for m in _APPLY_PROSE.finditer(text)]
        for mention in mentions:
            for base in (repo, repo / "contrib", doc.parent):
                candidate = (base / mention).resolve()
                if candidate.is_dir():
                    folders.add(candidate)
    return folders


def _is_example_secret(item: Manifest) -> bool:
    if item.kind != "Secret":
        return False
    if "example" in item.path.name.lower() or "example" in item.name.lower():
        return True
    values = [str(v) for v in (item.doc.get("stringData") or {}).values()]
    for encoded in (item.doc.get("data") or {}).values():
        try:
            values.append(base64.b64decode(str(encoded)).decode(errors="replace"))
        except ValueError:
            values.append(str(encoded))
    return any("CHANGE-ME" in v for v in values)


def example_secret_problems(root: Path, doc_files: list[Path], repo: Path) -> list[str]:
    """Example Secrets inside folders the docs apply as a whole."""
    whole = applied_whole(doc_files, repo)
    return [
        f"{item.where(root)}: example Secret in {item.path.parent.relative_to(root)}/, which "
        "the docs apply as a whole: it would overwrite the real Secret"
        for item in manifests(root)
        if _is_example_secret(item) and item.path.parent.resolve() in whole
    ]


def _doc_files(repo: Path) -> list[Path]:
    """Where deployment instructions live: the READMEs and docs/."""
    found = [repo / "README.md", repo / "contrib" / "README.md"]
    found += sorted((repo / "contrib" / "kubernetes").rglob("*.md"))
    if (repo / "docs").is_dir():
        found += sorted((repo / "docs").rglob("*.md"))
    return found


# --- the repository ---------------------------------------------------------------------------


def test_contrib_has_the_manifests_these_checks_read() -> None:
    """Guard against a checker that silently sees nothing."""
    kinds = {(m.kind, m.name) for m in manifests(CONTRIB)}
    assert {("Deployment", "shop"), ("Deployment", "probed"), ("Service", "probed")} <= kinds
    assert any(pod_templates(m) for m in manifests(CONTRIB))


def test_named_probe_ports_exist_in_the_probes_own_container() -> None:
    assert probe_port_problems(CONTRIB) == []


def test_service_target_ports_exist_in_the_selected_pods() -> None:
    assert service_target_port_problems(CONTRIB) == []


def test_monitor_ports_exist_in_what_the_monitors_select() -> None:
    assert monitor_port_problems(CONTRIB) == []


def test_configmaps_and_secrets_used_by_pods_are_defined_or_documented() -> None:
    assert reference_problems(CONTRIB, K8S_README) == []


def test_the_docs_name_the_folders_to_apply_whole() -> None:
    whole = applied_whole(_doc_files(ROOT), ROOT)
    assert {K8S / "sidecar", K8S / "standalone"} <= whole, whole


def test_no_example_secret_sits_in_a_folder_applied_whole() -> None:
    assert example_secret_problems(CONTRIB, _doc_files(ROOT), ROOT) == []


def test_documented_user_provided_secrets_have_an_example_with_the_keys_the_checks_read() -> None:
    """What the README asks the reader to create is what the pods mount and the checks read."""
    provided = {(kind, name) for _, kind, name in user_provided(K8S_README)}
    assert ("Secret", "shop-probed-secrets") in provided
    examples = {(m.kind, m.name): m for m in manifests(K8S / "examples")}
    for kind, name in provided:
        assert (kind, name) in examples, f"no example of {kind}/{name} in kubernetes/examples/"
    readme = K8S_README.read_text()
    for (kind, name), example in examples.items():
        for key in example.doc.get("stringData") or {}:
            assert f"--from-file={key}" in readme, f"{kind}/{name}: {key} missing from README"


# --- negative controls: each checker catches the mistake it is for -----------------------------


def _copy_kubernetes(tmp_path: Path) -> Path:
    root = tmp_path / "contrib"
    shutil.copytree(K8S, root / "kubernetes")
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_probe_on_a_port_named_only_in_a_sibling_container_is_caught(tmp_path: Path) -> None:
    """The sidecar app's readinessProbe as it was: `port: probed-metrics` (finding 1)."""
    root = _copy_kubernetes(tmp_path)
    deployment = root / "kubernetes" / "sidecar" / "deployment.yaml"
    _edit(deployment, "port: 9334 ", "port: probed-metrics ")
    problems = probe_port_problems(root)
    assert len(problems) == 1, problems
    assert "'shop' readinessProbe.httpGet.port 'probed-metrics'" in problems[0]


@pytest.mark.parametrize("folder", ["sidecar", "standalone"])
def test_liveness_on_a_named_port_the_container_does_not_declare_is_caught(
    tmp_path: Path, folder: str
) -> None:
    """probed's liveness asks `probed-live`: undeclared, the name resolves to nothing."""
    root = _copy_kubernetes(tmp_path)
    deployment = root / "kubernetes" / folder / "deployment.yaml"
    _edit(deployment, "- name: probed-live", "- name: probed-alive")
    problems = probe_port_problems(root)
    assert len(problems) == 1, problems
    assert "'probed' livenessProbe.httpGet.port 'probed-live'" in problems[0], problems


@pytest.mark.parametrize("target", ["metrics", "9444"])
def test_service_target_port_missing_from_the_pods_is_caught(tmp_path: Path, target: str) -> None:
    root = _copy_kubernetes(tmp_path)
    service = root / "kubernetes" / "standalone" / "service.yaml"
    _edit(service, "targetPort: probed-metrics", f"targetPort: {target}")
    problems = service_target_port_problems(root)
    assert len(problems) == 1 and f"targetPort {yaml.safe_load(target)!r}" in problems[0], problems


def test_service_selecting_no_pod_is_caught(tmp_path: Path) -> None:
    root = _copy_kubernetes(tmp_path)
    service = root / "kubernetes" / "standalone" / "service.yaml"
    _edit(service, "  selector:\n    app.kubernetes.io/name: probed", "  selector:\n    app: x")
    assert any("picks no pod" in p for p in service_target_port_problems(root))


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        ("monitoring/podmonitor.yaml", "- port: probed-metrics", "- port: mx", "port 'mx'"),
        ("monitoring/servicemonitor.yaml", "- port: probed-metrics", "- port: web", "port 'web'"),
        ("monitoring/servicemonitor.yaml", "app.kubernetes.io/name: probed\n  endpoints",
         "app.kubernetes.io/name: nothing\n  endpoints", "picks nothing"),
    ],
)  # fmt: skip
def test_monitor_port_missing_from_what_it_selects_is_caught(
    tmp_path: Path, path: str, old: str, new: str, expected: str
) -> None:
    root = _copy_kubernetes(tmp_path)
    _edit(root / "kubernetes" / path, old, new)
    problems = monitor_port_problems(root)
    assert len(problems) == 1 and expected in problems[0], problems


def test_label_selectors_follow_kubernetes_semantics() -> None:
    labels = {"app": "shop", "tier": "web"}
    assert selects({"matchLabels": {"app": "shop"}}, labels)
    assert not selects({"matchLabels": {"app": "probed"}}, labels)
    assert selects({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not selects({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, labels)
    assert selects(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}, labels
    )
    assert not selects(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, labels
    )
    assert selects({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, labels)


def test_undocumented_secret_and_missing_configmap_are_caught(tmp_path: Path) -> None:
    root = _copy_kubernetes(tmp_path)
    readme = root / "kubernetes" / "README.md"
    assert reference_problems(root, readme) == []
    _edit(
        readme, "| `sidecar/` | Secret | `shop-probed-secrets`", "| `sidecar/` | Secret | `other`"
    )
    (root / "kubernetes" / "standalone" / "configmap.yaml").unlink()
    problems = reference_problems(root, readme)
    assert len(problems) == 2, problems
    assert any("Secret 'shop-probed-secrets'" in p for p in problems)
    assert any("ConfigMap 'probed-checks'" in p for p in problems)


def test_example_secret_in_a_folder_applied_whole_is_caught(tmp_path: Path) -> None:
    """The example Secret back in sidecar/, which contrib/README applies whole (finding 3)."""
    repo = tmp_path
    root = _copy_kubernetes(tmp_path)
    shutil.copy(CONTRIB / "README.md", root / "README.md")
    shutil.copy(ROOT / "README.md", repo / "README.md")
    k8s = root / "kubernetes"
    (k8s / "examples" / "shop-probed-secrets.example.yaml").rename(
        k8s / "sidecar" / "secret.example.yaml"
    )
    problems = example_secret_problems(root, _doc_files(repo), repo)
    assert len(problems) == 1, problems
    assert "kubernetes/sidecar/secret.example.yaml: Secret/shop-probed-secrets" in problems[0]


def test_secret_with_placeholder_values_counts_as_an_example(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    encoded = base64.b64encode(b"CHANGE-ME").decode()
    path.write_text(
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: real}}\ndata: {{k: {encoded}}}\n"
    )
    assert _is_example_secret(manifests(tmp_path)[0])
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: real}\ndata: {k: c2VjcmV0}\n")
    assert not _is_example_secret(manifests(tmp_path)[0])
