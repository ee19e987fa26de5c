"""Every example plugin in ``plugins/`` is loaded the way ``--plugins-dir`` loads it, and works.

``file_age`` runs against real files in a temporary directory (mtimes set with ``os.utime``);
``example_hooks`` is driven through its hooks and its route is served and read back over real
loopback HTTP, by aiohttp and by its own CLI command.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import click
import pluggy
import pydantic
import pytest
from aiohttp import web
from click.testing import CliRunner

from probed import CheckOptions, CheckSpec, Reason, Result, Status
from probed.check import Check
from probed.config import LoadResult, load_checks
from probed.plugins import check_types, get_plugin_manager, plugin_infos
from probed.settings import Settings
from probed.testing import run_check
from tests.harness import running_daemon
from tests.harness import write as harness_write
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
        pydantic.ValidationError, match=r"warn_age \(48h\) must not be above max_age \(24h\)"
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


# -- the example check files ------------------------------------------------------------------

HOST_TYPES = ("probed.checks.disk", "probed.checks.cpu", "probed.checks.memory")
CHECKS_D = ROOT / "checks.d"


def load_examples(pm: pluggy.PluginManager, *names: str) -> LoadResult:
    """Load example files with probed's own loader, the environment left at its defaults."""
    return load_checks(Settings(), check_types(pm), extra_files=[CHECKS_D / n for n in names])


async def test_backups_example_loads_with_the_plugins_dir_and_passes_on_a_fresh_backup(
    file_age: type[Check[Any]], tmp_path: Path
) -> None:
    pm = get_plugin_manager(plugins_dirs=[PLUGINS], builtins=HOST_TYPES, entry_points=False)
    loaded = load_examples(pm, "backups.yaml")
    assert loaded.errors == ()
    assert {s.type for s in loaded.specs.values()} == {"file_age"}
    # The nightly backup example, pointed at a real fresh dump of a plausible size, passes.
    nightly = loaded.specs["nightly-db-backup"].options.model_dump()
    write(tmp_path / "app-2024-05-01.sql.gz", 2 * 2**20, HOUR)
    nightly["path"] = f"{tmp_path}/{Path(nightly['path']).name}"
    result = await run_check(file_age, **nightly)
    assert result.status is Status.OK, result.message


def test_backups_example_needs_the_plugins_dir() -> None:
    pm = get_plugin_manager(builtins=HOST_TYPES, entry_points=False)
    loaded = load_examples(pm, "backups.yaml")
    assert loaded.errors
    assert all("file_age" in str(error) for error in loaded.errors)


def test_host_example_loads_against_the_builtin_types() -> None:
    pm = get_plugin_manager(builtins=HOST_TYPES, entry_points=False)
    loaded = load_examples(pm, "host.yaml")
    assert loaded.errors == ()
    assert {s.type for s in loaded.specs.values()} == {"disk", "cpu", "memory"}
    cpu = loaded.specs["cpu"]
    assert cpu.options.window < cpu.timeout  # type: ignore[attr-defined]


# -- both plugins inside a running daemon --------------------------------------------------------


async def test_daemon_with_plugins_dir_reports_a_missed_backup_and_its_recovery(
    tmp_path: Path,
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    harness_write(
        tmp_path / "checks" / "backups.yaml",
        f"""
        checks:
          - name: nightly
            type: file_age
            interval: 200ms
            timeout: 100ms
            failure_threshold: 1
            path: {backups}/app-*.sql.gz
            max_age: 1d
        """,
    )
    async with running_daemon(tmp_path / "checks", builtins=(), plugins_dirs=[PLUGINS]) as daemon:

        async def transitions() -> list[tuple[str, str, str]]:
            status, body, _ = await daemon.get("/example/transitions?check=nightly")
            assert status == 200
            return [(t["old"], t["new"], t["reason"]) for t in json.loads(body)]

        seen: list[tuple[str, str, str]] = []

        async def has(transition: tuple[str, str, str]) -> bool:
            seen[:] = await transitions()
            return transition in seen

        deadline = time.monotonic() + 10
        while not await has(("unknown", "fail", "not_found")):
            assert time.monotonic() < deadline, f"no fail transition, saw {seen}"
            await asyncio.sleep(0.02)

        write(backups / "app-2024-05-01.sql.gz", 100, HOUR)
        while not await has(("fail", "ok", "")):
            assert time.monotonic() < deadline, f"no recovery transition, saw {seen}"
            await asyncio.sleep(0.02)
        assert seen[0] == ("fail", "ok", "")  # newest first

        _, metrics, _ = await daemon.get("/metrics")
        assert re.search(r'^probed_file_count\{[^}]*check="nightly"[^}]*\} 1(\.0)?$', metrics, re.M)
