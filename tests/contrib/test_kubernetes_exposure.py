"""Kubernetes manifests: what of probed is reachable from the pod network (issue 8).

For every pod that runs probed (a container named ``probed``):

- probed has a health-only listener (``--health-listen``/``PROBED_HEALTH_LISTEN``), and every
  kubelet probe asking a ``/health/*`` path of probed's ports asks that listener, so the main
  listener can carry TLS and auth without breaking the probes;
- no probe asks anything but ``/health/*`` of the health listener (it answers 404);
- probed has a live listener (``--live-listen``/``PROBED_LIVE_LISTEN``, answered off the event
  loop by a thread) and probed's ``livenessProbe`` asks ``/health/live`` of it, never of the
  health or main listener: those are served by the loop, so a plugin check that blocks the loop
  for longer than the probe's timeout would get the container restarted; nothing else asks the
  live listener (it serves ``/health/live`` only);
- every probe of probed's container, its port resolved (a name among the container's own
  ``containerPort``s), asks a port probed listens on;
- nothing (probe, argument, environment, ConfigMap) opens ``/-/reload`` to the pod network
  (``reload_endpoint: open``) or points a probe at it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from tests.contrib._tools import CONTRIB
from tests.contrib.test_kubernetes_semantics import (
    PROBES,
    _containers,
    by_folder,
    manifests,
    pod_templates,
)

K8S: Final = CONTRIB / "kubernetes"
DEFAULT_PORT: Final = 9333
_OPEN_RELOAD: Final = re.compile(r"^\s*reload_endpoint:\s*['\"]?open", re.MULTILINE)


def _option(container: dict[str, Any], flag: str, env: str) -> str | None:
    """The value of ``flag`` in the container's args, else of the ``env`` variable."""
    args = [str(a) for a in (*container.get("command", []), *container.get("args", []))]
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    for item in container.get("env", []):
        if item.get("name") == env:
            return str(item.get("value", ""))
    return None


def _port_of(listen: str | None) -> int | None:
    return int(listen.rsplit(":", 1)[1]) if listen else None


