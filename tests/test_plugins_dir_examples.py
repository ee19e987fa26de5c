"""Every example plugin in ``plugins/`` is loaded the way ``--plugins-dir`` loads it, and works.

``file_age`` runs against real files in a temporary directory (mtimes set with ``os.utime``);
``example_hooks`` is driven through its hooks and its route is served and read back over real
loopback HTTP, by aiohttp and by its own CLI command.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import click
import pluggy
import pydantic
import pytest
import yaml
from aiohttp import web
from click.testing import CliRunner

from probed import CheckOptions, CheckSpec, Reason, Result, Status
from probed.check import Check
from probed.plugins import check_types, get_plugin_manager, plugin_infos
from probed.testing import run_check
from tests.servers._util import free_port

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
HOUR = 3600.0


@pytest.fixture(scope="module")
def pm() -> pluggy.PluginManager:
    """The plugins directory alone, as ``probed --plugins-dir plugins`` loads it."""
    return get_plugin_manager(plugins_dirs=[PLUGINS], builtins=(), entry_points=False)


@pytest.fixture(scope="module")
def file_age(pm: pluggy.PluginManager) -> type[Check[Any]]:
    return check_types(pm)["file_age"].cls


def test_every_example_plugin_is_loaded_and_tested_here(pm: pluggy.PluginManager) -> None:
    examples = {p.stem for p in PLUGINS.glob("*.py") if not p.name.startswith("_")}
    loaded = {info.name: info for info in plugin_infos(pm)}
    assert examples == {"file_age", "example_hooks"}, "new example: load and test it here"
    assert examples <= set(loaded)
    assert all(loaded[name].origin == "directory" for name in examples)
    assert loaded["example_hooks"].hooks == (
        "probed_check_state_changed",
        "probed_register_commands",
        "probed_register_routes",
    )
    assert loaded["file_age"].version == "1.0.0"


def write(path: Path, size: int, age: float) -> Path:
    """A file of ``size`` bytes last modified ``age`` seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    mtime = time.time() - age
    os.utime(path, (mtime, mtime))
    return path


# -- file_age ----------------------------------------------------------------------------------


