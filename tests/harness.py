"""An in-process daemon for tests: real scheduler, real HTTP server on loopback, real plugins."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from probed.config import load_settings
from probed.daemon import Daemon
from probed.logs import configure_logging, set_redactor
from probed.plugins import DEFAULT_PLUGINS, get_plugin_manager
from probed.redact import Redactor
from probed.server import make_app
from tests.fakes import GATES, ScriptPlugin
from tests.servers._util import free_port


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` on the loop every 5 ms until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


@dataclass
class Running:
    """A running daemon and an HTTP client pointed at it."""

    daemon: Daemon
    url: str
    session: aiohttp.ClientSession

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, dict[str, str]]:
        async with self.session.get(self.url + path, **kwargs) as resp:
            return resp.status, await resp.text(), dict(resp.headers)

    async def post(self, path: str) -> tuple[int, str]:
        async with self.session.post(self.url + path) as resp:
            return resp.status, await resp.text()

    def state(self, name: str) -> Any:
        state = self.daemon.store.get(name)
        assert state is not None, f"no check {name!r}"
        return state

    async def runs(self, name: str, count: int, timeout: float = 10.0) -> None:
        """Wait until check ``name`` has finished at least ``count`` runs."""
        await wait_for(
            lambda: name in self.daemon.store and sum(self.state(name).runs) >= count,
            timeout,
            f"{count} runs of {name}",
        )


@contextlib.asynccontextmanager
async def running_daemon(
    checks_dir: Path | None,
    *,
    plugins: Sequence[tuple[str, object]] = (),
    builtins: Sequence[str] = DEFAULT_PLUGINS,
    plugins_dirs: Iterable[Path] = (),
    config_file: Path | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """Start a daemon on a free loopback port; stop it on exit."""
    port = free_port()
    opts: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "watch": False,
        "startup_spread": 0.05,
        "log_format": "json",
    }
    if checks_dir is not None:
        opts["checks_dirs"] = (checks_dir,)
    opts.update(overrides)
    settings = load_settings(config_file, opts)
    pm = get_plugin_manager(
        builtins=builtins, plugins_dirs=tuple(plugins_dirs), extra=plugins, entry_points=False
    )
    daemon = Daemon(settings, pm, overrides=opts)
    app: web.Application = make_app(daemon)
    task = asyncio.get_running_loop().create_task(daemon.serve(app, install_signals=False))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        try:
            await wait_for(lambda: _listening(port) or task.done(), 10, "daemon to listen")
            if task.done():
                task.result()
            yield Running(daemon, url, session)
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 30)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def write(path: Path, text: str) -> Path:
    """Write ``text`` (dedented) to ``path``, creating parents."""
    import textwrap

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


PYTHON = sys.executable


PLUGINS_DATA = Path(__file__).parent / "data" / "plugins"


@contextlib.asynccontextmanager
async def scripted_daemon(checks: Path, **overrides: Any) -> AsyncIterator[Running]:
    """A daemon with only the ``outcome`` (tests/data/plugins) and ``script`` check types;
    every gate a script check waits on is opened before it stops, and forgotten after."""
    try:
        async with running_daemon(
            checks,
            builtins=(),
            plugins=[("script", ScriptPlugin())],
            plugins_dirs=[PLUGINS_DATA],
            **overrides,
        ) as r:
            try:
                yield r
            finally:
                for event in list(GATES.values()):
                    event.set()
    finally:
        GATES.clear()


@contextlib.contextmanager
def probed_logs(log_format: str = "json") -> Iterator[io.StringIO]:
    """Configure probed's own logging (its formatter and redactor) into a string buffer, as a
    daemon does; undo it on exit. Read the buffer's ``getvalue()`` for what an operator sees."""
    stream = io.StringIO()
    configure_logging(log_format, "INFO", stream)
    try:
        yield stream
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_probed", False)]:
            root.removeHandler(handler)
        set_redactor(Redactor(()))
