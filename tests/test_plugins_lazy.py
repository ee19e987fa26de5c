"""Built-in check types cost nothing until used: a type's module is imported when a check of
that type is configured (or something needs every type), and everything users see is the same
as if every module had been imported at start-up."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import probed
from probed import hookimpl
from probed._check_types import BUILTIN_TYPES, CheckTypeInfo, LazyBuiltin
from probed._type_metrics import LoadedTypeMetrics
from probed.config import load_checks, load_settings
from probed.errors import PluginError
from probed.exposition import TypeMetrics
from probed.plugins import DEFAULT_PLUGINS, check_types, get_plugin_manager, plugin_infos
from tests.test_plugins import write_plugin

REPO = Path(__file__).resolve().parent.parent
TYPE_MODULES = tuple(m for m in DEFAULT_PLUGINS if m.startswith("probed.checks."))


def run_fresh(script: str) -> Any:
    """Run ``script`` in a fresh interpreter (nothing imported yet); return the JSON it prints
    last."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


IMPORTED = f"sorted(m for m in sys.modules if m in {list(TYPE_MODULES)!r})"
"""An expression: the built-in check type modules imported so far."""


def test_listing_the_builtin_types_imports_none_of_their_modules() -> None:
    out = run_fresh(
        f"""
        import json, sys
        from probed.plugins import check_types, get_plugin_manager, plugin_infos
        pm = get_plugin_manager(entry_points=False)
        types = check_types(pm)
        names = sorted(types)
        plugins = [(i.name, i.origin, i.hooks) for i in plugin_infos(pm)]
        print(json.dumps([names, plugins, {IMPORTED}]))
        """
    )
    names, plugins, imported = out
    assert names == sorted(t for t, _ in BUILTIN_TYPES.values())
    assert imported == []
    builtins = [p for p in plugins if p[0] in TYPE_MODULES]
    assert [p[0] for p in builtins] == list(TYPE_MODULES)  # registered in DEFAULT_PLUGINS order
    assert all(p[1:] == ["builtin", ["probed_register_check_types"]] for p in builtins)


def test_reading_a_type_class_imports_only_that_types_module() -> None:
    out = run_fresh(
        f"""
        import json, sys
        from probed.plugins import check_types, get_plugin_manager
        types = check_types(get_plugin_manager(entry_points=False))
        before = types["tcp"].loaded
        name = types["tcp"].cls.__name__
        print(json.dumps([before, types["tcp"].loaded, name, {IMPORTED}]))
        """
    )
    assert out == [False, True, "TcpCheck", ["probed.checks.tcp"]]


def test_the_embedded_daemon_imports_only_the_host_check_types() -> None:
    out = run_fresh(
        f"""
        import asyncio, json, sys
        from tests.harness import running_daemon, wait_for

        async def main():
            async with running_daemon(None, use_embedded_checks=True) as running:
                store = running.daemon.store
                names = ("host-disk-root", "host-memory", "host-cpu")
                await wait_for(
                    lambda: all(n in store and sum(store.get(n).runs) for n in names), 30, "runs"
                )
                async with running.session.get(running.url + "/metrics") as response:
                    text = await response.text()
            return text

        text = asyncio.run(main())
        families = sorted(
            line.split()[2] for line in text.splitlines() if line.startswith("# TYPE probed_")
        )
        print(json.dumps([families, {IMPORTED}]))
        """
    )
    families, imported = out
    assert imported == ["probed.checks.cpu", "probed.checks.disk", "probed.checks.memory"]
    # each loaded type's own families are exposed, as when every module was imported
    for module in ("disk", "memory", "cpu"):
        cls = importlib.import_module(f"probed.checks.{module}").probed_register_check_types()[0]
        declared = {m.name for m in cls.metrics}
        assert declared and declared <= set(families), (module, declared - set(families))


def test_the_builtin_types_table_is_what_each_module_registers() -> None:
    assert set(BUILTIN_TYPES) == set(TYPE_MODULES)
    for module_name, (type_name, requires) in BUILTIN_TYPES.items():
        module = importlib.import_module(module_name)
        [cls] = module.probed_register_check_types()
        assert (cls.type_name, cls.requires) == (type_name, requires), module_name
        # the stand-in implements the module's only hook, with pluggy's default options
        hooks = [n for n in dir(module) if n.startswith("probed_")]
        assert hooks == ["probed_register_check_types"], module_name
        opts = module.probed_register_check_types.probed_impl
        assert not any(opts.values()), (module_name, opts)


def test_builtin_plugins_are_described_as_when_their_modules_were_registered() -> None:
    pm = get_plugin_manager(entry_points=False)
    infos = {i.name: i for i in plugin_infos(pm)}
    for module in TYPE_MODULES:
        info = infos[module]
        assert (info.origin, info.location, info.version) == ("builtin", module, probed.__version__)
        assert info.hooks == ("probed_register_check_types",)


