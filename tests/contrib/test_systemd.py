"""The systemd unit: `systemd-analyze verify` prints nothing, and its hardening scores OK."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.contrib._tools import CONTRIB, output, run
from tests.servers._util import require_binary

UNIT = CONTRIB / "systemd" / "probed.service"
INSTALLED_PATH = "/usr/local/bin/probed"


@pytest.fixture
def systemd_analyze() -> str:
    return require_binary("systemd-analyze", "apt-get install systemd")


def _local_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this environment's probed: `verify` checks that the
    executable exists, and the unit names where a package installs it."""
    executable = shutil.which("probed") or f"{sys.executable} -m probed"
    text = (text if text is not None else UNIT.read_text()).replace(INSTALLED_PATH, executable)
    path = tmp_path / "probed.service"
    path.write_text(text)
    return path


def test_unit_passes_systemd_analyze_verify_without_output(
    systemd_analyze: str, tmp_path: Path
) -> None:
    assert INSTALLED_PATH in UNIT.read_text()
    proc = run([systemd_analyze, "verify", str(_local_unit(tmp_path))])
    assert proc.returncode == 0, output(proc)
    assert proc.stderr == "", output(proc)
    assert proc.stdout == "", output(proc)


def test_unit_with_unknown_key_is_caught(systemd_analyze: str, tmp_path: Path) -> None:
    """systemd only warns about unknown keys (exit 0): stderr output is the failure signal."""
    text = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    proc = run([systemd_analyze, "verify", str(_local_unit(tmp_path, text))])
    assert proc.stderr != "", output(proc)
    assert "NoNewPrivilege" in proc.stderr


def test_unit_reloads_with_sighup_and_restarts_on_failure() -> None:
    lines = set(UNIT.read_text().splitlines())
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines
    assert "Restart=on-failure" in lines


def test_unit_hardening_exposure_is_low(systemd_analyze: str, tmp_path: Path) -> None:
    # --threshold is the exposure level times ten: fail above 2.0 ("OK" is below 2.0 or so).
    proc = run(
        [systemd_analyze, "security", "--offline=yes", "--threshold=20", str(_local_unit(tmp_path))]
    )
    assert proc.returncode == 0, output(proc)


def test_unhardened_unit_fails_exposure_threshold(systemd_analyze: str, tmp_path: Path) -> None:
    text = "[Unit]\nDescription=x\n[Service]\nExecStart=/usr/local/bin/probed run\n"
    proc = run(
        [systemd_analyze, "security", "--offline=yes", "--threshold=20",
         str(_local_unit(tmp_path, text))]
    )  # fmt: skip
    assert proc.returncode != 0, output(proc)
