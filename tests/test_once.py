"""``probed once`` as CI pipelines run it: exit codes by worst status, and the three reports.

Every check here is an ``outcome`` check (tests/data/plugins/outcome.py) whose status, reason
and message the YAML sets, run by a real ``probed`` subprocess. JUnit reports are validated
against tests/data/junit.xsd (the Jenkins/Ant JUnit schema subset) and their counts checked
against their test cases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from tests.harness import write

DATA = Path(__file__).parent / "data"
PLUGINS = DATA / "plugins"
SCHEMA = xmlschema.XMLSchema(DATA / "junit.xsd")

EXIT_CODES = {"ok": 0, "warn": 1, "fail": 2, "unknown": 3}

FOUR = """
checks:
  - {name: fine, type: outcome, status: ok, message: all good}
  - {name: slow, type: outcome, status: warn, reason: threshold, message: "p99 <too> high"}
  - {name: broken, type: outcome, status: fail, reason: assertion, message: "got 500 & not 200"}
  - {name: puzzled, type: outcome, status: unknown, reason: protocol, message: cannot tell}
"""


def once(checks: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "probed",
            "once",
            "--checks-dir",
            str(checks),
            "--plugins-dir",
            str(PLUGINS),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def junit(text: str) -> ET.Element:
    """Parse a JUnit report after validating it against the schema (raises if invalid)."""
    SCHEMA.validate(text)
    return ET.fromstring(text)


@pytest.mark.parametrize("status", ["ok", "warn", "fail", "unknown"])
def test_exit_code_is_0_1_2_3_for_ok_warn_fail_unknown(tmp_path: Path, status: str) -> None:
    write(
        tmp_path / "c.yaml",
        f"""
        checks:
          - {{name: only, type: outcome, status: {status}, reason: threshold, message: said so}}
          - {{name: fine, type: outcome, status: ok}}
        """,
    )
    result = once(tmp_path, "--format", "json")
    assert result.returncode == EXIT_CODES[status], result.stderr
    [only, fine] = json.loads(result.stdout)
    assert only["name"] == "only" and only["status"] == status
    assert only["reason"] == "threshold"
    assert only["message"] == "said so" and fine["status"] == "ok"


@pytest.mark.parametrize(
    ("statuses", "code"),
    [(("ok", "warn"), 1), (("warn", "fail"), 2), (("fail", "unknown"), 3), (("warn",) * 3, 1)],
)
def test_exit_code_is_the_worst_status_of_the_selected_checks(
    tmp_path: Path, statuses: tuple[str, ...], code: int
) -> None:
    lines = "\n".join(
        f"  - {{name: c{i}, type: outcome, status: {s}, reason: other}}"
        for i, s in enumerate(statuses)
    )
    write(
        tmp_path / "c.yaml", f"checks:\n{lines}\n  - {{name: bad, type: outcome, status: fail}}\n"
    )
    names = [arg for i in range(len(statuses)) for arg in ("--check", f"c{i}")]
    result = once(tmp_path, *names)
    assert result.returncode == code, result.stdout + result.stderr
    assert "bad" not in result.stdout  # only the selected checks ran


def test_a_configuration_error_makes_an_all_checks_run_exit_3_even_when_the_rest_pass(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.yaml", "checks:\n  - {name: fine, type: outcome}\n")
    write(tmp_path / "d.yaml", "checks:\n  - {name: typo, type: outcome, statu: ok}\n")
    result = once(tmp_path)
    assert result.returncode == 3
    assert "statu" in result.stderr and "OK      fine (outcome" in result.stdout


def test_text_report_has_one_line_per_check_with_status_reason_and_message(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.yaml", FOUR)
    result = once(tmp_path)
    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["OK", "WARN", "FAIL", "UNKNOWN"]
    assert lines[0].startswith("OK      fine (outcome, ") and lines[0].endswith("ms): all good")
    assert lines[1].endswith("ms) [threshold]: p99 <too> high")
    assert lines[2].endswith("ms) [assertion]: got 500 & not 200")
    assert lines[3].startswith("UNKNOWN puzzled (outcome, ")


def test_junit_report_validates_and_maps_fail_to_failure_unknown_to_error_warn_to_output(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.yaml", FOUR)
    report = tmp_path / "out" / "report.xml"
    report.parent.mkdir()
    result = once(tmp_path, "--format", "junit", "--output", str(report))
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""  # the report went to the file
    text = report.read_text()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = junit(text)

    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    [suite] = root
    assert suite.tag == "testsuite" and suite.get("name") == "probed"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    assert suite.get("skipped") == "0"
    cases = {case.get("name"): case for case in suite}
    assert list(cases) == ["fine", "slow", "broken", "puzzled"]
    assert {case.get("classname") for case in cases.values()} == {"probed.outcome"}

    assert list(cases["fine"]) == []
    [out] = cases["slow"]
    assert out.tag == "system-out" and out.text == "WARN [threshold]: p99 <too> high"
    [failure] = cases["broken"]
    assert failure.tag == "failure"
    assert failure.get("type") == "assertion"
    assert failure.get("message") == failure.text == "got 500 & not 200"
    [error] = cases["puzzled"]
    assert error.tag == "error"
    assert error.get("type") == "protocol" and error.text == "cannot tell"

    times = [float(case.get("time", "")) for case in suite]
    assert all(t >= 0 for t in times)
    assert float(root.get("time", "")) == pytest.approx(sum(times), abs=1e-5)
    assert float(suite.get("time", "")) == float(root.get("time", ""))


@pytest.mark.parametrize(
    ("statuses", "failures", "errors"),
    [(("ok", "ok"), 0, 0), (("fail", "fail", "warn"), 2, 0), (("unknown", "fail"), 1, 1)],
)
def test_junit_root_and_suite_counts_match_their_test_cases(
    tmp_path: Path, statuses: tuple[str, ...], failures: int, errors: int
) -> None:
    lines = "\n".join(
        f"  - {{name: c{i}, type: outcome, status: {s}, reason: other, message: m{i}}}"
        for i, s in enumerate(statuses)
    )
    write(tmp_path / "c.yaml", f"checks:\n{lines}\n")
    result = once(tmp_path, "--format", "junit")
    root = junit(result.stdout)
    [suite] = root
    counted = {
        "tests": len(suite.findall("testcase")),
        "failures": len(suite.findall("testcase/failure")),
        "errors": len(suite.findall("testcase/error")),
    }
    assert counted == {"tests": len(statuses), "failures": failures, "errors": errors}
    for node in (root, suite):
        assert {k: int(node.get(k, "-1")) for k in counted} == counted


def test_schema_rejects_reports_ci_importers_would_misread() -> None:
    """Negative control: the schema is strict enough to catch a broken report."""
    valid = (
        '<testsuites tests="1" failures="1" errors="0"><testsuite name="probed" tests="1" '
        'failures="1" errors="0"><testcase classname="probed.x" name="a" time="0.1">'
        '<failure type="assertion" message="m">m</failure></testcase></testsuite></testsuites>'
    )
    junit(valid)
    broken = [
        valid.replace('tests="1" failures="1" errors="0">', 'tests="one" failures="1" errors="0">'),
        valid.replace('time="0.1"', 'time="fast"'),
        valid.replace('<failure type="assertion" message="m">m</failure>', "<failure>m</failure>"),
        valid.replace("</failure>", '</failure><error type="x">e</error>'),
        valid.replace("<failure", "<system-out>o</system-out><failure"),
        valid.replace(' classname="probed.x"', ""),
        valid.replace("<testsuites", "<testsuite").replace("</testsuites>", "</testsuite>"),
    ]
    for text in broken:
        assert text != valid
        with pytest.raises(xmlschema.XMLSchemaValidationError):
            junit(text)


def test_json_report_lists_every_check_in_configuration_order(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", FOUR)
    result = once(tmp_path, "--format", "json")
    data = json.loads(result.stdout)
    assert [(c["name"], c["status"], c["reason"]) for c in data] == [
        ("fine", "ok", ""),
        ("slow", "warn", "threshold"),
        ("broken", "fail", "assertion"),
        ("puzzled", "unknown", "protocol"),
    ]
    assert all(c["type"] == "outcome" and c["duration_seconds"] >= 0 for c in data)
