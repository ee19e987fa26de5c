"""The systemd unit: `systemd-analyze verify` prints nothing, its hardening scores OK, and the
install steps in its header, followed literally, give a unit that starts.

`systemd-analyze verify` checks the unit's form only: a LoadCredential= whose file the install
steps never create, a check type whose plugin the command line does not load, or a step that
only works from another working directory all pass it and still keep the service from starting.
So the steps are followed in a scratch root (absolute paths mapped into it, the repository as
working directory), then every file the unit needs must be there and ExecStart, with its
environment files, must pass `probed validate`.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from tests.contrib._tools import CONTRIB, ROOT, output, run
from tests.servers._util import require_binary

UNIT: Final = CONTRIB / "systemd" / "probed.service"
INSTALLED_PATH: Final = "/opt/probed/bin/probed"
INSTALLED_UNIT: Final = "/etc/systemd/system/probed.service"
_STEP: Final = re.compile(r"^#   (?P<command>\S.*)$")
# Unit keys naming files or directories that must exist when the unit starts ('-' = optional).
FILE_KEYS: Final = ("EnvironmentFile", "WorkingDirectory", "ReadWritePaths", "ReadOnlyPaths")
# What a stock Debian host has before the steps run.
HOST_DIRS: Final = ("/etc/systemd/system", "/opt", "/usr/local/bin", "/run", "/var/lib")


@pytest.fixture
def systemd_analyze() -> str:
    return require_binary("systemd-analyze", "apt-get install systemd")


def _local_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart pointing at this environment's probed: `verify` checks that the
    executable exists, and the unit names where the install steps put it."""
    executable = shutil.which("probed") or f"{sys.executable} -m probed"
    text = (text if text is not None else UNIT.read_text()).replace(INSTALLED_PATH, executable)
    path = tmp_path / "probed.service"
    path.write_text(text)
    return path


# --- the install steps, followed in a scratch root --------------------------------------------


def install_steps(unit_text: str) -> list[str]:
    """The commands of the header's "Install" block (`#   command` lines after `# Install`)."""
    lines = unit_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Install"))
    steps = []
    for line in lines[start + 1 :]:
        if not line.startswith("#"):
            break
        if match := _STEP.match(line):
            steps.append(match["command"])
        elif steps:
            break  # the block ends at the first line that is not a command
    return steps


def service_settings(unit_text: str) -> dict[str, list[str]]:
    """Every Key=value of the [Service] section, in order (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in unit_text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@dataclass
class Install:
    """A scratch root where the install steps ran."""

    root: Path
    repo: Path
    problems: list[str] = field(default_factory=list)

    def host(self, path: str) -> Path:
        """The scratch file standing for an absolute path of the real machine."""
        return self.root / path.lstrip("/")


def _wrapper(path: Path) -> None:
    """What `python3 -m venv DIR && DIR/bin/pip install '.[all]'` leaves at DIR/bin/probed:
    an executable running this repository's probed (installing it again from an index is the
    one step the test does not repeat)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f'exec {shlex.quote(sys.executable)} -m probed "$@"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def follow_install_steps(unit_text: str, root: Path, repo: Path = ROOT) -> Install:
    """Run the header's install steps as written, from ``repo``, with every absolute path
    mapped into ``root``. `systemctl` steps are left to systemd; an unknown command is a
    problem (teach this function, do not skip it)."""
    done = Install(root, repo)
    for directory in HOST_DIRS:
        done.host(directory).mkdir(parents=True, exist_ok=True)
    steps = install_steps(unit_text)
    if not steps:
        done.problems.append("the unit's header has no install steps")
    for step in steps:
        for command in step.split("&&"):
            args = shlex.split(command, comments=True)
            if not args:
                continue
            name = Path(args[0]).name
            if name == "systemctl":
                continue
            if args[:3] == ["python3", "-m", "venv"]:
                _wrapper(done.host(args[3]) / "bin" / "probed")
                continue
            if name == "pip" and args[1:2] == ["install"]:
                if not done.host(args[0]).parent.is_dir():
                    done.problems.append(f"{command.strip()}: no venv at {args[0]}")
                continue
            if name not in ("install", "cp", "mkdir"):
                done.problems.append(f"{command.strip()}: unknown install step")
                continue
            mapped = [args[0]]
            for arg in args[1:]:
                if arg.startswith("/"):
                    mapped.append(str(done.host(arg)))
                elif any(c in arg for c in "*?["):
                    matches = sorted(glob.glob(arg, root_dir=repo))
                    mapped += matches or [arg]  # an unmatched glob stays, as in sh
                else:
                    mapped.append(arg)
            proc = run(mapped, cwd=repo)
            if proc.returncode != 0:
                done.problems.append(f"{command.strip()}: {proc.stderr.strip()}")
    return done


