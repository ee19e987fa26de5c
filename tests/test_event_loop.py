"""The event loop probed runs on (``--loop`` / ``PROBED_LOOP``): asyncio's, or uvloop.

The same probes work on both, with every phase timed, and the daemon runs and probes under each.
uvloop is installed by the ``test`` extra (through ``all`` and ``speed``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import click
import pytest
import uvloop
from aiohttp import web

from probed._loop import loop_factory, loop_name, run_loop
from probed.check import Reason, Status
from probed.checks.http import HttpCheck
from probed.checks.tcp import TcpCheck
from probed.testing import run_check
from tests.harness import write
from tests.servers._util import free_port, refused_port
from tests.servers._web import serve_app
from tests.servers.tls import TlsFiles

LOOPS = ("asyncio", "uvloop")


def test_auto_picks_uvloop_when_installed_and_asyncio_means_asyncio() -> None:
    auto, plain, forced = loop_factory("auto"), loop_factory("asyncio"), loop_factory("uvloop")
    assert plain is None
    assert auto is not None and forced is not None
    loop = auto()
    try:
        assert isinstance(loop, uvloop.Loop)
        assert loop_name(loop) == "uvloop"
    finally:
        loop.close()
    assert run_loop(_running_loop_name(), "asyncio") == "asyncio"
    assert run_loop(_running_loop_name(), "uvloop") == "uvloop"


def test_probed_loop_variable_chooses_and_rejects_unknown_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROBED_LOOP", "asyncio")
    assert run_loop(_running_loop_name()) == "asyncio"
    monkeypatch.setenv("PROBED_LOOP", "uvloop")
    assert run_loop(_running_loop_name()) == "uvloop"
    monkeypatch.setenv("PROBED_LOOP", "trio")
    with pytest.raises(click.ClickException, match="PROBED_LOOP 'trio': expected one of"):
        run_loop(_running_loop_name())


async def _running_loop_name() -> str:
    return loop_name(asyncio.get_running_loop())


def test_uvloop_timers_never_fire_before_their_time() -> None:
    """uvloop rounds a delay to the nearest millisecond; the scheduler re-arms its timer until
    ``loop.time()`` reaches a due time, so an early timer meant busy loop iterations."""

    async def earliness() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = []
        for i in range(200):
            when = loop.time() + 0.0001 * (1 + i % 20)
            fired: asyncio.Future[float] = loop.create_future()
            loop.call_at(when, lambda w=when, f=fired: f.set_result(loop.time() - w))
            seen.append(await fired)
        return seen

    seen = run_loop(earliness(), "uvloop")
    assert min(seen) >= 0, f"{sum(s < 0 for s in seen)} of {len(seen)} timers fired early"
    assert max(seen) < 1.0  # and they did fire


async def _hello(_request: web.Request) -> web.Response:
    return web.Response(text="hello from the loop test")


@asynccontextmanager
async def _serve(ssl_context: Any = None) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/", _hello)
    async with serve_app(app, ssl_context=ssl_context) as url:
        yield int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("loop", LOOPS)
def test_http_and_tcp_probes_time_every_phase_on_each_loop(loop: str, tls_files: TlsFiles) -> None:
    async def probes() -> dict[str, Any]:
        assert loop_name(asyncio.get_running_loop()) == loop
        async with _serve(tls_files.server_context()) as tls_port, _serve() as port:
            https = await run_check(
                HttpCheck,
                url=f"https://localhost:{tls_port}/",
                ip_version="ip4",
                tls={"ca_file": tls_files.ca_file},
                body_must_match=["hello from"],
            )
            plain = await run_check(HttpCheck, url=f"http://127.0.0.1:{port}/")
            tcp = await run_check(TcpCheck, address=f"127.0.0.1:{port}")
            tcp_tls = await run_check(
                TcpCheck, address=f"localhost:{tls_port}", tls={"ca_file": tls_files.ca_file}
            )
        with refused_port() as closed:
            refused = await run_check(HttpCheck, url=f"http://127.0.0.1:{closed}/")
            tcp_refused = await run_check(TcpCheck, address=f"127.0.0.1:{closed}")
        return {
            "https": https,
            "plain": plain,
            "tcp": tcp,
            "tcp_tls": tcp_tls,
            "refused": refused,
            "tcp_refused": tcp_refused,
        }

    results = run_loop(probes(), loop)
    for name in ("https", "plain", "tcp", "tcp_tls"):
        assert results[name].status is Status.OK, (name, results[name].message)
    assert set(results["https"].phases) == {"resolve", "connect", "tls", "processing", "transfer"}
    assert all(0 < v < 5 for v in results["https"].phases.values()), results["https"].phases
    assert set(results["plain"].phases) == {"connect", "processing", "transfer"}
    assert results["https"].values["probed_http_status_code"] == 200
    assert "probed_tls_cert_expiry_timestamp_seconds" in results["https"].values
    assert set(results["tcp"].phases) == {"connect"}
    assert set(results["tcp_tls"].phases) == {"resolve", "connect", "tls"}
    for name in ("refused", "tcp_refused"):
        refused = results[name]
        assert (refused.status, refused.reason) == (Status.FAIL, Reason.CONNECTION_REFUSED), name
        assert "connect" in refused.phases


@pytest.mark.parametrize("loop", LOOPS)
async def test_daemon_runs_and_probes_on_the_chosen_loop(loop: str, tmp_path: Path) -> None:
    checks, log = tmp_path / "checks.d", tmp_path / "daemon.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    argv = ["run", "--loop", loop, "--checks-dir", str(checks), "--listen", f"127.0.0.1:{port}"]
    argv += ["--log-level", "DEBUG", "--log-format", "text"]
    async with _serve() as target:
        write(
            checks / "web.yaml",
            "checks:\n"
            f"  - {{name: web, type: http, url: 'http://127.0.0.1:{target}/', interval: 1s}}\n",
        )
        with log.open("w") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "probed", *argv, env=env, stderr=err
            )
        try:

            async def ok_run() -> dict[str, Any] | None:
                url = f"http://127.0.0.1:{port}/api/v1/checks/web"
                try:
                    async with aiohttp.ClientSession() as session, session.get(url) as resp:
                        body = await resp.json() if resp.status == 200 else {}
                except aiohttp.ClientError:  # not listening yet
                    return None
                last = body.get("last_result")
                return last if last and last.get("status") == "ok" else None

            # the target answers on this test's loop: poll without blocking it
            deadline = asyncio.get_running_loop().time() + 30
            while (last := await ok_run()) is None:
                assert proc.returncode is None, log.read_text()
                assert asyncio.get_running_loop().time() < deadline, log.read_text()
                await asyncio.sleep(0.1)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0, log.read_text()
    assert set(last["phases"]) == {"connect", "processing", "transfer"}
    assert f"event loop: {loop}" in log.read_text()


def test_loop_uvloop_without_uvloop_is_a_clear_error(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['uvloop'] = None; from probed.cli import main; main()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    argv = [sys.executable, "-c", hide, "run", "--loop", "uvloop", "--checks-dir", str(tmp_path)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "uvloop is not installed (pip install 'probed[speed]')" in done.stderr
    fallback = "import sys; sys.modules['uvloop'] = None; from probed._loop import loop_factory; "
    fallback += "print(loop_factory('auto'))"
    done = subprocess.run([sys.executable, "-c", fallback], capture_output=True, text=True)
    assert done.stdout.strip() == "None", done.stderr  # auto: asyncio's loop
