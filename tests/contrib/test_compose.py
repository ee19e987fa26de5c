"""The compose stack: the compose-spec JSON Schema, and the wiring between services and the
contrib files they mount (paths exist, configs name the right hosts and paths)."""

from __future__ import annotations

import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.contrib._tools import CONTRIB, load_yaml, output, run
from tests.servers._util import require_binary

COMPOSE_DIR = CONTRIB / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
COMPOSE = load_yaml(COMPOSE_FILE)
SERVICES = COMPOSE["services"]


@pytest.fixture
def check_jsonschema() -> str:
    return require_binary("check-jsonschema", "pip install check-jsonschema")


def test_compose_file_matches_compose_spec(check_jsonschema: str) -> None:
    proc = run([check_jsonschema, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)])
    assert proc.returncode == 0, output(proc)


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda c: c["services"]["probed"].update(restart=["always"]), id="wrong-type"),
        pytest.param(lambda c: c["services"]["loki"].update(volume=[]), id="unknown-key"),
        pytest.param(
            lambda c: c["services"]["grafana"].update(depends_on={"loki": {"condition": "up"}}),
            id="bad-enum",
        ),
    ],
)
def test_broken_compose_file_fails_schema(
    check_jsonschema: str, tmp_path: Path, breakage: Any
) -> None:
    compose = load_yaml(COMPOSE_FILE)
    breakage(compose)
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(compose))
    proc = run([check_jsonschema, "--builtin-schema", "vendor.compose-spec", str(path)])
    assert proc.returncode != 0, output(proc)


def _mounts(service: str) -> dict[PurePosixPath, Path]:
    """Container path -> host path of the service's bind mounts (named volumes left out)."""
    mounts = {}
    for spec in SERVICES[service].get("volumes", []):
        source, target = spec.split(":")[:2]
        if source.startswith((".", "/")):
            host = Path(source) if source.startswith("/") else (COMPOSE_DIR / source).resolve()
            mounts[PurePosixPath(target)] = host
    return mounts


def _host_path(service: str, container_path: str) -> Path:
    """The file on this machine that ``service`` sees at ``container_path``."""
    path = PurePosixPath(container_path)
    for target, host in sorted(_mounts(service).items(), key=lambda m: -len(str(m[0]))):
        if path == target or target in path.parents:
            return host / path.relative_to(target)
    raise AssertionError(f"{service} has no mount covering {container_path}")


def _flag(service: str, name: str) -> str:
    command: list[str] = SERVICES[service]["command"]
    return next(arg.split("=", 1)[1] for arg in command if arg.lstrip("-").startswith(name + "="))


def test_every_bind_mount_and_build_context_exists() -> None:
    for service in SERVICES:
        for target, host in _mounts(service).items():
            if str(host).startswith("/var/run"):
                continue  # the Docker socket, on the host that runs the stack
            assert host.exists(), f"{service}: {host} (mounted at {target}) does not exist"
    build = SERVICES["probed"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve().is_file()


def test_services_read_the_contrib_files() -> None:
    assert _host_path("prometheus", _flag("prometheus", "config.file")) == (
        CONTRIB / "prometheus" / "prometheus.yml"
    )
    assert _host_path("alertmanager", _flag("alertmanager", "config.file")) == (
        CONTRIB / "alertmanager" / "alertmanager.yml"
    )
    assert _host_path("loki", _flag("loki", "config.file")) == CONTRIB / "loki" / "loki.yaml"
    assert _host_path("promtail", _flag("promtail", "config.file")) == (
        CONTRIB / "loki" / "promtail.yaml"
    )


def test_prometheus_finds_its_rule_files_inside_the_container() -> None:
    config = load_yaml(CONTRIB / "prometheus" / "prometheus.yml")
    base = _host_path("prometheus", _flag("prometheus", "config.file")).parent
    for pattern in config["rule_files"]:
        assert list(base.glob(pattern)), pattern


def test_alertmanager_secret_files_and_templates_are_mounted() -> None:
    config = load_yaml(CONTRIB / "alertmanager" / "alertmanager.yml")
    files = set()
    for receiver in config["receivers"]:
        for key, notifiers in receiver.items():
            if key.endswith("_configs"):
                for notifier in notifiers:
                    files |= {v for k, v in notifier.items() if k.endswith("_file")}
    assert files
    for path in files:
        host = _host_path("alertmanager", path)
        assert host.is_file(), path
        assert "CHANGE-ME" in host.read_text(), f"{host} must hold a placeholder"
    for pattern in config["templates"]:
        template_dir = _host_path("alertmanager", str(PurePosixPath(pattern).parent))
        assert list(template_dir.glob(PurePosixPath(pattern).name)), pattern


def test_grafana_gets_provisioning_and_dashboards() -> None:
    provider = load_yaml(CONTRIB / "grafana" / "provisioning" / "dashboards" / "probed.yaml")
    dashboards = _host_path("grafana", provider["providers"][0]["options"]["path"])
    assert dashboards == CONTRIB / "grafana" / "dashboards"
    assert _host_path("grafana", "/etc/grafana/provisioning/datasources/probed.yaml").is_file()
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path("grafana", home).is_file()


def test_loki_ruler_reads_the_mounted_rules() -> None:
    loki = load_yaml(CONTRIB / "loki" / "loki.yaml")
    rules_dir = _host_path("loki", loki["ruler"]["storage"]["local"]["directory"])
    assert list(rules_dir.glob("fake/*.yaml")), "tenant 'fake' (auth disabled) has no rules"


def _hosts_named_in_configs() -> dict[str, str]:
    hosts = {}
    prometheus = load_yaml(CONTRIB / "prometheus" / "prometheus.yml")
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                hosts[f"prometheus.yml job {job['job_name']}"] = target.split(":")[0]
    for am in prometheus["alerting"]["alertmanagers"]:
        hosts["prometheus.yml alerting"] = am["static_configs"][0]["targets"][0].split(":")[0]
    datasources = load_yaml(CONTRIB / "grafana" / "provisioning" / "datasources" / "probed.yaml")
    for source in datasources["datasources"]:
        hosts[f"grafana datasource {source['name']}"] = str(urlsplit(source["url"]).hostname)
    loki = load_yaml(CONTRIB / "loki" / "loki.yaml")
    hosts["loki ruler"] = str(urlsplit(loki["ruler"]["alertmanager_url"]).hostname)
    promtail = load_yaml(CONTRIB / "loki" / "promtail.yaml")
    hosts["promtail client"] = str(urlsplit(promtail["clients"][0]["url"]).hostname)
    checks = load_yaml(COMPOSE_DIR / "checks.d" / "stack.yaml")["checks"]
    for check in checks:
        if "url" in check:
            hosts[f"check {check['name']}"] = str(urlsplit(check["url"]).hostname)
    return hosts


def test_hosts_named_in_configs_are_compose_services() -> None:
    for where, host in _hosts_named_in_configs().items():
        assert host in SERVICES or host == "localhost", f"{where}: {host} is not a service"


def test_stack_watches_every_other_service() -> None:
    watched = set(_hosts_named_in_configs().values())
    assert set(SERVICES) - {"probed", "promtail"} <= watched


def test_stack_checks_pass_probed_validate() -> None:
    checks_dir = _host_path("probed", "/etc/probed/checks.d")
    proc = run([sys.executable, "-m", "probed", "validate", "--checks-dir", str(checks_dir)])
    assert proc.returncode == 0, output(proc)
