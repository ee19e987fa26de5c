"""The command line as users run it: real subprocesses, real ports, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import write
from tests.servers._util import free_port, wait_until

PROBED = [sys.executable, "-m", "probed"]


def probed(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    full_env.update(env or {})
    return subprocess.run(
        [*PROBED, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def http_target() -> Iterator[int]:
    """A real HTTP server in a subprocess answering 200 on every path."""
    port = free_port()
    code = (
        "import http.server, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.send_header('Content-Length', '2');"
        " self.end_headers(); self.wfile.write(b'OK')\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.ThreadingHTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/")[0] == 200, 10, "http target")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def acceptance_dir(tmp_path: Path, port: int) -> Path:
    checks = tmp_path / "checks.d"
    write(
        checks / "web.yaml",
        f"""
        defaults:
          interval: 2s
          timeout: 1s
          failure_threshold: 1
        checks:
          - name: web-ok
            type: http
            url: http://127.0.0.1:{port}/healthz
          - name: web-down
            type: http
            url: http://127.0.0.1:{free_port()}/healthz
          - name: tcp-ok
            type: tcp
            address: 127.0.0.1:{port}
        """,
    )
    return checks


def test_once_on_a_failing_check_exits_2_and_writes_valid_junit(
    tmp_path: Path, http_target: int
) -> None:
    checks = acceptance_dir(tmp_path, http_target)
    report = tmp_path / "report.xml"
    result = probed(
        "once",
        "--checks-dir",
        str(checks),
        "--check",
        "web-down",
        "--format",
        "junit",
        "--output",
        str(report),
    )
    assert result.returncode == 2, result.stderr
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    [case] = suite.findall("testcase")
    assert case.get("name") == "web-down" and case.get("classname") == "probed.http"
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "connection_refused"


def test_once_exit_code_is_the_worst_status(tmp_path: Path, http_target: int) -> None:
    checks = acceptance_dir(tmp_path, http_target)
    passing = probed("once", "--checks-dir", str(checks), "--check", "web-ok", "--check", "tcp-ok")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "OK" in passing.stdout and "web-ok" in passing.stdout
    everything = probed("once", "--checks-dir", str(checks), "--format", "json")
    assert everything.returncode == 2
    statuses = {c["name"]: c["status"] for c in json.loads(everything.stdout)}
    assert statuses == {"web-ok": "ok", "web-down": "fail", "tcp-ok": "ok"}
    missing = probed("once", "--checks-dir", str(checks), "--check", "nope")
    assert missing.returncode == 3 and "nope" in missing.stderr
    # A warning: less free space than any disk has (1 PiB) is a warn level, never a fail.
    write(
        checks / "disk.yaml",
        """
        checks:
          - name: disk-warns
            type: disk
            path: /
            warn_used_percent: null
            fail_used_percent: null
            warn_inodes_used_percent: null
            fail_inodes_used_percent: null
            warn_free_bytes: 1PiB
        """,
    )
    warned = probed(
        "once", "--checks-dir", str(checks), "--check", "web-ok", "--check", "disk-warns"
    )
    assert warned.returncode == 1, warned.stdout + warned.stderr
    assert "WARN" in warned.stdout and "disk-warns" in warned.stdout
    worst = probed("once", "--checks-dir", str(checks), "--format", "json")
    assert worst.returncode == 2  # fail beats warn
    assert {c["name"]: c["status"] for c in json.loads(worst.stdout)}["disk-warns"] == "warn"


def test_validate_reports_unknown_key_with_file_line_and_key(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    write(
        checks / "bad.yaml",
        """
        checks:
          - name: api
            type: http
            url: http://127.0.0.1:1/
            timout: 2s
        """,
    )
    result = probed("validate", "--checks-dir", str(checks))
    assert result.returncode == 1
    assert f"{checks / 'bad.yaml'}:5: checks[0].timout: unknown key 'timout'" in result.stderr
    assert "did you mean 'timeout'" in result.stderr


def test_validate_accepts_a_valid_directory(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    write(checks / "ok.yaml", "checks:\n  - {name: t, type: tcp, address: '127.0.0.1:1'}\n")
    result = probed("validate", "--checks-dir", str(checks))
    assert result.returncode == 0, result.stderr
    assert "1 check" in result.stdout


def test_options_are_read_from_probed_environment_variables(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    write(checks / "bad.yaml", "checks:\n  - {name: t, type: tcp, adress: x}\n")
    result = probed("validate", env={"PROBED_CHECKS_DIR": str(checks)})
    assert result.returncode == 1
    assert "adress" in result.stderr and "did you mean 'address'" in result.stderr


class Daemon:
    """A ``probed run`` subprocess."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
        full_env.update(env or {})
        full_env["PROBED_LISTEN"] = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*PROBED, *args], cwd=cwd, env=full_env, stderr=subprocess.PIPE, text=True
        )
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(
            lambda: self.proc.poll() is not None or _get(self.url + "/health/live")[0] == 200,
            20,
            "daemon to answer /health/live",
        )
        assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""

    def get(self, path: str) -> tuple[int, str]:
        return _get(self.url + path)

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err


