"""Every module imports on its own in a fresh interpreter (no circular imports), and the
public API is what the README promises plugin authors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import probed

PACKAGE = Path(probed.__file__).parent
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
    for p in PACKAGE.rglob("*.py")
    if p.name != "__main__.py"
)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", f"import {module.removesuffix('.__init__')}"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_public_api_is_complete() -> None:
    for name in (
        "Check",
        "CheckOptions",
        "Result",
        "Status",
        "Reason",
        "MetricDef",
        "Sample",
        "Duration",
        "Regex",
        "hookimpl",
        "CheckSpec",
    ):
        assert name in probed.__all__, name
        assert getattr(probed, name) is not None