async def test_file_age_passes_when_the_newest_backup_is_fresh_and_big_enough(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    write(tmp_path / "db-1.sql.gz", 4096, 50 * HOUR)
    newest = write(tmp_path / "db-2.sql.gz", 2048, 2 * HOUR)
    result = await run_check(
        file_age, path=f"{tmp_path}/db-*.sql.gz", max_age="1d", min_size="1KiB"
    )
    assert result.status is Status.OK
    assert result.values["probed_file_age_seconds"] == pytest.approx(2 * HOUR, abs=60)
    assert result.values["probed_file_size_bytes"] == 2048
    assert result.values["probed_file_count"] == 2
    assert str(newest) in result.message


async def test_file_age_fails_when_the_newest_file_is_too_old(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    write(tmp_path / "db-1.sql.gz", 4096, 80 * HOUR)
    newest = write(tmp_path / "db-2.sql.gz", 4096, 30 * HOUR)
    result = await run_check(file_age, path=f"{tmp_path}/db-*.sql.gz", max_age="1d")
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert f"{newest} is 30h old, older than max_age 24h" in result.message
    assert result.values["probed_file_age_seconds"] == pytest.approx(30 * HOUR, abs=60)


async def test_file_age_warns_between_warn_age_and_max_age(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    write(tmp_path / "nightly.dump", 100, 27 * HOUR)
    result = await run_check(
        file_age, path=str(tmp_path / "nightly.dump"), warn_age="26h", max_age="2d"
    )
    assert result.status is Status.WARN
    assert result.reason == Reason.THRESHOLD
    assert "older than warn_age" in result.message


async def test_file_age_fails_when_the_newest_file_is_too_small(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    write(tmp_path / "db-1.sql.gz", 10_000, 30 * HOUR)  # big but older: not the one that counts
    newest = write(tmp_path / "db-2.sql.gz", 0, 1 * HOUR)  # the dump that died at once
    result = await run_check(file_age, path=f"{tmp_path}/*.sql.gz", max_age="2d")
    assert result.status is Status.FAIL
    assert result.reason == Reason.THRESHOLD
    assert f"{newest} is 0 B, smaller than min_size 1 B" in result.message
    assert result.values["probed_file_size_bytes"] == 0


async def test_file_age_fails_naming_the_pattern_when_nothing_matches(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    write(tmp_path / "other.txt", 10, 0)
    pattern = f"{tmp_path}/db-*.sql.gz"
    result = await run_check(file_age, path=pattern, max_age="1d")
    assert result.status is Status.FAIL
    assert result.reason == "not_found"
    assert result.message == f"no file matches {pattern}"
    assert result.values["probed_file_count"] == 0


async def test_file_age_ignores_directories_and_recurses_with_double_star(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    (tmp_path / "2024-05-02.sql.gz").mkdir()  # a directory newer than any file
    deep = write(tmp_path / "host-a" / "daily" / "2024-05-01.sql.gz", 100, 5 * HOUR)
    result = await run_check(file_age, path=f"{tmp_path}/**/*.sql.gz", max_age="1d")
    assert result.status is Status.OK
    assert str(deep) in result.message
    assert result.values["probed_file_count"] == 1


async def test_file_age_counts_a_future_mtime_as_brand_new(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    write(tmp_path / "skewed.dump", 10, -HOUR)
    result = await run_check(file_age, path=str(tmp_path / "skewed.dump"), max_age="1h")
    assert result.status is Status.OK
    assert result.values["probed_file_age_seconds"] == 0.0


def test_file_age_options_are_validated_with_clear_messages(file_age: type[Check[Any]]) -> None:
    model = file_age.options_model
    with pytest.raises(pydantic.ValidationError, match="path must be absolute"):
        model.model_validate({"path": "backups/*.gz", "max_age": "1d"})
    with pytest.raises(
        pydantic.ValidationError, match=r"warn_age \(48h\) must be below max_age \(24h\)"
    ):
        model.model_validate({"path": "/b/*", "max_age": "1d", "warn_age": "2d"})
    with pytest.raises(pydantic.ValidationError, match="max_age"):
        model.model_validate({"path": "/b/*"})
    opts = model.model_validate({"path": "/b/*", "max_age": "1d", "min_size": "1MiB"})
    assert (opts.max_age, opts.min_size) == (86400.0, 2**20)  # type: ignore[attr-defined]


# -- example_hooks -----------------------------------------------------------------------------


def spec(name: str) -> CheckSpec:
    return CheckSpec(name=name, type="http", interval=10.0, timeout=5.0, options=CheckOptions())


@pytest.fixture
async def served(pm: pluggy.PluginManager) -> AsyncIterator[str]:
    """The plugin's routes served by aiohttp on loopback; yields the base URL."""
    app = web.Application()
    for routes in pm.hook.probed_register_routes(states=None):
        app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def notify(pm: pluggy.PluginManager, **kwargs: Any) -> None:
    """Call the notification hook as the daemon does: each implementation, awaited."""
    for outcome in pm.hook.probed_check_state_changed(**kwargs):
        if asyncio.iscoroutine(outcome):
            await outcome


async def test_example_hooks_serves_state_changes_newest_first(
    pm: pluggy.PluginManager, served: str
) -> None:
    down = Result.fail(Reason.TIMEOUT, "no answer within the timeout of 5s", timestamp=1.7e9)
    up = Result.ok("200 OK", timestamp=1.7e9 + 60)
    await notify(pm, spec=spec("payments-api"), old=Status.OK, new=Status.FAIL, result=down)
    await notify(pm, spec=spec("payments-api"), old=Status.FAIL, new=Status.OK, result=up)
    await notify(pm, spec=spec("search"), old=Status.UNKNOWN, new=Status.OK, result=up)

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served}/example/transitions") as response:
            assert response.status == 200
            items = await response.json()
        async with session.get(f"{served}/example/transitions?check=payments-api") as response:
            only = await response.json()

    assert [(i["check"], i["old"], i["new"]) for i in items[:3]] == [
        ("search", "unknown", "ok"),
        ("payments-api", "fail", "ok"),
        ("payments-api", "ok", "fail"),
    ]
    assert items[2]["reason"] == "timeout"
    assert {i["check"] for i in only} == {"payments-api"}

    # The command line reads the same route from a running daemon and prints one line each.
    cli = click.Group("probed")
    pm.hook.probed_register_commands(cli=cli)
    assert "transitions" in cli.commands
    run = await asyncio.to_thread(
        CliRunner().invoke, cli, ["transitions", "--url", served, "--check", "payments-api"]
    )
    assert run.exit_code == 0, run.output
    lines = run.output.splitlines()
    assert lines[0] == "2023-11-14T22:14:20Z payments-api: fail -> ok 200 OK"
    assert lines[1] == (
        "2023-11-14T22:13:20Z payments-api: ok -> fail (timeout) no answer within the timeout of 5s"
    )


def test_example_hooks_command_says_when_the_daemon_is_unreachable(
    pm: pluggy.PluginManager,
) -> None:
    cli = click.Group("probed")
    pm.hook.probed_register_commands(cli=cli)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = CliRunner().invoke(cli, ["transitions", "--url", url])
    assert run.exit_code == 1
    assert f"cannot reach probed at {url}" in run.output


# -- the example check file --------------------------------------------------------------------

COMMON_KEYS = {
    "name", "type", "interval", "timeout", "readiness", "failure_threshold",
    "success_threshold", "labels", "description",
}  # fmt: skip


def interpolate_defaults(text: str) -> str:
    """``${VAR:-default}`` with the environment unset, as on a fresh machine."""
    return re.sub(r"\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}", r"\1", text)


def example_checks(name: str) -> list[Mapping[str, Any]]:
    data = yaml.safe_load(interpolate_defaults((ROOT / "checks.d" / name).read_text()))
    checks: list[Mapping[str, Any]] = data["checks"]
    return checks


async def test_backups_example_validates_and_runs_against_a_fresh_backup(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    checks = example_checks("backups.yaml")
    assert {c["type"] for c in checks} == {"file_age"}
    for check in checks:
        options = {k: v for k, v in check.items() if k not in COMMON_KEYS}
        file_age.options_model.model_validate(options)
    # The first example pointed at a real, fresh dump passes.
    options = {k: v for k, v in checks[0].items() if k not in COMMON_KEYS}
    write(tmp_path / "app-2024-05-01.sql.gz", 2 * 2**20, HOUR)
    options["path"] = f"{tmp_path}/{Path(options['path']).name}"
    result = await run_check(file_age, **options)
    assert result.status is Status.OK, result.message


def test_host_example_validates_against_the_builtin_types() -> None:
    host = ("probed.checks.disk", "probed.checks.cpu", "probed.checks.memory")
    types = check_types(get_plugin_manager(builtins=host, entry_points=False))
    checks = example_checks("host.yaml")
    assert {c["type"] for c in checks} == {"disk", "cpu", "memory"}
    for check in checks:
        options = {k: v for k, v in check.items() if k not in COMMON_KEYS}
        types[check["type"]].cls.options_model.model_validate(options)
