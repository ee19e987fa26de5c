"""probed.testing's helpers and pytest plugin: plugin loading without installed entry points,
loopback servers, metric parsing, a sync run, and the fixtures through the pytest11 entry point."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from probed import PluginError, Status
from probed.testing import (
    check_type,
    http_server,
    load_plugins,
    metric_value,
    run_check_sync,
    tcp_server,
)
from tests.harness import write
from tests.test_testing_docs_example import run_clean

GREETING = """
import asyncio
from probed import Check, CheckOptions, Reason, Result, hookimpl


class GreetingOptions(CheckOptions):
    port: int


class GreetingCheck(Check[GreetingOptions]):
    type_name = "greeting"
    options_model = GreetingOptions

    async def run(self) -> Result:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.options.port)
        line = (await reader.readline()).decode().strip()
        writer.close()
        if line.startswith("220"):
            return Result.ok(line)
        return Result.fail(Reason.ASSERTION, line)


@hookimpl
def probed_register_check_types():
    return [GreetingCheck]
"""


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Path:
    write(tmp_path / "plugins" / "greeting.py", GREETING)
    return tmp_path / "plugins"


@pytest.fixture
def installed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution whose ``probed`` entry point registers ``greeting`` too."""
    site = tmp_path / "site"
    write(site / "fake_greeting_pkg.py", GREETING)
    write(site / "fake_greeting-1.0.dist-info" / "METADATA", "Name: fake-greeting\nVersion: 1.0\n")
    write(
        site / "fake_greeting-1.0.dist-info" / "entry_points.txt",
        "[probed]\ngreeting_pkg = fake_greeting_pkg\n",
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("fake_greeting_pkg", None)


@pytest.mark.usefixtures("installed_copy")
def test_load_plugins_ignores_installed_entry_points_unless_asked(plugins_dir: Path) -> None:
    pm = load_plugins(plugins_dir)
    assert check_type(pm, "greeting").__module__ != "fake_greeting_pkg"
    assert "http" not in _types(pm), "builtins are off by default"
    with pytest.raises(PluginError, match="greeting"):
        load_plugins(plugins_dir, entry_points=True)


def _types(pm: object) -> set[str]:
    from probed.plugins import check_types

    return set(check_types(pm))  # type: ignore[arg-type]


def test_load_plugins_takes_modules_and_builtins_on_request(plugins_dir: Path) -> None:
    from probed.checks import tcp

    pm = load_plugins(modules=[tcp])
    assert _types(pm) == {"tcp"}
    assert {"http", "greeting"} <= _types(load_plugins(plugins_dir, builtins=True))
    with pytest.raises(KeyError, match="no check type 'nope'; registered: tcp"):
        check_type(pm, "nope")


def test_run_check_sync_against_a_greeting_tcp_server(plugins_dir: Path) -> None:
    greeting = check_type(load_plugins(plugins_dir), "greeting")
    with tcp_server(greeting=b"220 ready\r\n") as server:
        ok = run_check_sync(greeting, port=server.port)
    with tcp_server(greeting=b"SSH-2.0-x\r\n") as server:
        wrong = run_check_sync(greeting, port=server.port)
        assert server.connections == 1
    assert ok.status is Status.OK, ok.message
    assert (wrong.status, wrong.reason) == (Status.FAIL, "assertion")


async def test_run_check_sync_inside_a_running_loop_says_to_await_run_check(
    plugins_dir: Path,
) -> None:
    greeting = check_type(load_plugins(plugins_dir), "greeting")
    with pytest.raises(RuntimeError, match="running event loop"):
        run_check_sync(greeting, port=1)
    await asyncio.sleep(0)


def test_tcp_server_reply_and_custom_handler() -> None:
    with (
        tcp_server(reply=b"+PONG\r\n") as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
    ):
        sock.sendall(b"PING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"

    def echo_upper(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100).upper())

    with (
        tcp_server(echo_upper) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
    ):
        sock.sendall(b"abc")
        assert sock.recv(100) == b"ABC"


def test_http_server_routes_records_requests_and_404s() -> None:
    import urllib.error
    import urllib.request

    with http_server(
        {"/ok": (200, "fine", {"X-Test": "1"}), "/teapot": lambda r: (418, r.method)}
    ) as server:
        with urllib.request.urlopen(server.url + "/ok?x=1", timeout=5) as resp:
            assert (resp.status, resp.read(), resp.headers["X-Test"]) == (200, b"fine", "1")
        with pytest.raises(urllib.error.HTTPError) as teapot:
            urllib.request.urlopen(server.url + "/teapot", data=b"body", timeout=5)
        with teapot.value as answer:
            assert (answer.code, answer.read()) == (418, b"POST")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "/nope", timeout=5)
        with missing.value as answer:
            assert answer.code == 404
    assert [(r.method, r.path, r.body) for r in server.requests] == [
        ("GET", "/ok?x=1", b""),
        ("POST", "/teapot", b"body"),
        ("GET", "/nope", b""),
    ]


METRICS = """\
# HELP probed_check_up up
# TYPE probed_check_up gauge
probed_check_up{check="a",type="http"} 1.0
probed_check_up{check="b",type="tcp"} 0.0
# HELP probed_check_duration_seconds d
# TYPE probed_check_duration_seconds histogram
probed_check_duration_seconds_bucket{check="a",le="0.5"} 3.0
probed_check_duration_seconds_bucket{check="a",le="+Inf"} 4.0
probed_check_duration_seconds_count{check="a"} 4.0
probed_check_duration_seconds_sum{check="a"} 1.5
"""


def test_metric_value_picks_the_sample_by_name_and_labels() -> None:
    assert metric_value(METRICS, "probed_check_up", {"check": "b"}) == 0.0
    assert metric_value(METRICS, "probed_check_up", {"type": "http"}) == 1.0
    assert metric_value(METRICS, "probed_check_up", {"check": "zz"}) is None
    assert metric_value(METRICS, "probed_check_duration_seconds_count") == 4.0
    bucket = metric_value(METRICS, "probed_check_duration_seconds_bucket", {"le": "+Inf"})
    assert bucket == 4.0


PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]
FIXTURE_TEST = """
from probed import Status
from probed.testing import check_type, run_check_sync

def test_fixtures_come_from_the_entry_point(probed_plugins, probed_http_server, request):
    assert request.config.pluginmanager.has_plugin("probed")
    server = probed_http_server({"/": (200, "ok")})
    http = check_type(probed_plugins(builtins=True), "http")
    result = run_check_sync(http, url=server.url + "/")
    assert result.status is Status.OK, result.message
    assert server.requests[0].path == "/"
"""


def test_installing_probed_makes_the_fixtures_available_to_any_pytest_run(
    tmp_path: Path,
) -> None:
    """No conftest, no import of the plugin, no asyncio plugin: the pytest11 entry point."""
    write(tmp_path / "test_uses_fixtures.py", FIXTURE_TEST)
    done = run_clean([*PYTEST, "-p", "no:cacheprovider", "-p", "no:asyncio"], tmp_path, 120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
