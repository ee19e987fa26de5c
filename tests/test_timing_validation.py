"""A check whose options cannot fit in its timeout is a validation error, not a run failure."""

from __future__ import annotations

from pathlib import Path

from probed.config import load_checks, load_settings
from probed.plugins import check_types, get_plugin_manager
from tests.harness import write


def load(directory: Path) -> list[str]:
    pm = get_plugin_manager(entry_points=False)
    settings = load_settings(None, {"checks_dirs": (directory,)})
    return [str(e) for e in load_checks(settings, check_types(pm)).errors]


def test_icmp_packets_that_cannot_fit_in_the_timeout_are_reported_by_validate(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "ping.yaml",
        """
        checks:
          - name: ping
            type: icmp
            host: 127.0.0.1
            interval: 10s
            timeout: 2s
            count: 5
            packet_interval: 1s
        """,
    )
    [error] = load(tmp_path)
    assert error.startswith(f"{path}:6: checks[0].timeout: 5 echo requests 1s apart")
    assert "not less than the check timeout 2s" in error


def test_cpu_window_not_shorter_than_the_timeout_is_reported(tmp_path: Path) -> None:
    write(
        tmp_path / "cpu.yaml",
        """
        checks:
          - {name: cpu, type: cpu, interval: 10s, timeout: 1s, window: 2s}
          - {name: cpu-ok, type: cpu, interval: 10s, timeout: 3s, window: 2s}
        """,
    )
    [error] = load(tmp_path)
    assert "checks[0].timeout: cpu window 2s is not shorter than the check timeout 1s" in error
