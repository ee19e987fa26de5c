"""Which interpolated values count as secrets: length floor, secret-looking names, files.

Values shorter than ``MIN_SECRET_LENGTH`` (4, as the README documents) are never secrets:
masking ``on`` or ``1`` everywhere would mangle every message. Checked on the interpolator
and through ``probed once``, where a user sees the message masked or not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probed._interpolate import Interpolator
from tests.harness import write

PLUGINS = Path(__file__).parent / "data" / "plugins"


@pytest.mark.parametrize(
    ("value", "secret"),
    [("", False), ("a", False), ("abc", False), ("abcd", True), ("abcdefgh", True)],
)
def test_secret_looking_variables_are_secrets_from_four_characters(
    value: str, secret: bool
) -> None:
    result, pieces, secrets = Interpolator({"API_TOKEN": value}).string("t=${API_TOKEN}")
    assert result == f"t={value}" and pieces == [value]
    assert secrets == ([value] if secret else [])


@pytest.mark.parametrize(("content", "secret"), [("xyz\n", False), ("wxyz\n", True)])
def test_file_contents_are_secrets_from_four_characters(
    tmp_path: Path, content: str, secret: bool
) -> None:
    path = tmp_path / "s"
    path.write_text(content)
    result, _pieces, secrets = Interpolator({}).string(f"${{file:{path}}}")
    assert result == content.rstrip("\n")
    assert secrets == ([result] if secret else [])


def test_variables_with_ordinary_names_are_never_secrets() -> None:
    _result, _pieces, secrets = Interpolator({"HOSTNAME": "db.internal.example"}).string(
        "${HOSTNAME}"
    )
    assert secrets == []


def run_once(tmp_path: Path, token: str) -> str:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: echo, type: outcome, status: fail, reason: auth, message: "token=${API_TOKEN}"}
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env["API_TOKEN"] = token
    command = [sys.executable, "-m", "probed", "once", "--format", "json"]
    command += ["--checks-dir", str(tmp_path), "--plugins-dir", str(PLUGINS)]
    result = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    [check] = json.loads(result.stdout)
    return str(check["message"])


def test_once_masks_a_four_character_token_but_shows_a_three_character_one(
    tmp_path: Path,
) -> None:
    assert run_once(tmp_path, "wxyz") == "token=***"
    assert run_once(tmp_path, "xyz") == "token=xyz"