def test_daemon_runs_valid_checks_beside_a_broken_file(tmp_path: Path, http_target: int) -> None:
    checks = acceptance_dir(tmp_path, http_target)
    write(checks / "broken.yaml", "checks:\n  - name: bad\n    type: http\n    urll: x\n")
    daemon = Daemon("run", "--checks-dir", str(checks), cwd=tmp_path)
    try:
        wait_until(
            lambda: 'probed_check_success{check="tcp-ok"' in daemon.get("/metrics")[1],
            20,
            "tcp-ok to run",
        )
        wait_until(
            lambda: 'probed_check_success{check="web-down"' in daemon.get("/metrics")[1],
            20,
            "web-down to run",
        )
        _, metrics = daemon.get("/metrics")
        assert 'probed_check_success{check="web-down",type="http"} 0' in metrics
        assert "probed_config_last_reload_successful 0.0" in metrics
        status, body = daemon.get("/health/ready")
        assert status == 503 and "web-down" in body
        status, body = daemon.get("/api/v1/checks")
        assert any("broken.yaml:4" in e for e in json.loads(body)["config_errors"])
    finally:
        code, err = daemon.stop()
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "config_error" for line in lines)
    assert lines[-1]["msg"] == "stopped"


def test_probed_with_no_arguments_runs_embedded_host_checks(tmp_path: Path) -> None:
    daemon = Daemon(cwd=tmp_path)
    try:
        wait_until(lambda: 'check="host-memory"' in daemon.get("/metrics")[1], 20, "host checks")
        _, body = daemon.get("/api/v1/checks")
        names = {c["name"] for c in json.loads(body)["checks"]}
        assert names == {"host-disk-root", "host-memory", "host-cpu"}
        assert daemon.get("/health/ready")[0] == 200
    finally:
        code, err = daemon.stop()
    assert code == 0
    first = json.loads(err.splitlines()[0])
    assert first["event"] == "started" and first["checks"] == 3
    assert "from embedded host checks" in first["msg"]


def test_sighup_reloads_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    checks = tmp_path / "checks.d"
    write(checks / "a.yaml", "checks:\n  - {name: t1, type: tcp, address: '127.0.0.1:1'}\n")
    daemon = Daemon(
        "run", "--checks-dir", str(checks), cwd=tmp_path, env={"PROBED_LOG_FORMAT": "json"}
    )
    try:
        write(checks / "b.yaml", "checks:\n  - {name: t2, type: tcp, address: '127.0.0.1:1'}\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: '"t2"' in daemon.get("/api/v1/checks")[1], 20, "reload via SIGHUP")
    finally:
        code, _ = daemon.stop()
    assert code == 0


def test_plugins_lists_builtin_types_and_drop_ins(tmp_path: Path) -> None:
    result = probed(
        "plugins", "--format", "json", "--plugins-dir", "plugins", cwd=Path(__file__).parent.parent
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    types = {t["type"]: t for t in data["check_types"]}
    for name in (
        "http",
        "tcp",
        "json_api",
        "dns",
        "icmp",
        "postgres",
        "redis",
        "disk",
        "cpu",
        "memory",
        "file_age",
    ):
        assert name in types, name
    origins = {p["name"]: p["origin"] for p in data["plugins"]}
    assert origins["probed.checks.http"] == "builtin"
    assert origins["file_age"] == "directory"
    text = probed("plugins", cwd=tmp_path)
    assert "http" in text.stdout and "Check types:" in text.stdout


def test_gate_passes_a_healthy_window(tmp_path: Path, http_target: int) -> None:
    checks = acceptance_dir(tmp_path, http_target)
    result = probed(
        "gate",
        "--checks-dir",
        str(checks),
        "--check",
        "web-ok",
        "--check",
        "tcp-ok",
        "--for",
        "600ms",
        "--every",
        "200ms",
        "--max-failure-ratio",
        "0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"gate passed: 0/\d+ runs failed \(0.00%, max 0.00%\)", result.stdout)
    assert "round 2: 2/2 passed" in result.stdout


def test_gate_fails_early_when_the_failure_budget_is_spent(
    tmp_path: Path, http_target: int
) -> None:
    checks = acceptance_dir(tmp_path, http_target)
    result = probed(
        "gate",
        "--checks-dir",
        str(checks),
        "--for",
        "1m",
        "--every",
        "100ms",
        "--max-failure-ratio",
        "0.01",
        timeout=30,
    )
    assert result.returncode == 2
    assert "gate FAILED early" in result.stdout
    assert "web-down fail" in result.stdout


def test_shipped_examples_validate_and_cover_every_check_type() -> None:
    root = Path(__file__).parent.parent
    result = probed("validate", "--checks-dir", "checks.d", "--plugins-dir", "plugins", cwd=root)
    assert result.returncode == 0, result.stderr
    from probed.config import load_checks, load_settings
    from probed.plugins import check_types, get_plugin_manager

    pm = get_plugin_manager(plugins_dirs=[root / "plugins"], entry_points=False)
    types = check_types(pm)
    settings = load_settings(None, {"checks_dirs": (root / "checks.d",)})
    loaded = load_checks(settings, types)
    assert not loaded.errors
    assert {spec.type for spec in loaded.specs.values()} >= set(types)


def test_options_without_a_command_mean_run_even_when_a_value_names_a_command() -> None:
    from probed.cli import _default_to_run

    assert _default_to_run([]) == ["run"]
    assert _default_to_run(["--checks-dir", "plugins"]) == ["run", "--checks-dir", "plugins"]
    assert _default_to_run(["--plugins-dir", "plugins", "validate"])[-1] == "validate"
    assert _default_to_run(["validate", "--checks-dir", "x"])[0] == "validate"
    assert _default_to_run(["--version"]) == ["--version"]
