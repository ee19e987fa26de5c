"""The README's first plugin example is a complete check type in at most 30 lines, and works.

The test takes exactly the text of the first ``python`` block under "Your own check type" in
README.md, writes it to a plugins directory, and runs it against real servers on loopback: in
process through ``probed.testing.run_check``, and through ``probed once`` as a user would.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from probed import Status
from probed.plugins import check_types, get_plugin_manager
from probed.testing import run_check

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Your own check type"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md: no python block under 'Your own check type'"
    return match.group(1)


def test_the_example_is_at_most_30_lines_with_one_typed_option() -> None:
    code = readme_example()
    assert len(code.splitlines()) <= 30, code
    assert re.findall(r"^    (\w+): (\w+)", code, re.M) == [("address", "str")]


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "banner.py").write_text(readme_example())
    return plugins


@asynccontextmanager
async def greeting_server(greeting: bytes) -> AsyncIterator[str]:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def banner_type(plugins: Path) -> Any:
    pm = get_plugin_manager(plugins_dirs=[plugins], builtins=(), entry_points=False)
    return check_types(pm)["banner"].cls


async def test_the_example_reads_a_real_servers_banner(plugin: Path) -> None:
    cls = banner_type(plugin)
    async with greeting_server(b"220 mail.example ESMTP ready\r\n") as address:
        result = await run_check(cls, address=address)
    assert result.status is Status.OK, result
    assert result.message == "220 mail.example ESMTP ready"


async def test_the_example_fails_when_the_server_says_nothing(plugin: Path) -> None:
    cls = banner_type(plugin)
    async with greeting_server(b"") as address:
        result = await run_check(cls, address=address)
    assert result.status is Status.FAIL and result.reason == "protocol", result
    assert result.message == f"{address} sent no banner"


async def test_a_refused_connection_is_a_fail_the_daemon_reports(plugin: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = await run_check(banner_type(plugin), address=f"127.0.0.1:{port}")
    assert result.status is Status.FAIL and result.reason == "exception", result
    assert "ConnectionRefusedError" in result.message


def test_probed_once_runs_the_example_from_a_checks_file(plugin: Path, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        checks = tmp_path / "checks.d"
        checks.mkdir()
        (checks / "mail.yaml").write_text(
            f"checks:\n  - name: mail\n    type: banner\n    address: 127.0.0.1:{port}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
        command = [sys.executable, "-m", "probed", "once", "--plugins-dir", str(plugin)]
        process = subprocess.Popen(
            [*command, "--checks-dir", str(checks)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        listener.settimeout(30)
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    assert "SSH-2.0-OpenSSH_9.6" in out and "Traceback" not in out + err