def test_a_disabled_builtin_type_is_unknown_and_the_error_lists_every_other_type(
    tmp_path: Path,
) -> None:
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "web.yaml").write_text(
        "checks:\n  - name: web\n    type: http\n    url: http://127.0.0.1/\n"
    )
    pm = get_plugin_manager(disabled=["probed.checks.http"], entry_points=False)
    settings = load_settings(None, {"checks_dirs": (checks,), "watch": False})
    loaded = load_checks(settings, check_types(pm))
    [error] = loaded.errors
    others = ", ".join(sorted(t for t, _ in BUILTIN_TYPES.values() if t != "http"))
    assert "unknown type 'http'" in str(error)
    assert f"registered types: {others}" in str(error)


def test_a_drop_in_type_may_not_shadow_a_builtin_type_whose_module_is_not_imported(
    tmp_path: Path,
) -> None:
    path = write_plugin(tmp_path, "mydns", type_name="dns")
    with pytest.raises(PluginError) as err:
        get_plugin_manager(plugins_dirs=[tmp_path], entry_points=False)
    assert str(err.value) == (
        f"check type 'dns' is registered twice: by plugin 'mydns' (drop-in file {path}) and "
        "by plugin 'probed.checks.dns' (built in); rename one type_name, or disable one "
        "plugin with --disable-plugin mydns (or probed.checks.dns)"
    )


def test_types_are_listed_in_the_order_pluggy_calls_their_plugins(tmp_path: Path) -> None:
    write_plugin(tmp_path, "pinger")
    pm = get_plugin_manager(plugins_dirs=[tmp_path], entry_points=False)
    expected = ["ping", *(BUILTIN_TYPES[m][0] for m in reversed(TYPE_MODULES))]
    assert list(check_types(pm)) == expected
    called = [  # pluggy itself, every implementation called
        cls.type_name for classes in pm.hook.probed_register_check_types() for cls in classes
    ]
    assert called == expected


class Wrapper:
    """Wraps probed_register_check_types: sees the whole result, and drops the exec type."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl(wrapper=True)
    def probed_register_check_types(self) -> Any:
        result = yield
        self.seen = [cls for classes in result for cls in classes]
        return [[c for c in classes if c.type_name != "exec"] for classes in result]


def test_a_wrapper_around_the_registration_sees_every_builtin_class() -> None:
    wrapper = Wrapper()
    pm = get_plugin_manager(entry_points=False, extra=[("wrapper", wrapper)])
    types = check_types(pm)
    builtin = {t for t, _ in BUILTIN_TYPES.values()}
    assert {cls.type_name for cls in wrapper.seen} == builtin
    assert all(isinstance(cls, type) for cls in wrapper.seen)
    assert set(types) == builtin - {"exec"}
    assert all(types[name].loaded for name in types)


def test_a_type_entry_reads_requires_and_identity_without_importing() -> None:
    out = run_fresh(
        f"""
        import json, sys
        from probed.plugins import check_types, get_plugin_manager
        info = check_types(get_plugin_manager(entry_points=False))["postgres"]
        seen = [info.identity, info.requires, info.missing_module is None, {IMPORTED}]
        seen += [info.cls.requires, info.identity]
        print(json.dumps(seen))
        """
    )
    identity, requires, _, imported, loaded_requires, loaded_identity = out
    assert imported == []  # neither read imported the module
    assert requires == loaded_requires == ["asyncpg"]
    assert identity == loaded_identity  # the same once loaded: a reload's fingerprint agrees


def test_a_type_entry_compares_and_shows_like_the_class_it_stands_for() -> None:
    info = check_types(get_plugin_manager(entry_points=False))["postgres"]
    assert info == CheckTypeInfo(info.cls, "probed.checks.postgres")
    assert hash(info) == hash(CheckTypeInfo(info.cls, "probed.checks.postgres"))
    lazy = CheckTypeInfo.builtin(LazyBuiltin("probed.checks.postgres"), "p")
    assert repr(lazy) == (
        "CheckTypeInfo(cls=<built-in check type 'postgres' from probed.checks.postgres>, "
        "plugin='p')"
    )


def test_metric_families_follow_the_loaded_types_in_registration_order() -> None:
    types = check_types(get_plugin_manager(entry_points=False))
    metrics = LoadedTypeMetrics(types)
    assert metrics.families == {}
    http_families = {m.name for m in types["http"].cls.metrics}
    assert http_families and set(metrics.families) == http_families
    kept = metrics.families
    for info in types.values():
        info.cls  # noqa: B018 - load every type
    full = TypeMetrics((name, info.cls.metrics) for name, info in types.items())
    assert list(metrics.families) == list(full.families)
    assert metrics.labels == full.labels
    assert set(kept) == http_families  # a render in progress keeps the families it began with


def test_a_builtin_module_registering_another_type_than_the_table_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lazy = LazyBuiltin("probed.checks.tcp")
    monkeypatch.setattr(lazy, "type_name", "tcp2")
    with pytest.raises(PluginError, match=r"registers \['tcp'\], not \['tcp2'\]"):
        lazy.resolve()