def _environment_file(path: Path) -> dict[str, str]:
    """KEY=value lines as systemd reads an EnvironmentFile (comments and blanks skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")) and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("\"'")
    return env


def unit_problems(unit_text: str, root: Path, repo: Path = ROOT) -> list[str]:
    """Why the unit, installed by its own steps, would not start ([] when it would)."""
    install = follow_install_steps(unit_text, root, repo)
    problems = list(install.problems)
    if not install.host(INSTALLED_UNIT).is_file():
        problems.append(f"the install steps never put the unit at {INSTALLED_UNIT}")
    settings = service_settings(unit_text)
    required = [
        (key, v) for key in FILE_KEYS for value in settings.get(key, []) for v in value.split()
    ]
    required += [
        ("LoadCredential", v.split(":", 1)[1])
        for v in settings.get("LoadCredential", [])
        if ":" in v
    ]
    for key, value in required:
        if value.startswith("-"):
            continue  # optional: systemd ignores a missing one
        if not install.host(value.lstrip("+")).exists():
            problems.append(f"{key}={value}: not created by the install steps")
    if problems:
        return problems

    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    for value in settings.get("EnvironmentFile", []):
        path = install.host(value.lstrip("-"))
        if path.is_file():
            env.update(_environment_file(path))
    for value in settings.get("Environment", []):
        for assignment in shlex.split(value):
            key, _, val = assignment.partition("=")
            env[key] = val
    for key in ("PROBED_CHECKS_DIR", "PROBED_PLUGINS_DIR", "PROBED_CONFIG"):
        if key in env:
            env[key] = ":".join(str(install.host(p)) for p in env[key].split(":") if p)
    (exec_start,) = settings["ExecStart"]
    argv = shlex.split(exec_start.lstrip("-@:+!"))
    if argv[1:2] != ["run"]:
        return [f"ExecStart={exec_start}: expected `probed run ...`"]
    executable = install.host(argv[0])
    if not os.access(executable, os.X_OK):
        return [f"ExecStart={exec_start}: {argv[0]} is not installed by the install steps"]
    args = [str(install.host(a)) if a.startswith("/") else a for a in argv[2:]]
    proc = run([str(executable), "validate", *args], cwd=root)
    if proc.returncode != 0:
        return [f"ExecStart={exec_start} as `probed validate`: {output(proc)}"]
    return []


# --- the unit as shipped ------------------------------------------------------------------------


def test_install_steps_followed_literally_give_a_unit_that_starts(tmp_path: Path) -> None:
    assert unit_problems(UNIT.read_text(), tmp_path) == []


def test_install_steps_cover_the_shipped_checks_and_their_plugin(tmp_path: Path) -> None:
    """Every example check is installed, file_age ones included, and their plugin with them."""
    install = follow_install_steps(UNIT.read_text(), tmp_path)
    assert install.problems == []
    installed = {p.name for p in install.host("/etc/probed/checks.d").iterdir()}
    shipped = [*(ROOT / "checks.d").glob("*.yaml"), *(ROOT / "checks.d").glob("*.token")]
    assert installed == {p.name for p in shipped}  # the heartbeat example reads its token file
    assert "backups.yaml" in installed  # file_age checks
    plugins_dir = service_settings(UNIT.read_text())["ExecStart"][0].split("--plugins-dir ")[1]
    assert install.host(plugins_dir.split()[0]).joinpath("file_age.py").is_file()


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


# --- negative controls: each mistake of finding 5 is caught ------------------------------------


def _unit(*replacements: tuple[str, str]) -> str:
    text = UNIT.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


def test_a_credential_file_the_steps_never_create_is_caught(tmp_path: Path) -> None:
    text = _unit(("#LoadCredential=", "LoadCredential="))
    problems = unit_problems(text, tmp_path)
    assert problems == [
        "LoadCredential=/etc/probed/credentials/pg-password: not created by the install steps"
    ]


def test_file_age_checks_without_the_plugins_dir_are_caught(tmp_path: Path) -> None:
    """The old unit: every checks.d/*.yaml copied, probed started without file_age."""
    text = _unit(
        (" --plugins-dir /etc/probed/plugins", ""),
        ("#   install -m 0644 plugins/file_age.py /etc/probed/plugins/\n", ""),
    )
    problems = unit_problems(text, tmp_path)
    assert len(problems) == 1, problems
    assert "file_age" in problems[0], problems


def test_a_step_written_for_another_working_directory_is_caught(tmp_path: Path) -> None:
    """The old header: `install probed.service` (from contrib/systemd) next to `cp checks.d/`
    (from the repository root)."""
    text = _unit(
        (
            "install -m 0644 contrib/systemd/probed.service /etc/systemd/system/",
            "install -m 0644 probed.service /etc/systemd/system/",
        )
    )
    problems = unit_problems(text, tmp_path)
    assert any(p.startswith("install -m 0644 probed.service") for p in problems), problems
    assert f"the install steps never put the unit at {INSTALLED_UNIT}" in problems


def test_a_required_environment_file_that_is_not_installed_is_caught(tmp_path: Path) -> None:
    text = _unit(
        ("#   install -m 0600 contrib/environments/production.env /etc/probed/probed.env\n", "")
    )
    assert unit_problems(text, tmp_path) == [
        "EnvironmentFile=/etc/probed/probed.env: not created by the install steps"
    ]
