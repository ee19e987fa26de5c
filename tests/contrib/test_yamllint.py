"""Every YAML file under contrib/ passes yamllint with contrib/.yamllint.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contrib._tools import CONTRIB, output, run
from tests.servers._util import require_binary

CONFIG = CONTRIB / ".yamllint.yaml"


@pytest.fixture
def yamllint() -> str:
    return require_binary("yamllint", "pip install yamllint")


def test_every_contrib_yaml_file_passes_yamllint(yamllint: str) -> None:
    files = sorted(
        path
        for path in {*CONTRIB.rglob("*.yml"), *CONTRIB.rglob("*.yaml")}
        if "node_modules" not in path.parts
    )
    assert len(files) > 3
    proc = run([yamllint, "--strict", "-c", str(CONFIG), *map(str, files)])
    assert proc.returncode == 0, output(proc)


def test_broken_yaml_fails_yamllint(yamllint: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("key: value\nkey: duplicate\nlist:\n  - a\n   - b\n")
    proc = run([yamllint, "--strict", "-c", str(CONFIG), str(broken)])
    assert proc.returncode != 0, output(proc)
