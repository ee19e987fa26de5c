"""contrib/plugin-template: pip-installs, loads through the entry point, runs, passes its tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from probed import Status
from probed.plugins import check_types, get_plugin_manager, plugin_infos
from probed.testing import run_check
from tests.harness import write

ROOT = Path(__file__).parent.parent
TEMPLATE = ROOT / "contrib" / "plugin-template"
_JUNK = shutil.ignore_patterns(
    "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".mypy_cache", ".ruff_cache"
)


@pytest.fixture(scope="module")
def template_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(source copy, site dir)``: the template built and installed as users would."""
    work = tmp_path_factory.mktemp("plugin-template")
    source = work / "probed-hello"
    # A copy, so the in-tree build leaves no build/ or egg-info behind in the repository.
    shutil.copytree(TEMPLATE, source, ignore=_JUNK)
    site = work / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        "pip install of contrib/plugin-template failed (building without isolation needs "
        f"setuptools>=61 and wheel in this environment):\n{done.stdout}\n{done.stderr}"
    )
    return source, site


@pytest.fixture
def on_sys_path(
    template_install: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The installed template importable in this process, and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(template_install[1]))
    yield
    for name in [m for m in sys.modules if m == "probed_hello" or m.startswith("probed_hello.")]:
        del sys.modules[name]


@pytest.fixture
async def greeter() -> AsyncIterator[int]:
    """A TCP service on loopback that greets like an SMTP server."""

    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.test ESMTP\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _env_with(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.usefixtures("on_sys_path")
async def test_installed_template_loads_through_the_entry_point_and_its_check_runs(
    greeter: int,
) -> None:
    pm = get_plugin_manager()
    info = {i.name: i for i in plugin_infos(pm)}["hello"]
    assert info.origin == "entrypoint"
    assert info.version == "0.1.0"
    assert info.hooks == ("probed_register_check_types",)
    hello = check_types(pm)["hello"]
    assert hello.plugin == "hello"
    assert hello.cls.__module__ == "probed_hello.plugin"

    ok = await run_check(hello.cls, port=greeter, expect="^220 ")
    assert ok.status is Status.OK, ok.message
    wrong = await run_check(hello.cls, port=greeter, expect="^SSH-")
    assert wrong.status is Status.FAIL
    assert wrong.reason == "assertion"


async def test_probed_once_runs_a_hello_check_from_the_installed_package(
    template_install: tuple[Path, Path], greeter: int, tmp_path: Path
) -> None:
    checks = tmp_path / "checks"
    write(
        checks / "hello.yaml",
        f"""
        checks:
          - name: mail-greets
            type: hello
            port: {greeter}
            expect: "^220 "
            timeout: 2s
        """,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "probed",
        "once",
        "--checks-dir",
        str(checks),
        "--format",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env_with(template_install[1]),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "mail-greets" in out.decode()
    assert json.loads(out)  # a real report, not an error text


def test_the_templates_own_tests_pass(template_install: tuple[Path, Path]) -> None:
    source, site = template_install
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=source,
        env=_env_with(site),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 passed" in done.stdout
