"""Every hook, exercised through a running daemon; plus the meta-test that keeps it so."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from probed import Status, hookimpl, hookspecs
from probed.settings import Settings
from probed.state import StateStore
from tests.fakes import ScriptPlugin
from tests.harness import running_daemon, wait_for, write

ROOT = Path(__file__).parent.parent
HOOK_NAMES = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("probed_")
)


class _Collector(Collector):
    def __init__(self, states: StateStore) -> None:
        self.states = states

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("probed_demo_checks", "Checks seen by a plugin.", len(self.states))


class EveryHook:
    """A plugin implementing every lifecycle, serving and discovery hook."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.plugin_config: Mapping[str, Any] = {}

    @hookimpl
    def probed_configure(self, settings: Settings, plugin_config: Mapping[str, Any]) -> None:
        self.events.append("configure")
        self.plugin_config = plugin_config

    @hookimpl
    def probed_discover_checks(self, settings: Settings) -> Iterable[Mapping[str, Any]]:
        return [
            {"name": "discovered", "type": "script", "interval": "100ms", "timeout": "50ms"},
            {"name": "discovered-bad", "type": "script", "mood": "ok"},
        ]

    @hookimpl
    def probed_register_routes(self, states: StateStore) -> list[web.RouteDef]:
        async def handler(_request: web.Request) -> web.Response:
            return web.json_response({"checks": len(states)})

        return [web.get("/demo/count", handler)]

    @hookimpl
    def probed_register_collectors(self, states: StateStore) -> list[Collector]:
        return [_Collector(states)]

    @hookimpl
    async def probed_startup(self, settings: Settings, states: StateStore) -> None:
        await asyncio.sleep(0)
        self.events.append("startup")

    @hookimpl
    async def probed_shutdown(self, settings: Settings) -> None:
        await asyncio.sleep(0)
        self.events.append("shutdown")


class Misbehaving:
    """Notification hooks that raise and hang: the others must still be called."""

    @hookimpl
    def probed_check_result(self, spec: Any, result: Any) -> None:
        raise RuntimeError("plugin bug")

    @hookimpl
    async def probed_check_state_changed(self, spec: Any, old: Any, new: Any, result: Any) -> None:
        await asyncio.Event().wait()


async def test_lifecycle_discovery_routes_and_collectors_hooks(tmp_path: Path) -> None:
    plugin = EveryHook()
    config = write(
        tmp_path / "probed.yaml",
        """
        plugins:
          demo: {greeting: hello}
        """,
    )
    async with running_daemon(
        None,
        config_file=config,
        builtins=(),
        plugins=[("script", ScriptPlugin()), ("demo", plugin)],
    ) as r:
        assert plugin.events[:2] == ["configure", "startup"]
        assert plugin.plugin_config == {"demo": {"greeting": "hello"}}
        await r.runs("discovered", 1)
        assert any("<plugin:demo>" in str(e) and "mood" in str(e) for e in r.daemon.errors)
        status, body, _ = await r.get("/demo/count")
        assert status == 200 and '"checks": 1' in body
        _, metrics, _ = await r.get("/metrics")
        assert "probed_demo_checks 1.0" in metrics
    assert plugin.events[-1] == "shutdown"


async def test_failing_and_hanging_notification_hooks_do_not_block_others(tmp_path: Path) -> None:
    from tests.fakes import CONTROL, Recorder

    recorder = Recorder()
    write(
        tmp_path / "a.yaml",
        """
        checks:
          - {name: n, type: script, interval: 50ms, timeout: 40ms, failure_threshold: 1}
        """,
    )
    async with running_daemon(
        tmp_path,
        builtins=(),
        plugins=[("script", ScriptPlugin()), ("bad", Misbehaving()), ("recorder", recorder)],
        hook_timeout=0.2,
    ) as r:
        await r.runs("n", 2)
        CONTROL["n"] = "fail"
        await wait_for(lambda: ("n", Status.OK, Status.FAIL) in recorder.transitions, 5)
        await wait_for(
            lambda: (
                'probed_plugin_errors_total{hook="probed_check_state_changed",plugin="bad"}'
                in _sync_metrics(r.daemon)
            ),
            5,
            "hanging hook to be counted",
        )
        assert 'hook="probed_check_result",plugin="bad"' in _sync_metrics(r.daemon)
    CONTROL.clear()


def _sync_metrics(daemon: Any) -> str:
    from probed.metrics import render

    return render(daemon.store, daemon.type_metrics, daemon.metrics, False).decode()


