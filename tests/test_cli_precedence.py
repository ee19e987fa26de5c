"""Where settings come from, highest first: the command line, ``PROBED_*`` environment
variables, ``probed.yaml``, built-in defaults (README "probed.yaml", probed/settings.py).

Real ``probed`` subprocesses; each test gives two sources conflicting values whose effects a
user can tell apart (a valid vs a broken checks directory, two listen ports, two log formats).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.harness import write
from tests.servers._util import free_port, wait_until

PROBED = [sys.executable, "-m", "probed"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env.update(extra)
    return env


def validate(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PROBED, "validate", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def two_dirs(tmp_path: Path) -> tuple[Path, Path]:
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    write(good / "a.yaml", "checks:\n  - {name: g, type: tcp, address: '127.0.0.1:1'}\n")
    write(bad / "a.yaml", "checks:\n  - {name: b, type: tcp, adress: '127.0.0.1:1'}\n")
    return good, bad


def test_checks_dir_on_the_command_line_wins_over_probed_checks_dir(tmp_path: Path) -> None:
    good, bad = two_dirs(tmp_path)
    result = validate("--checks-dir", str(good), cwd=tmp_path, PROBED_CHECKS_DIR=str(bad))
    assert result.returncode == 0, result.stderr
    assert "configuration valid: 1 check(s)" in result.stdout
    # control: the variable alone is read (so the test above really had a conflict)
    alone = validate(cwd=tmp_path, PROBED_CHECKS_DIR=str(bad))
    assert alone.returncode == 1 and "adress" in alone.stderr


def test_probed_checks_dir_wins_over_probed_yaml(tmp_path: Path) -> None:
    good, bad = two_dirs(tmp_path)
    config = write(tmp_path / "probed.yaml", f"checks_dirs: [{bad}]\n")
    result = validate("--config", str(config), cwd=tmp_path, PROBED_CHECKS_DIR=str(good))
    assert result.returncode == 0, result.stderr
    alone = validate("--config", str(config), cwd=tmp_path)
    assert alone.returncode == 1 and "adress" in alone.stderr


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_listen_and_log_format_on_the_command_line_win_over_the_environment(
    tmp_path: Path,
) -> None:
    checks = tmp_path / "checks"
    write(checks / "a.yaml", "checks: []\n")
    env_port, cli_port = free_port(), free_port()
    config = write(tmp_path / "probed.yaml", f"listen: 127.0.0.1:{free_port()}\n")
    command = [*PROBED, "run", "--config", str(config), "--checks-dir", str(checks)]
    command += ["--listen", f"127.0.0.1:{cli_port}", "--log-format", "text"]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=clean_env(PROBED_LISTEN=f"127.0.0.1:{env_port}", PROBED_LOG_FORMAT="json"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: (
                proc.poll() is not None
                or _status(f"http://127.0.0.1:{cli_port}/health/live") == 200
            ),
            20,
            "the daemon to listen on the command line's port",
        )
        assert proc.poll() is None
        assert _status(f"http://127.0.0.1:{env_port}/health/live") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and f"127.0.0.1:{cli_port}" in err
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            continue
        raise AssertionError(f"a JSON log line although --log-format text was given: {line}")
