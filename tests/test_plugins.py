"""The three plugin doors, disabling, duplicate check types and misspelled hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from probed.errors import PluginError
from probed.plugins import DEFAULT_PLUGINS, check_types, get_plugin_manager, plugin_infos
from tests.fakes import ScriptPlugin

DROP_IN = '''
"""A one-file plugin for the tests."""
from typing import ClassVar
from probed import Check, CheckOptions, Result, hookimpl

__version__ = "2.5.0"

class PingOptions(CheckOptions):
    answer: str = "pong"

class PingCheck(Check[PingOptions]):
    type_name: ClassVar[str] = "{type_name}"
    options_model = PingOptions
    description = "answers pong"

    async def run(self) -> Result:
        return Result.ok(self.options.answer)

@hookimpl
def probed_register_check_types():
    return [PingCheck]
'''


def write_plugin(directory: Path, name: str, type_name: str = "ping") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(DROP_IN.format(type_name=type_name))
    return path


def test_builtin_check_types_register_through_the_public_hook() -> None:
    pm = get_plugin_manager(entry_points=False)
    types = check_types(pm)
    for module in (m for m in DEFAULT_PLUGINS if m.startswith("probed.checks.")):
        short = module.rsplit(".", 1)[1]
        assert short in types, f"{module} registers no type named {short!r}"
        assert types[short].plugin == module


def test_drop_in_plugin_from_plugins_dir_registers_its_type(tmp_path: Path) -> None:
    write_plugin(tmp_path, "pinger")
    pm = get_plugin_manager(plugins_dirs=[tmp_path], entry_points=False)
    types = check_types(pm)
    assert types["ping"].plugin == "pinger"
    info = {i.name: i for i in plugin_infos(pm)}["pinger"]
    assert info.origin == "directory" and info.version == "2.5.0"
    assert "probed_register_check_types" in info.hooks


@pytest.fixture
def installed_distribution(tmp_path: Path) -> Iterator[Path]:
    """A real installed distribution (dist-info with entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    (site / "probed_ep_demo").mkdir(parents=True)
    (site / "probed_ep_demo" / "__init__.py").write_text(DROP_IN.format(type_name="epdemo"))
    dist = site / "probed_ep_demo-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: probed-ep-demo\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [probed]
            epdemo = probed_ep_demo
            """
        )
    )
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("probed_ep_demo", None)


def test_entry_point_plugin_is_loaded_from_an_installed_distribution(
    installed_distribution: Path,
) -> None:
    pm = get_plugin_manager()
    types = check_types(pm)
    assert types["epdemo"].plugin == "epdemo"
    info = {i.name: i for i in plugin_infos(pm)}["epdemo"]
    assert info.origin == "entrypoint"


def test_entry_point_plugin_can_be_disabled_by_name(installed_distribution: Path) -> None:
    pm = get_plugin_manager(disabled=["epdemo"])
    assert "epdemo" not in check_types(pm)


def test_disable_plugin_blocks_a_builtin() -> None:
    pm = get_plugin_manager(disabled=["probed.checks.tcp"], entry_points=False)
    assert "tcp" not in check_types(pm)
    assert "http" in check_types(pm)


def test_duplicate_check_type_stops_startup_naming_both_plugins(tmp_path: Path) -> None:
    write_plugin(tmp_path, "myhttp", type_name="http")
    with pytest.raises(PluginError) as err:
        get_plugin_manager(plugins_dirs=[tmp_path], entry_points=False)
    message = str(err.value)
    assert "'http'" in message and "probed.checks.http" in message and "myhttp" in message


def test_misspelled_hook_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(
        "from probed import hookimpl\n\n@hookimpl\n"
        "def probed_check_resutl(spec, result):\n    pass\n"
    )
    with pytest.raises(PluginError, match="probed_check_resutl"):
        get_plugin_manager(plugins_dirs=[tmp_path], entry_points=False)


def test_plugin_that_fails_to_import_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_module_for_probed\n")
    with pytest.raises(PluginError, match=r"broken\.py: failed to import: ModuleNotFoundError"):
        get_plugin_manager(plugins_dirs=[tmp_path], entry_points=False)


def test_non_check_class_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "from probed import hookimpl\n\n@hookimpl\ndef probed_register_check_types():\n"
        "    return [object]\n"
    )
    with pytest.raises(PluginError, match="not a Check subclass"):
        get_plugin_manager(plugins_dirs=[tmp_path], entry_points=False)


def test_each_plugin_manager_is_independent() -> None:
    a = get_plugin_manager(entry_points=False, extra=[("script", ScriptPlugin())])
    b = get_plugin_manager(entry_points=False)
    assert "script" in check_types(a)
    assert "script" not in check_types(b)


def test_probed_plugins_reads_plugins_dirs_and_disabled_plugins_from_the_config(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "pinger")
    write_plugin(tmp_path / "plugins", "other", type_name="other")
    config = tmp_path / "probed.yaml"
    config.write_text("plugins_dirs: [plugins]\ndisabled_plugins: [other]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    command = [sys.executable, "-m", "probed"]
    for args in (["plugins", "--config", str(config)], ["schema", "--config", str(config)]):
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "ping" in result.stdout and '"other"' not in result.stdout
    listed = subprocess.run(
        [*command, "plugins", "--config", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    names = {p["name"] for p in json.loads(listed.stdout)["plugins"]}
    assert "pinger" in names and "other" not in names