GREETER = """
import click
from probed import hookimpl


@hookimpl
def probed_register_commands(cli: click.Group) -> None:
    @click.command(name="hello")
    def hello() -> None:
        click.echo("hello from a plugin")

    cli.add_command(hello)
"""


def test_register_commands_adds_a_subcommand_to_the_probed_command_line(tmp_path: Path) -> None:
    (tmp_path / "greeter.py").write_text(GREETER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    for args, extra_env in (
        (["--plugins-dir", str(tmp_path), "hello"], {}),
        (["hello"], {"PROBED_PLUGINS_DIR": str(tmp_path)}),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "probed", *args],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "hello from a plugin\n"
    # without the plugin there is no such command
    done = subprocess.run(
        [sys.executable, "-m", "probed", "hello"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "No such command 'hello'" in done.stderr and done.stdout == ""


def test_every_hook_is_tested_and_documented() -> None:
    """Meta-test: a hook without a test implementing it or an entry in docs/plugins.md fails."""
    assert HOOK_NAMES, "no hookspecs found"
    sources = [*(ROOT / "tests").rglob("test_*.py"), ROOT / "tests" / "fakes.py"]
    tests_text = "\n".join(p.read_text() for p in sources)
    readme = (ROOT / "docs" / "plugins.md").read_text()
    untested = [h for h in HOOK_NAMES if not re.search(rf"def {h}\(", tests_text)]
    undocumented = [h for h in HOOK_NAMES if not re.search(rf"`{h}[`(]", readme)]
    assert not untested, f"hooks with no test implementing them: {untested}"
    assert not undocumented, f"hooks missing from docs/plugins.md: {undocumented}"


def test_every_hookspec_has_a_docstring_and_typed_signature() -> None:
    for name in HOOK_NAMES:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 20, name
        assert "return" in fn.__annotations__, name


# -- the one hook path: through pluggy, wrappers honoured, implementations isolated -------------


class Wrapping:
    """A new-style wrapper around the per-run notification and an old-style one around
    ``probed_configure``: both must wrap the call, once."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    @hookimpl(wrapper=True)
    def probed_check_result(self, spec: Any, result: Any) -> Iterator[None]:
        self.events.append("wrap-before")
        try:
            outcome = yield
        except Exception as exc:  # pragma: no cover - isolation means nothing reaches a wrapper
            self.events.append(f"wrap-saw-{exc}")
            raise
        self.events.append(f"wrap-after-{len(outcome)}")  # type: ignore[arg-type]
        return outcome

    @hookimpl(hookwrapper=True)
    def probed_configure(self, settings: Any, plugin_config: Any) -> Iterator[None]:
        self.events.append("old-wrap-before")
        yield
        self.events.append("old-wrap-after")


class Plain:
    def __init__(self, name: str, events: list[str], *, fails: bool = False) -> None:
        self.name, self.events, self.fails = name, events, fails

    @hookimpl
    def probed_check_result(self, spec: Any, result: Any) -> None:
        self.events.append(self.name)
        if self.fails:
            raise RuntimeError(f"{self.name} broke")

    @hookimpl
    def probed_configure(self, settings: Any, plugin_config: Any) -> None:
        self.events.append(f"{self.name}-configure")


class Slow:
    """An async implementation that yields to the loop several times before it ends."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events

    @hookimpl
    async def probed_startup(self, settings: Any, states: Any) -> None:
        self.events.append(f"{self.name}-start")
        for _ in range(3):
            await asyncio.sleep(0)
        self.events.append(f"{self.name}-end")


def _manager(*plugins: tuple[str, object]) -> Any:
    from probed.plugins import get_plugin_manager

    return get_plugin_manager(builtins=(), entry_points=False, extra=plugins)


def _notifier(pm: Any, errors: list[tuple[str, str]]) -> Any:
    from probed.notify import Notifier

    return Notifier(pm, 1.0, lambda plugin, hook: errors.append((plugin, hook)))


async def test_a_wrapper_wraps_the_notification_and_a_raising_implementation_stops_no_other() -> (
    None
):
    events: list[str] = []
    errors: list[tuple[str, str]] = []
    pm = _manager(
        ("wrapping", Wrapping(events)),
        ("first", Plain("first", events)),
        ("broken", Plain("broken", events, fails=True)),
        ("last", Plain("last", events)),
    )
    await _notifier(pm, errors).call("probed_check_result", spec=None, result=None)
    # pluggy's order (last registered first), the wrapper around all of them, exactly once
    assert events == ["wrap-before", "last", "broken", "first", "wrap-after-0"]
    assert errors == [("broken", "probed_check_result")]


async def test_an_old_style_hookwrapper_wraps_probed_configure() -> None:
    events: list[str] = []
    pm = _manager(("wrapping", Wrapping(events)), ("a", Plain("a", events)))
    await _notifier(pm, []).call("probed_configure", settings=None, plugin_config={})
    assert events == ["old-wrap-before", "a-configure", "old-wrap-after"]


async def test_async_lifecycle_implementations_are_awaited_one_at_a_time() -> None:
    events: list[str] = []
    pm = _manager(("one", Slow("one", events)), ("two", Slow("two", events)))
    await _notifier(pm, []).call("probed_startup", settings=None, states=None)
    assert events == ["two-start", "two-end", "one-start", "one-end"]


def test_without_isolation_an_exception_goes_through_the_wrappers_to_the_caller() -> None:
    seen: list[str] = []

    class Watching:
        @hookimpl(wrapper=True)
        def probed_discover_checks(self, settings: Any) -> Iterator[None]:
            try:
                return (yield)
            except RuntimeError as exc:
                seen.append(str(exc))
                raise

    class Failing:
        @hookimpl
        def probed_discover_checks(self, settings: Any) -> list[Any]:
            raise RuntimeError("discovery down")

    pm = _manager(("watching", Watching()), ("failing", Failing()))
    with pytest.raises(RuntimeError, match=r"^discovery down$"):
        pm.call_hook("probed_discover_checks", settings=None)
    assert seen == ["discovery down"]


def test_call_hook_pairs_each_value_with_its_plugin_and_honours_a_wrapper_that_filters() -> None:
    class Source:
        def __init__(self, value: str) -> None:
            self.value = value

        @hookimpl
        def probed_discover_checks(self, settings: Any) -> list[dict[str, str]]:
            return [{"name": self.value}]

    class DropB:
        @hookimpl(wrapper=True)
        def probed_discover_checks(self, settings: Any) -> Iterator[None]:
            found = yield
            return [defs for defs in found if defs[0]["name"] != "b"]  # type: ignore[attr-defined]

    pm = _manager(("a", Source("a")), ("b", Source("b")), ("c", Source("c")))
    assert [p for p, _ in pm.call_hook("probed_discover_checks", settings=None)] == ["c", "b", "a"]
    pm.register(DropB(), name="drop-b")
    assert pm.call_hook("probed_discover_checks", settings=None) == [
        ("c", [{"name": "c"}]),
        ("a", [{"name": "a"}]),
    ]
    pm.unregister(name="c")  # what call_hook prepared is rebuilt when the plugins change
    assert pm.call_hook("probed_discover_checks", settings=None) == [("a", [{"name": "a"}])]


def test_check_types_follow_plugins_registered_after_the_manager_was_built() -> None:
    from probed.plugins import check_types

    pm = _manager()
    assert "script" not in check_types(pm)
    pm.register(ScriptPlugin(), name="script")
    assert check_types(pm)["script"].plugin == "script"
    pm.unregister(name="script")
    assert "script" not in check_types(pm)


def test_plugin_origins_live_on_probeds_plugin_manager_not_on_a_stuck_attribute() -> None:
    from probed.plugins import ProbedPluginManager, plugin_infos

    pm = _manager(("script", ScriptPlugin()))
    assert isinstance(pm, ProbedPluginManager) and not hasattr(pm, "probed_origins")
    assert {i.name: i.origin for i in plugin_infos(pm)} == {"script": "embedded"}


async def test_a_failing_wrapper_is_reported_by_name_and_the_implementations_still_ran() -> None:
    events: list[str] = []
    errors: list[tuple[str, str]] = []

    class BrokenWrapper:
        @hookimpl(wrapper=True)
        def probed_check_result(self, spec: Any, result: Any) -> Iterator[None]:
            yield
            raise RuntimeError("wrapper bug")

    pm = _manager(
        ("a", Plain("a", events)), ("wrapper", BrokenWrapper()), ("b", Plain("b", events))
    )
    await _notifier(pm, errors).call("probed_check_result", spec=None, result=None)
    assert events == ["b", "a"]
    assert errors == [("wrapper", "probed_check_result")]
