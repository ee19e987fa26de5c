"""The suite's one skip policy (tests/_require.py) is the only way a test can skip."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# Any way to skip or expect a failure, other than through tests/_require.py.
_BYPASS = re.compile(
    r"pytest\s*\.\s*(skip|xfail|importorskip)\b|mark\s*\.\s*(skip|skipif|xfail)\b|"
    r"\bunittest\b.*\bskip|raise\s+SkipTest|\bimportorskip\b"
)


def test_no_test_skips_except_through_the_require_helper() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name not in ("_require.py", Path(__file__).name)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _BYPASS.search(line)
    ]
    assert not offenders, "skip through tests/_require.py (require/requires/unavailable):\n" + (
        "\n".join(offenders)
    )


_PROBE = """
import pytest
from tests._require import require, requires

@requires(False, "no such capability (mark)")
def test_mark():
    pass

@requires(lambda: False, "no such capability (callable mark)")
def test_callable_mark():
    pass

def test_call():
    require(False, "no such capability (call)")

def test_plain_skip_from_elsewhere():
    pytest.skip("a plugin skipped it")

@requires(lambda: True, "present")
def test_present():
    require(True, "present")
"""


def _run_probe(tmp_path: Path, require_services: str) -> subprocess.CompletedProcess[str]:
    """Run the probe file with this suite's conftest as a plugin, in a pytest of its own."""
    (tmp_path / "test_probe.py").write_text(_PROBE)
    root = TESTS.parent
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "tests.conftest",
         "-p", "no:randomly", "-p", "no:cacheprovider", "-c", str(root / "pyproject.toml"),
         f"--rootdir={root}", str(tmp_path / "test_probe.py")],
        capture_output=True, text=True, timeout=120, cwd=root,
        env={**os.environ, "PROBED_REQUIRE_SERVICES": require_services},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "summary"),
    [("0", "1 passed, 4 skipped"), ("1", "2 failed, 1 passed, 2 errors")],
)
def test_missing_capability_skips_or_fails_by_the_ci_setting(
    tmp_path: Path, setting: str, summary: str
) -> None:
    proc = _run_probe(tmp_path, setting)
    out = proc.stdout + proc.stderr
    assert summary in out, out
    for reason in ("(mark)", "(callable mark)", "(call)", "a plugin skipped it"):
        assert reason in out, out
    if setting == "1":
        assert out.count("PROBED_REQUIRE_SERVICES=1") >= 4, out
