"""docs/plugins.md's complete testing example passes as written, in a fresh project: a new venv
(not ``--system-site-packages``) with only probed (this checkout) and pytest installed, so
probed's pytest plugin comes from its ``pytest11`` entry point and no asyncio plugin exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._require import require

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"```python\n# (?P<path>[\w/]+\.py)\n(?P<code>.*?)```", re.S)


def example_files() -> dict[str, str]:
    """The blocks of the testing section that start with a ``# path.py`` line, by path."""
    text = DOC.read_text()
    section = text[text.index("## Testing your plugin") :]
    section = section[: section.find("\n## ", 5)] if "\n## " in section[5:] else section
    return {m["path"]: m["code"] for m in BLOCK.finditer(section)}


def test_the_docs_name_a_plugin_file_and_a_test_file() -> None:
    files = example_files()
    assert set(files) == {"plugins/greeting.py", "tests/test_greeting.py"}
    assert "probed_tcp_server" in files["tests/test_greeting.py"]
    assert "probed_daemon" in files["tests/test_greeting.py"]


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PROBED_")}


def run_clean(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``args`` without this session's PYTHONPATH, venv, pytest and PROBED_* settings."""
    return subprocess.run(
        args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.timeout(900)
def test_the_docs_testing_example_passes_in_a_fresh_venv_with_only_probed_and_pytest(
    tmp_path: Path,
) -> None:
    require(
        __import__("importlib.util").util.find_spec("ensurepip") is not None,
        "a fresh venv needs ensurepip (Debian: apt install python3-venv)",
    )
    from tests.test_docs_commands import _copy_checkout

    checkout = tmp_path / "probed-checkout"
    _copy_checkout(checkout)
    venv = tmp_path / "venv"
    made = run_clean([sys.executable, "-m", "venv", str(venv)], tmp_path, 300)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    installed = run_clean(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(checkout),
            "pytest",
        ],
        tmp_path,
        600,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    project = tmp_path / "project"
    for path, code in example_files().items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(code)
    no_asyncio = run_clean([python, "-c", "import pytest_asyncio"], project, 60)
    assert no_asyncio.returncode != 0, "the fresh venv must not have pytest-asyncio"
    done = run_clean([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout
