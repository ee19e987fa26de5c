"""The hook order documented in docs/plugins.md is the order ``probed run``, ``once`` and
``gate`` really call the hooks in, and every command executes a drop-in plugin file once.

A drop-in plugin implementing every hook appends each call to a file; the documented order is
parsed from the "Hook order" list of docs/plugins.md (its single source).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import write
from tests.servers._util import free_port, wait_until

ROOT = Path(__file__).parent.parent

RECORDING_PLUGIN = """
import os
from typing import Any, ClassVar

import click

from probed import Check, CheckOptions, Result, hookimpl

LOG = os.environ["PROBED_TEST_HOOK_LOG"]


def note(what: str) -> None:
    with open(LOG, "a") as log:
        log.write(what + "\\n")


note("module executed")


class Recorded(Check[CheckOptions]):
    type_name: ClassVar[str] = "recorded"
    options_model: ClassVar[type[CheckOptions]] = CheckOptions

    async def run(self) -> Result:
        return Result.ok("fine")


@hookimpl
def probed_register_check_types() -> list[Any]:
    note("probed_register_check_types")
    return [Recorded]


@hookimpl
def probed_register_commands(cli: click.Group) -> None:
    note("probed_register_commands")

    @click.command(name="recorded-hello")
    def hello() -> None:
        click.echo("hello")

    cli.add_command(hello)


@hookimpl
def probed_configure(settings: Any, plugin_config: Any) -> None:
    note("probed_configure")


@hookimpl
def probed_discover_checks(settings: Any) -> list[Any]:
    note("probed_discover_checks")
    return []


@hookimpl
def probed_register_routes(states: Any) -> list[Any]:
    note("probed_register_routes")
    return []


@hookimpl
def probed_register_collectors(states: Any) -> list[Any]:
    note("probed_register_collectors")
    return []


@hookimpl
async def probed_startup(settings: Any, states: Any) -> None:
    note("probed_startup")


@hookimpl
async def probed_shutdown(settings: Any) -> None:
    note("probed_shutdown")


@hookimpl
def probed_check_result(spec: Any, result: Any) -> None:
    note("probed_check_result")


@hookimpl
async def probed_check_state_changed(spec: Any, old: Any, new: Any, result: Any) -> None:
    note("probed_check_state_changed")
"""

COMMANDS = ("run", "once", "gate")


def documented_order() -> list[tuple[set[str], set[str]]]:
    """The "Hook order" list of docs/plugins.md: per step, its hooks and the commands."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = re.search(r"^#+ Hook order\n(.*?)(?=^#)", text, re.S | re.M)
    assert section is not None, "docs/plugins.md has no 'Hook order' section"
    steps = []
    for line in re.findall(r"^\d+\. (.*)$", section.group(1), re.M):
        hooks, _, rest = line.partition(" — ")
        commands = set(re.findall(r"`probed (\w+)`", rest))
        steps.append((set(re.findall(r"`(probed_\w+)`", hooks)), commands))
    assert len(steps) >= 6, steps
    return steps


