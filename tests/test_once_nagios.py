"""``probed once --format nagios``: the real command line as Nagios, Icinga or Zabbix run it:
one status line with perfdata, exit code 0-3 the worst status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probed.checks._nagios import parse_output, parse_perfdata

SECRET = "nagios-S3cret-v4lue-7731"
LINE_RE = re.compile(r"PROBED (OK|WARNING|CRITICAL|UNKNOWN) - \d+ checks?: [^|\n]+ \| [^\n]+\n")


def probed(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    return subprocess.run(
        [sys.executable, "-m", "probed", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def exec_check(name: str, code: int, output: str, **extra: str) -> str:
    """A check file entry: a shell command printing ``output`` and exiting ``code``."""
    more = "".join(f"    {k}: {v}\n" for k, v in extra.items())
    quoted = output.replace("'", "'\"'\"'")
    return (
        f"  - name: {name}\n    type: exec\n    timeout: 5s\n    shell: true\n"
        f"    command: \"printf '%s\\\\n' '{quoted}'; exit {code}\"\n{more}"
    )


def checks_dir(tmp_path: Path, *entries: str) -> Path:
    directory = tmp_path / "checks.d"
    directory.mkdir()
    (directory / "checks.yaml").write_text("checks:\n" + "".join(entries))
    return directory


def perf(stdout: str) -> dict[str, float | None]:
    out = parse_output(stdout)
    parsed = parse_perfdata(out.perfdata, max_items=100)
    assert parsed.invalid == 0 and parsed.dropped == 0, out.perfdata
    return {p.label: p.value for p in parsed.items}


def test_all_ok_is_one_ok_line_with_duration_and_status_perfdata_exit_0(tmp_path: Path) -> None:
    directory = checks_dir(
        tmp_path, exec_check("web", 0, "OK - fine"), exec_check("db.main-1", 0, "OK - up")
    )
    done = probed("once", "--checks-dir", str(directory), "--format", "nagios")
    assert done.returncode == 0, done.stderr
    assert LINE_RE.fullmatch(done.stdout), done.stdout
    assert done.stdout.startswith("PROBED OK - 2 checks: 2 ok | ")
    values = perf(done.stdout)
    assert set(values) == {
        f"{name}_{what}"
        for name in ("web", "db.main-1")
        for what in ("duration", "status", "exec_exit_code")  # the type's own values too
    }
    assert values["web_status"] == 0 and values["db.main-1_status"] == 0
    assert 0 < (values["web_duration"] or 0) < 5
    assert "web_duration=" in done.stdout and ";;;0;5 " in done.stdout


@pytest.mark.parametrize(
    ("codes", "word", "exit_code"),
    [((0, 1), "WARNING", 1), ((1, 2, 0), "CRITICAL", 2), ((2, 3, 1), "UNKNOWN", 3)],
)
def test_the_state_word_and_exit_code_are_the_worst_status(
    tmp_path: Path, codes: tuple[int, ...], word: str, exit_code: int
) -> None:
    entries = [exec_check(f"c{i}", code, f"said {code}") for i, code in enumerate(codes)]
    directory = checks_dir(tmp_path, *entries)
    done = probed("once", "--checks-dir", str(directory), "--format", "nagios")
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert LINE_RE.fullmatch(done.stdout), done.stdout
    assert done.stdout.startswith(f"PROBED {word} - {len(codes)} checks: ")
    worst = max(codes)
    name = f"c{codes.index(worst)}"
    words = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
    assert f"; {name} {words[worst]}: said {worst}" in done.stdout
    values = perf(done.stdout)
    assert [values[f"c{i}_status"] for i in range(len(codes))] == list(codes)


def test_a_message_with_a_pipe_or_newlines_cannot_break_the_status_line(tmp_path: Path) -> None:
    directory = checks_dir(tmp_path, exec_check("odd", 2, "CRITICAL - a | b=1"))
    done = probed("once", "--checks-dir", str(directory), "--format", "nagios")
    assert done.returncode == 2
    assert done.stdout.count("\n") == 1 and done.stdout.count("|") == 1
    assert set(perf(done.stdout)) == {"odd_duration", "odd_status", "odd_exec_exit_code"}


def test_an_unknown_check_name_is_unknown_and_said_on_the_line(tmp_path: Path) -> None:
    directory = checks_dir(tmp_path, exec_check("web", 0, "OK"))
    done = probed("once", "--checks-dir", str(directory), "--format", "nagios", "--check", "webb")
    assert done.returncode == 3
    assert done.stdout.startswith("PROBED UNKNOWN - 0 checks; error: no check named 'webb'")
    assert "did you mean 'web'" in done.stdout and "no check named 'webb'" in done.stderr


def test_output_file_gets_the_same_line(tmp_path: Path) -> None:
    directory = checks_dir(tmp_path, exec_check("web", 1, "WARNING - slow"))
    report = tmp_path / "status.txt"
    done = probed(
        "once", "--checks-dir", str(directory), "--format", "nagios", "--output", str(report)
    )
    assert done.returncode == 1 and done.stdout == ""
    assert report.read_text().startswith("PROBED WARNING - 1 check: 1 warning; web WARNING: ")


@pytest.mark.parametrize("fmt", ["nagios", "text", "json"])
def test_an_env_secret_echoed_by_a_command_never_reaches_the_report(
    tmp_path: Path, fmt: str
) -> None:
    directory = tmp_path / "checks.d"
    directory.mkdir()
    (directory / "s.yaml").write_text(
        "checks:\n"
        "  - name: leaky\n"
        "    type: exec\n"
        "    shell: true\n"
        '    command: \'echo "CRITICAL - token=$TOKEN | x=1"; echo "$TOKEN" >&2; exit 2\'\n'
        f"    env: {{TOKEN: {SECRET}}}\n"
    )
    done = probed("once", "--checks-dir", str(directory), "--format", fmt)
    assert done.returncode == 2
    assert "token=***" in done.stdout
    assert SECRET not in done.stdout + done.stderr
