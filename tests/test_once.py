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
from typing import Any

import pytest
import xmlschema

from probed import CheckOptions, Result, Status, hookimpl
from probed.once import checks_session, report, run_once, select
from probed.plugins import ProbedPluginManager, get_plugin_manager
from probed.settings import Settings
from probed.spec import CheckSpec
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


# -- in-process: run_once, select and report as the CLI and gate call them --------------------


def settings_for(checks: Path) -> Settings:
    return Settings(checks_dirs=(checks,), plugins_dirs=(PLUGINS,))


def manager(*extra: tuple[str, object]) -> ProbedPluginManager:
    return get_plugin_manager(plugins_dirs=(PLUGINS,), entry_points=False, extra=extra)


def outcome(name: str, status: Status, **result: Any) -> tuple[CheckSpec, Result]:
    spec = CheckSpec(name=name, type="outcome", interval=10.0, timeout=5.0, options=CheckOptions())
    return spec, Result(status, **result)


async def test_run_once_runs_a_named_check_that_is_not_a_readiness_check_by_default(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.yaml", "checks:\n  - {name: batch, type: outcome, readiness: false}\n")
    code, outcomes, messages = await run_once(settings_for(tmp_path), manager(), ["batch"])
    assert (code, [s.name for s, _ in outcomes], messages) == (0, ["batch"], [])
    async with checks_session(settings_for(tmp_path), manager()) as session:
        assert [s.name for s in select(session, []).specs] == ["batch"]
        assert [s.name for s in select(session, ["batch"]).specs] == ["batch"]


async def test_readiness_only_runs_the_readiness_checks_and_refuses_a_named_other_one(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: ready, type: outcome, status: warn, reason: threshold}
          - {name: batch, type: outcome, status: fail, readiness: false}
        """,
    )
    settings = settings_for(tmp_path)
    code, outcomes, messages = await run_once(settings, manager(), [], readiness_only=True)
    assert (code, [s.name for s, _ in outcomes], messages) == (1, ["ready"], [])

    code, outcomes, messages = await run_once(
        settings, manager(), ["ready", "batch"], readiness_only=True
    )
    assert code == 3 and [s.name for s, _ in outcomes] == ["ready"]
    assert messages == [
        f"check 'batch' is not a readiness check (readiness: false at {tmp_path / 'c.yaml'}:3);"
        " drop --readiness-only to run it"
    ]


async def test_readiness_only_with_no_readiness_check_says_so_and_exits_3(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", "checks:\n  - {name: batch, type: outcome, readiness: false}\n")
    code, outcomes, messages = await run_once(
        settings_for(tmp_path), manager(), [], readiness_only=True
    )
    assert (code, outcomes) == (3, [])
    assert messages == ["no check has readiness: true: --readiness-only has nothing to run"]


async def test_an_unknown_name_lists_the_configured_checks_or_none(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    code, outcomes, messages = await run_once(settings, manager(), ["nope"])
    assert (code, outcomes) == (3, [])
    assert messages == ["no check named 'nope'; configured checks: none"]

    write(tmp_path / "c.yaml", "checks:\n  - {name: alpha, type: outcome}\n"
          "  - {name: beta, type: outcome}\n")  # fmt: skip
    code, outcomes, messages = await run_once(settings, manager(), ["zzz", "alpha"])
    assert code == 3 and [s.name for s, _ in outcomes] == ["alpha"]
    assert messages == ["no check named 'zzz'; configured checks: alpha, beta"]


@pytest.mark.parametrize(("count", "tail"), [(10, "c9"), (12, "c9 and 2 more")])
async def test_an_unknown_name_lists_at_most_ten_configured_checks(
    tmp_path: Path, count: int, tail: str
) -> None:
    lines = "".join(f"  - {{name: c{i}, type: outcome}}\n" for i in range(count))
    write(tmp_path / "c.yaml", f"checks:\n{lines}")
    _, _, [message] = await run_once(settings_for(tmp_path), manager(), ["nope"])
    shown = ", ".join(f"c{i}" for i in range(9))
    assert message == f"no check named 'nope'; configured checks: {shown}, {tail}"


async def test_an_unknown_name_with_configuration_errors_keeps_the_errors_and_says_valid(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.yaml", "checks:\n  - {name: fine, type: outcome}\n"
          "  - {name: typo, type: outcome, statu: ok}\n")  # fmt: skip
    code, outcomes, messages = await run_once(settings_for(tmp_path), manager(), ["typo"])
    assert (code, outcomes) == (3, [])
    [error, unknown] = messages
    assert "statu" in error
    assert unknown == (
        "no valid check named 'typo'; configured checks: fine"
        " (checks with the errors above do not run)"
    )


async def test_extra_files_such_as_the_embedded_checks_are_run(tmp_path: Path) -> None:
    extra = tmp_path / "extra" / "embedded.yaml"
    write(extra, "checks:\n  - {name: embedded, type: outcome, status: warn}\n")
    (tmp_path / "dir").mkdir()
    code, outcomes, _ = await run_once(settings_for(tmp_path / "dir"), manager(), [], [extra])
    assert (code, [s.name for s, _ in outcomes]) == (1, ["embedded"])


async def test_plugins_see_once_results_in_the_states_they_got_at_startup(
    tmp_path: Path,
) -> None:
    write(tmp_path / "c.yaml", "checks:\n  - {name: broken, type: outcome, status: fail}\n")
    seen: list[tuple[str, str]] = []

    class Recorder:
        states: Any = None

        @hookimpl
        async def probed_startup(self, settings: Any, states: Any) -> None:
            self.states = states

        @hookimpl
        async def probed_shutdown(self, settings: Any) -> None:
            seen.extend((s.spec.name, s.last.status.label) for s in self.states if s.last)

    code, _, _ = await run_once(settings_for(tmp_path), manager(("recorder", Recorder())), [])
    assert (code, seen) == (2, [("broken", "fail")])


def test_json_report_is_indented_by_two_with_rounded_durations_phases_and_values() -> None:
    outcomes = [outcome("a", Status.OK, duration=1.23456789, phases={"connect": 0.5},
                        values={"bytes": 42.0})]  # fmt: skip
    text = report(outcomes, "json")
    assert text.startswith('[\n  {\n    "name": "a",\n') and text.endswith("\n]\n")
    [entry] = json.loads(text)
    assert entry["duration_seconds"] == 1.234568
    assert (entry["phases"], entry["values"]) == ({"connect": 0.5}, {"bytes": 42.0})


def test_text_report_shows_milliseconds_and_no_colon_without_a_message() -> None:
    text = report([outcome("quiet", Status.OK, duration=0.25)], "text")
    assert text == "OK      quiet (outcome, 250.0ms)\n"
    assert report([], "text") == ""
    two = report([outcome("a", Status.OK), outcome("b", Status.FAIL, message="m")], "text")
    assert two.splitlines() == ["OK      a (outcome, 0.0ms)", "FAIL    b (outcome, 0.0ms): m"]
    assert two.endswith("ms): m\n")


def test_junit_report_names_the_root_and_types_failures_and_errors_without_a_reason() -> None:
    text = report(
        [outcome("f", Status.FAIL, message="boom"), outcome("u", Status.UNKNOWN, message="?!")],
        "junit",
    )
    root = junit(text)
    assert root.get("name") == "probed"
    [suite] = root
    [failure] = suite.findall("testcase/failure")
    assert (failure.get("type"), failure.get("message"), failure.text) == ("fail", "boom", "boom")
    [error] = suite.findall("testcase/error")
    assert (error.get("type"), error.get("message"), error.text) == ("unknown", "?!", "?!")