def _probes(pod: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    for container in _containers(pod):
        for key in PROBES:
            http = (container.get(key) or {}).get("httpGet")
            if http:
                yield container, key, http


def _resolve(container: dict[str, Any], port: Any) -> int | None:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


def exposure_problems(root: Path) -> list[str]:
    """What of probed a pod's manifests leave reachable that they should not (module doc)."""
    problems: list[str] = []
    for folder, items in by_folder(manifests(root)).items():
        for item in items:
            where = item.where(root)
            for _, pod in pod_templates(item):
                for probed in (c for c in _containers(pod) if c.get("name") == "probed"):
                    main = _port_of(_option(probed, "--listen", "PROBED_LISTEN")) or DEFAULT_PORT
                    health = _port_of(_option(probed, "--health-listen", "PROBED_HEALTH_LISTEN"))
                    live = _port_of(_option(probed, "--live-listen", "PROBED_LIVE_LISTEN"))
                    if health is None:
                        problems.append(f"{where}: probed has no --health-listen")
                    if live is None and probed.get("livenessProbe"):
                        problems.append(
                            f"{where}: probed has a livenessProbe but no --live-listen "
                            "(a check blocking the event loop would get it restarted)"
                        )
                    listening = {p for p in (main, health, live) if p is not None}
                    for container, key, http in _probes(pod):
                        port, path = _resolve(container, http.get("port")), http.get("path", "/")
                        what = f"{where}: container {container['name']!r} {key} {path}"
                        is_probed = container is probed
                        if is_probed and port not in listening:
                            problems.append(
                                f"{what}: port {http.get('port')!r} is none of probed's "
                                f"listeners {sorted(listening)}"
                            )
                        elif is_probed and key == "livenessProbe" and live is not None:
                            if port != live or path != "/health/live":
                                problems.append(
                                    f"{what} on port {port}: probed's liveness must ask "
                                    f"/health/live of the live listener ({live}), served off "
                                    "the event loop"
                                )
                        elif live is not None and port == live and path != "/health/live":
                            problems.append(f"{what}: the live listener serves /health/live only")
                        elif path.startswith("/-/"):
                            problems.append(f"{what}: a probe must not ask a mutating endpoint")
                        elif path.startswith("/health/") and port == main:
                            problems.append(
                                f"{what}: asks the main listener ({main}), not the "
                                f"health-only one ({health})"
                            )
                        elif port == health and not path.startswith("/health/"):
                            problems.append(f"{what}: the health listener serves /health/* only")
            if item.kind == "ConfigMap":
                for key, text in (item.doc.get("data") or {}).items():
                    if _OPEN_RELOAD.search(str(text)):
                        problems.append(f"{where}: {key} sets reload_endpoint: open")
        del folder
    return problems


def test_probes_use_the_health_and_live_listeners_and_nothing_mutating_is_exposed() -> None:
    assert exposure_problems(K8S) == []


def test_the_checker_sees_the_probed_pods() -> None:
    pods = [pod for m in manifests(K8S) for _, pod in pod_templates(m)]
    probed = [c for pod in pods for c in _containers(pod) if c.get("name") == "probed"]
    assert len(probed) >= 2  # the sidecar and the standalone deployment


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "kubernetes"
    shutil.copytree(K8S, root)
    return root


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def test_a_kubelet_probe_on_the_main_listener_is_caught(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "sidecar" / "deployment.yaml", "port: 9334 ", "port: 9333 ")
    problems = exposure_problems(root)
    assert len(problems) == 1 and "'shop' readinessProbe /health/ready" in problems[0], problems


def test_a_probed_without_health_listener_is_caught(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(root / "standalone" / "deployment.yaml", "- --health-listen ", "- --other ")
    problems = exposure_problems(root)
    assert any("probed has no --health-listen" in p for p in problems), problems


@pytest.mark.parametrize(
    ("folder", "old", "new"),
    [
        # The sidecar's liveness by name: the health listener's port name.
        (
            "sidecar",
            "port: probed-live        # answered off the loop",
            "port: probed-health      # answered off the loop",
        ),
        # The standalone's liveness by name, at the health listener.
        (
            "standalone",
            "path: /health/live\n              port: probed-live",
            "path: /health/live\n              port: probed-health",
        ),
        # The right name, but the declared containerPort is the health listener's number.
        ("standalone", "containerPort: 9335", "containerPort: 9334"),
    ],
    ids=["sidecar-by-name", "standalone-by-name", "standalone-port-number"],
)
def test_a_liveness_probe_on_the_health_listener_is_caught(
    tmp_path: Path, folder: str, old: str, new: str
) -> None:
    root = _copy(tmp_path)
    _edit(root / folder / "deployment.yaml", old, new)
    problems = exposure_problems(root)
    assert len(problems) == 1, problems
    assert "'probed' livenessProbe /health/live on port 9334" in problems[0], problems
    assert "live listener (9335)" in problems[0], problems


def test_a_probed_liveness_probe_without_live_listener_is_caught(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(
        root / "sidecar" / "deployment.yaml",
        "            - name: PROBED_LIVE_LISTEN\n              value: 0.0.0.0:9335",
        "            - name: PROBED_UNUSED\n              value: 0.0.0.0:9335",
    )
    problems = exposure_problems(root)
    # The liveness probe now asks a port nothing listens on, and there is no live listener.
    assert any("probed has a livenessProbe but no --live-listen" in p for p in problems), problems
    assert any("is none of probed's listeners [9333, 9334]" in p for p in problems), problems


def test_a_readiness_probe_on_the_live_listener_is_caught(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    _edit(
        root / "standalone" / "deployment.yaml",
        "path: /health/ready\n              port: probed-health",
        "path: /health/ready\n              port: probed-live",
    )
    problems = exposure_problems(root)
    assert len(problems) == 1, problems
    assert (
        "readinessProbe /health/ready: the live listener serves /health/live only" in (problems[0])
    ), problems


def test_an_open_reload_endpoint_in_a_configmap_is_caught(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    configmap = root / "sidecar" / "configmap.yaml"
    _edit(configmap, "\ndata:\n", "\ndata:\n  probed.yaml: |\n    reload_endpoint: open\n")
    problems = exposure_problems(root)
    assert len(problems) == 1 and "sets reload_endpoint: open" in problems[0], problems