def recorded_steps(lines: list[str], steps: list[tuple[set[str], set[str]]]) -> list[int]:
    """Each recorded hook call as the index of its documented step, repeats folded."""
    out: list[int] = []
    for hook in lines:
        index = next((i for i, (hooks, _) in enumerate(steps) if hook in hooks), None)
        assert index is not None, f"{hook} is called but not in the documented hook order"
        if not out or out[-1] != index:
            out.append(index)
    return out


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    write(tmp_path / "plugins" / "recording.py", RECORDING_PLUGIN)
    write(
        tmp_path / "checks.d" / "c.yaml",
        """
        checks:
          - {name: rec, type: recorded, interval: 1s, timeout: 500ms}
        """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    env["PROBED_TEST_HOOK_LOG"] = str(tmp_path / "hooks.log")
    return tmp_path, env


def run_command(
    command: str, root: Path, env: dict[str, str], *, reload: bool = False
) -> list[str]:
    """Run ``probed COMMAND`` to its end (``run``: until a check run is notified, then after
    a SIGHUP reload if asked, SIGTERM) and return the recorded hook calls."""
    log = root / "hooks.log"
    log.unlink(missing_ok=True)
    base = [sys.executable, "-m", "probed", command, "--checks-dir", "checks.d"]
    base += ["--plugins-dir", "plugins"]
    if command == "run":
        port = free_port()
        proc = subprocess.Popen(
            [*base, "--listen", f"127.0.0.1:{port}"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_until(
                lambda: log.exists() and "probed_check_result" in log.read_text(),
                30,
                "a check run to be notified",
            )
            if reload:
                proc.send_signal(signal.SIGHUP)
                wait_until(
                    lambda: log.read_text().count("probed_discover_checks") == 2,
                    30,
                    "the reload to discover checks",
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            output = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, output
    else:
        extra = ["--for", "1s", "--every", "500ms"] if command == "gate" else []
        done = subprocess.run(
            [*base, *extra], cwd=root, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return log.read_text().splitlines()


@pytest.mark.parametrize("command", COMMANDS)
def test_hooks_are_called_in_the_documented_order(
    command: str, setup: tuple[Path, dict[str, str]]
) -> None:
    root, env = setup
    steps = documented_order()
    lines = run_command(command, root, env)
    assert lines.count("module executed") == 1, lines  # one plugin manager per command
    recorded = recorded_steps([x for x in lines if x != "module executed"], steps)
    expected = [i for i, (_, commands) in enumerate(steps) if command in commands]
    assert recorded == expected, (
        f"probed {command} called {lines}; docs/plugins.md documents the steps {expected}"
    )
    if command != "run":  # the configuration is read once, however many rounds a gate has
        for hook in ("probed_configure", "probed_discover_checks", "probed_startup"):
            assert lines.count(hook) == 1, (hook, lines)


def test_a_reload_configures_plugins_before_it_discovers_checks(
    setup: tuple[Path, dict[str, str]],
) -> None:
    root, env = setup
    lines = run_command("run", root, env, reload=True)
    after_startup = lines[lines.index("probed_startup") + 1 :]
    reloading = [x for x in after_startup if x in ("probed_configure", "probed_discover_checks")]
    assert reloading == ["probed_configure", "probed_discover_checks"], lines
    assert lines[-1] == "probed_shutdown" and lines.count("module executed") == 1


def test_once_and_gate_call_the_lifecycle_hooks_of_run() -> None:
    steps = documented_order()
    lifecycle = {"probed_configure", "probed_discover_checks", "probed_startup", "probed_shutdown"}
    for hooks, commands in steps:
        if hooks & lifecycle:
            assert {"run", "once", "gate"} <= commands, (hooks, commands)


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--checks-dir", "checks.d", "--plugins-dir", "plugins"],
        ["plugins", "--plugins-dir", "plugins"],
        ["schema", "--plugins-dir", "plugins"],
        ["--plugins-dir", "plugins", "recorded-hello"],
    ],
)
def test_every_command_executes_a_drop_in_plugin_file_once(
    args: list[str], setup: tuple[Path, dict[str, str]]
) -> None:
    root, env = setup
    done = subprocess.run(
        [sys.executable, "-m", "probed", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = (root / "hooks.log").read_text().splitlines()
    assert lines.count("module executed") == 1, lines
    if args[-1] == "recorded-hello":
        assert done.stdout == "hello\n"
        assert lines.count("probed_register_commands") == 1
    else:
        assert "probed_register_commands" not in lines  # a built-in command asks no plugin


async def test_a_gate_reads_its_checks_once_an_edit_during_the_window_changes_nothing(
    tmp_path: Path,
) -> None:
    from probed.gate import run_gate
    from probed.plugins import get_plugin_manager
    from probed.settings import load_settings
    from tests.fakes import ScriptPlugin

    checks = write(
        tmp_path / "checks.d" / "c.yaml",
        "checks:\n  - {name: web, type: script, mode: ok, interval: 1s, timeout: 500ms}\n",
    )
    settings = load_settings(None, {"checks_dirs": (checks.parent,)})
    pm = get_plugin_manager(builtins=(), entry_points=False, extra=[("script", ScriptPlugin())])

    def edit(report: object, line: object) -> None:  # after the first round: now it fails
        checks.write_text(checks.read_text().replace("mode: ok", "mode: fail"))

    code, report = await run_gate(
        settings, pm, ["web"], window=1.0, every=0.5, max_failure_ratio=0.0, on_round=edit
    )
    assert "mode: fail" in checks.read_text()
    assert (code, report.rounds, report.failures) == (0, 3, 0), report
