"""The ``exec`` check type with Debian's real Nagios plugins (check_dummy, check_tcp, check_http,
check_disk, check_procs against loopback servers) and scripts that misbehave: hang, fork a child
that hangs holding the pipes, print 10 MB, exit 137, die by a signal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from time import perf_counter

import pytest
from aiohttp import web
from pydantic import ValidationError

from probed.check import Reason, Result, Sample, Status
from probed.checks.exec import DEFAULT_ENV, ExecCheck, ExecOptions
from probed.config import LoadResult, load_checks, load_settings
from probed.plugins import check_types, get_plugin_manager
from probed.redact import MASK
from probed.testing import make_spec, run_check
from tests._require import is_root, requires
from tests.checks import _loop_guard
from tests.harness import probed_logs, running_daemon
from tests.test_secrets_everywhere import forms

PLUGINS = Path("/usr/lib/nagios/plugins")
SECRET = "exec-S3cret-t0ken-9981"


def plugin(name: str) -> str:
    return str(PLUGINS / name)


def needs(name: str) -> pytest.MarkDecorator:
    return requires(
        (PLUGINS / name).is_file(),
        f"needs {plugin(name)} (Debian: monitoring-plugins-basic/-standard)",
    )


def script(tmp_path: Path, body: str, name: str = "plugin.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def samples(result: Result, name: str = "probed_exec_perfdata") -> dict[str, float]:
    return {s.labels[0]: s.value for s in result.samples if s.name == name}


def read_pid(path: Path) -> int:
    """The PID a script wrote to ``path``; 0 while it has not (yet)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 0
    return int(text) if text.isdigit() else 0


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (exited, or a zombie waiting for its reaper)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return fields[0] in ("Z", "X")


def reaped(pid: int) -> bool:
    """True when ``pid`` is gone entirely: exited and reaped by its parent (not a zombie)."""
    return not Path(f"/proc/{pid}").exists()


async def wait_gone(pid: int, within: float = 3.0) -> bool:
    end = perf_counter() + within
    while perf_counter() < end:
        if gone(pid):
            return True
        await asyncio.sleep(0.02)
    return gone(pid)


# The house guard's list, without io.open (asyncio's subprocess_exec wraps the pipe fds in file
# objects on the loop thread: no I/O) and with the calls that wait for a process.
WAITING_CALLS = (os.statvfs, os.getloadavg, time.sleep, os.wait, os.waitpid, os.wait3, os.wait4)


@contextlib.asynccontextmanager
async def loop_gaps() -> AsyncIterator[list[float]]:
    """The loop guard: gaps between ticks of a 10 ms ticker while the body runs, and no call
    that waits for a process (or sleeps) on the loop's thread."""
    gaps: list[float] = []
    stop = asyncio.Event()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_loop_guard, "BLOCKING_CALLS", WAITING_CALLS)
        with _loop_guard.blocking_calls_on_loop_thread() as blocking:
            async with _ticker(gaps, stop):
                yield gaps
    assert blocking == []


@contextlib.asynccontextmanager
async def _ticker(gaps: list[float], stop: asyncio.Event) -> AsyncIterator[None]:

    async def tick() -> None:
        last = perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        stop.set()
        await task


# --- real Nagios plugins --------------------------------------------------------------------


@needs("check_dummy")
@pytest.mark.parametrize(
    ("code", "status"),
    [(0, Status.OK), (1, Status.WARN), (2, Status.FAIL), (3, Status.UNKNOWN)],
)
async def test_check_dummy_exit_codes_map_to_statuses(code: int, status: Status) -> None:
    result = await run_check(ExecCheck, command=[plugin("check_dummy"), str(code), "the text"])
    assert result.status is status
    assert result.reason == ("" if code == 0 else "plugin")
    assert result.message.endswith(": the text")
    assert result.values["probed_exec_exit_code"] == code


@needs("check_tcp")
async def test_check_tcp_against_a_loopback_listener_exports_time_perfdata() -> None:
    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hello, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run_check(
            ExecCheck, command=[plugin("check_tcp"), "-H", "127.0.0.1", "-p", str(port)]
        )
    finally:
        server.close()
        await server.wait_closed()
    assert result.status is Status.OK, result.message
    assert result.message.startswith("TCP OK")
    assert 0 <= samples(result)["time"] < 5
    assert samples(result, "probed_exec_perfdata_min")["time"] == 0
    with socket.socket() as sock:  # a port nothing listens on any more
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await run_check(
        ExecCheck, command=[plugin("check_tcp"), "-H", "127.0.0.1", "-p", str(closed)]
    )
    assert (refused.status, refused.reason) == (Status.FAIL, "plugin")
    assert "refused" in refused.message.lower()


@needs("check_http")
async def test_check_http_against_a_loopback_aiohttp_server() -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="all good")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = [plugin("check_http"), "-I", "127.0.0.1", "-p", str(port)]
    try:
        ok = await run_check(ExecCheck, command=[*base, "-u", "/healthz", "-s", "all good"])
        bad = await run_check(ExecCheck, command=[*base, "-u", "/broken"])
    finally:
        await runner.cleanup()
    assert ok.status is Status.OK, ok.message
    assert ok.message.startswith("HTTP OK")
    assert samples(ok)["size"] > 0 and 0 <= samples(ok)["time"] < 5
    assert (bad.status, bad.reason) == (Status.FAIL, "plugin")
    assert "500" in bad.message


@needs("check_disk")
async def test_check_disk_perfdata_are_bytes_with_thresholds_and_max() -> None:
    result = await run_check(
        ExecCheck, command=[plugin("check_disk"), "-w", "0%", "-c", "0%", "-p", "/"]
    )
    assert result.status is Status.OK, result.message
    assert result.message.startswith("DISK OK")
    used = samples(result)["/"]
    total = samples(result, "probed_exec_perfdata_max")["/"]
    st = os.statvfs("/")
    assert 0 < used <= total
    # check_disk 2.3 prints bytes (older versions MiB labelled MB): the size of /, rounded.
    assert abs(total - st.f_blocks * st.f_frsize) < 2 * 1024**2
    full = await run_check(
        ExecCheck, command=[plugin("check_disk"), "-w", "100%", "-c", "100%", "-p", "/"]
    )
    assert (full.status, full.reason) == (Status.FAIL, "plugin")
    assert full.message.startswith("DISK CRITICAL")


@needs("check_procs")
async def test_check_procs_warns_over_its_threshold() -> None:
    # Without a path: the default PATH ends with Debian's plugin directory.
    ok = await run_check(ExecCheck, command=["check_procs", "-w", "100000"])
    warn = await run_check(ExecCheck, command=[plugin("check_procs"), "-w", "1", "-c", "100000"])
    assert ok.status is Status.OK, ok.message
    assert samples(ok)["procs"] >= 1 and samples(ok, "probed_exec_perfdata_warn")["procs"] == 100000
    assert (warn.status, warn.reason) == (Status.WARN, "plugin")
    assert warn.message.startswith("PROCS WARNING")


# --- scripts that misbehave -----------------------------------------------------------------


async def test_hanging_command_is_stopped_at_the_timeout_with_its_whole_group(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    command = script(
        tmp_path,
        f"trap '' TERM\nsh -c 'trap \"\" TERM; echo $$ > {pids}.child; exec sleep 60' &\n"
        f"echo $$ > {pids}\necho 'still working'\nwait\n",
    )
    async with loop_gaps() as gaps:
        result = await run_check(ExecCheck, command=[command], timeout=1.0)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert result.duration < 1.0
    assert result.message.startswith("plugin.sh was still running after 800.0 ms (timeout 1s")
    assert result.message.endswith(
        "its process group got SIGTERM, then SIGKILL (it did not stop on SIGTERM); "
        "last output: still working"
    )
    assert await wait_gone(read_pid(pids)) and await wait_gone(read_pid(Path(f"{pids}.child")))
    assert max(gaps) < 0.25


async def test_command_that_stops_on_sigterm_is_not_killed(tmp_path: Path) -> None:
    command = script(tmp_path, "trap 'echo got TERM; exit 3' TERM\nsleep 60 & wait\n")
    result = await run_check(ExecCheck, command=[command], timeout=1.0)
    assert (result.status, result.reason) == (Status.FAIL, Reason.TIMEOUT)
    assert "SIGTERM; it stopped" in result.message


@pytest.mark.parametrize("redirect", ["", ">/dev/null 2>&1"], ids=["holding-pipes", "detached"])
async def test_a_child_left_behind_is_killed_and_does_not_hold_the_run(
    tmp_path: Path, redirect: str
) -> None:
    child = tmp_path / "child"
    command = script(
        tmp_path,
        f"sh -c 'echo $$ > {child}; exec sleep 60' {redirect} &\n"
        "echo 'OK - parent done | n=1'\nexit 0\n",
    )
    async with loop_gaps() as gaps:
        result = await run_check(ExecCheck, command=[command], timeout=5.0)
    assert result.status is Status.OK, result.message
    assert result.message == "OK - parent done" and samples(result) == {"n": 1.0}
    assert result.duration < 1.5  # not the 5 s timeout, not the child's 60 s
    assert await wait_gone(read_pid(child))
    assert max(gaps) < 0.25


async def test_ten_megabytes_of_output_are_drained_and_discarded(tmp_path: Path) -> None:
    command = script(
        tmp_path,
        "echo 'OK - chatty | lines=1'\nhead -c 10000000 /dev/zero | tr '\\0' x\n"
        "echo >&2 'and stderr'\n",
    )
    async with loop_gaps() as gaps:
        result = await run_check(ExecCheck, command=[command], max_output="4KiB", timeout=10.0)
    assert result.status is Status.OK, result.message
    assert result.message.startswith("OK - chatty")
    assert "max_output 4.0 KiB" in result.message and "9.5 MiB discarded" in result.message
    assert samples(result) == {"lines": 1.0}
    assert result.duration < 5
    assert max(gaps) < 0.25


async def test_exit_137_is_unknown_and_says_what_it_means(tmp_path: Path) -> None:
    result = await run_check(ExecCheck, command=[script(tmp_path, "echo oom\nexit 137\n")])
    assert (result.status, result.reason) == (Status.UNKNOWN, "exit_code")
    assert "exited with code 137" in result.message and "SIGKILL" in result.message
    assert result.message.endswith(": oom")
    assert result.values["probed_exec_exit_code"] == 137


@pytest.mark.parametrize(
    ("body", "reason", "words"),
    [
        ("echo dying\nkill -SEGV $$\n", "signal", "killed by SIGSEGV (not by probed): dying"),
        ("exit 4\n", "exit_code", "exited with code 4, outside the plugin range 0-3"),
        ("exit 127\n", "exit_code", "the shell did not find the command"),
    ],
)
async def test_other_endings_are_unknown_with_a_reason(
    tmp_path: Path, body: str, reason: str, words: str
) -> None:
    result = await run_check(ExecCheck, command=[script(tmp_path, body)])
    assert (result.status, result.reason) == (Status.UNKNOWN, reason)
    assert words in result.message


async def test_missing_or_unrunnable_commands_are_unknown(tmp_path: Path) -> None:
    missing = await run_check(ExecCheck, command=["no-such-plugin-anywhere"])
    assert (missing.status, missing.reason) == (Status.UNKNOWN, "not_found")
    assert "'no-such-plugin-anywhere' not found in PATH" in missing.message
    not_exec = tmp_path / "plain.txt"
    not_exec.write_text("echo hi\n")
    denied = await run_check(ExecCheck, command=[str(not_exec)])
    assert (denied.status, denied.reason) == (Status.UNKNOWN, "permission")
    no_dir = await run_check(ExecCheck, command=["true"], cwd=str(tmp_path / "nope"))
    assert (no_dir.status, no_dir.reason) == (Status.UNKNOWN, "not_found")
    assert "working directory" in no_dir.message


async def test_first_line_of_stdout_is_the_message_else_stderr(tmp_path: Path) -> None:
    quiet = await run_check(ExecCheck, command=[script(tmp_path, "echo oops >&2\nexit 2\n")])
    assert quiet.message == "no output; standard error: oops"
    multi = await run_check(
        ExecCheck,
        command=[script(tmp_path, "echo 'WARN - two | a=1'\necho x\necho 'y | b=2s'\nexit 1")],
    )
    assert (multi.status, multi.message) == (Status.WARN, "WARN - two")
    assert samples(multi) == {"a": 1.0, "b": 2.0}


def test_numbers_in_env_are_their_text() -> None:
    options = ExecOptions.model_validate({"command": ["x"], "env": {"PORT": 5432, "R": 0.5}})
    assert options.env == {"PORT": "5432", "R": "0.5"}


async def test_environment_is_minimal_unless_asked_and_cwd_is_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBED_TEST_OUTER", "outer-value")
    body = 'echo "$(env | cut -d= -f1 | grep -v -e ^PWD$ -e ^SHLVL$ | sort | tr "\\n" " ")$(pwd)"'
    command = script(tmp_path, body + "\n")
    bare = await run_check(ExecCheck, command=[command])
    assert bare.message == f"{' '.join(sorted(DEFAULT_ENV))} /"
    asked = await run_check(
        ExecCheck,
        command=[command],
        env={"EXTRA": "1"},
        inherit_env=["PROBED_TEST_OUTER", "NOT_SET_ANYWHERE"],
        cwd=str(tmp_path),
    )
    assert asked.message == f"EXTRA LC_ALL PATH PROBED_TEST_OUTER {tmp_path}"


async def test_no_shell_unless_asked(tmp_path: Path) -> None:
    literal = await run_check(ExecCheck, command=["/bin/echo", "$HOME; rm -rf /"])
    assert literal.message == "$HOME; rm -rf /"
    shell = await run_check(ExecCheck, command="echo a | tr a b; exit 1", shell=True)
    assert (shell.status, shell.message) == (Status.WARN, "b")


@pytest.mark.parametrize(
    ("option", "name"),
    [("secret_env", "PLUGIN_ARG"), ("env", "API_TOKEN"), ("env", "PGPASSWORD")],
    ids=["secret_env", "env-token-name", "env-password-name"],
)
async def test_env_secrets_never_reach_the_message_or_the_labels(
    tmp_path: Path, option: str, name: str
) -> None:
    command = script(
        tmp_path,
        f"echo \"CRITICAL - token ${name} | '${name}'=1 ok=2\"\n"
        f'echo "stderr ${name}" >&2\nexit 2\n',
    )
    result = await run_check(ExecCheck, command=[command], **{option: {name: SECRET}})
    assert result.status is Status.FAIL
    assert SECRET not in repr(result)
    assert result.message == "CRITICAL - token ***"
    assert set(samples(result)) == {"***", "ok"}
    silent = await run_check(
        ExecCheck,
        command=[script(tmp_path, f'echo "${name}" >&2\nexit 3\n', "silent.sh")],
        **{option: {name: SECRET}},
    )
    assert silent.message == "no output; standard error: ***"


async def test_plain_env_values_stay_readable(tmp_path: Path) -> None:
    # Only secret_env and secret-looking names are secrets: a host name is not masked (the
    # configuration's redactor would hide it in every check's output).
    options = ExecOptions.model_validate({"command": ["x"], "env": {"PGHOST": "db.internal"}})
    assert options.secrets() == set()
    result = await run_check(
        ExecCheck,
        command=[script(tmp_path, 'echo "OK - $PGHOST"\n')],
        env={"PGHOST": "db.internal"},
    )
    assert result.message == "OK - db.internal"


async def test_env_secrets_never_reach_logs_metrics_or_the_api_of_a_daemon(
    tmp_path: Path,
) -> None:
    checks = tmp_path / "checks.d"
    checks.mkdir()
    command = script(
        tmp_path,
        "echo \"CRITICAL - sent $API_TOKEN | '$API_TOKEN'=1 ok=2s\"\n"
        'echo "stderr $API_TOKEN $PLUGIN_ARG" >&2\nexit 2\n',
    )
    (checks / "leaky.yaml").write_text(
        "defaults: {interval: 1s, timeout: 900ms, failure_threshold: 1}\n"
        "checks:\n"
        "  - name: leaky\n"
        "    type: exec\n"
        f"    command: [{command}]\n"
        f"    env: {{API_TOKEN: {SECRET}, PGHOST: db.internal}}\n"
        f"    secret_env: {{PLUGIN_ARG: {SECRET}x}}\n"
    )
    with probed_logs() as logs:
        async with running_daemon(checks) as daemon:
            await daemon.runs("leaky", 1)
            outputs = {
                path: (await daemon.get(path))[1]
                for path in ("/metrics", "/api/v1/checks/leaky", "/health/ready?verbose")
            }
    outputs["logs"] = logs.getvalue()
    for where, text in outputs.items():
        for form in forms(SECRET) | forms(SECRET + "x"):
            assert form not in text, f"{where} shows {form!r}:\n{text}"
    detail = json.loads(outputs["/api/v1/checks/leaky"])
    assert detail["last_result"]["message"] == f"CRITICAL - sent {MASK}"
    assert detail["options"]["env"] == {"API_TOKEN": MASK, "PGHOST": "db.internal"}
    assert detail["options"]["secret_env"] == {"PLUGIN_ARG": MASK}
    metrics = outputs["/metrics"]
    assert f'probed_exec_perfdata{{check="leaky",type="exec",label="{MASK}"}} 1' in metrics
    assert 'probed_exec_perfdata{check="leaky",type="exec",label="ok"} 2' in metrics
    assert 'probed_exec_exit_code{check="leaky",type="exec"} 2' in metrics


async def test_perfdata_count_is_capped_per_run(tmp_path: Path) -> None:
    many = " ".join(f"m{i}=1" for i in range(100))
    result = await run_check(
        ExecCheck, command=[script(tmp_path, f"echo 'OK | {many}'\n")], max_perfdata=32
    )
    assert len(samples(result)) == 32
    assert all(isinstance(s, Sample) for s in result.samples)


async def test_a_cancelled_run_kills_the_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = script(tmp_path, f"echo $$ > {pid_file}\nexec sleep 60\n")
    check = ExecCheck(make_spec(ExecCheck, timeout=10.0, interval=20.0, command=[command]))
    task = asyncio.create_task(check.run())
    end = perf_counter() + 5
    while not read_pid(pid_file):
        assert perf_counter() < end, "the script never started"
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # Killed and already reaped when the cancelled run returns: no zombie, and its exit was
    # delivered to this loop (a Popen left unreaped warns once the loop is closed).
    assert reaped(read_pid(pid_file))


ZOMBIE_SCRIPT = """
import asyncio, os
from probed.checks.exec import ExecCheck
from probed.testing import run_check

def zombies():
    found = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                state, ppid = f.read().rpartition(")")[2].split()[:2]
        except FileNotFoundError:
            continue
        found += state == "Z" and ppid == "1"
    return found

async def main():
    assert os.getpid() == 1
    for redirect in ("", ">/dev/null 2>&1") * 3:  # holding the pipes, and detached
        result = await run_check(
            ExecCheck, command="(sleep 60 %s &); echo OK" % redirect, shell=True
        )
        assert result.message == "OK", result
    await run_check(ExecCheck, command=["true"])  # a later run reaps what was still dying
    print("zombies", zombies())

asyncio.run(main())
"""


def pid_namespaces() -> bool:
    """True when this process may run a command as PID 1 of a new PID namespace."""
    if not is_root() or shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--pid", "--fork", "--mount-proc", "true"]
    return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0


@requires(pid_namespaces, "needs root and unshare --pid (util-linux) for a PID namespace")
def test_as_pid_1_what_commands_leave_behind_is_reaped() -> None:
    # In a container without an init probed is PID 1: orphans of a command are re-parented to
    # it and, once killed, would stay zombies. Run the checks as PID 1 of a new PID namespace.
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", ZOMBIE_SCRIPT],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "zombies 0"


# --- options and validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"command": "check_disk -w 10%"}, "write it as a list"),
        ({"command": ["echo", "x"], "shell": True}, "takes the command as one string"),
        ({"command": []}, "command is empty"),
        ({"command": ["x"], "env": {"1BAD": "v"}}, "is not a variable name"),
        ({"command": ["x"], "env": {"FLAG": True}}, "FLAG is a YAML boolean; quote the text"),
        ({"command": ["x"], "env": {"A": "1"}, "secret_env": {"A": "2"}}, "A set in both env"),
        ({"command": ["x"], "inherit_env": ["A-B"]}, "'A-B' is not a variable name"),
        ({"command": ["x"], "cwd": "relative/dir"}, "path must be absolute"),
    ],
)
def test_options_are_validated_with_actionable_messages(
    options: dict[str, object], words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        ExecOptions.model_validate(options)
    assert words in str(info.value)


def _load(directory: Path) -> LoadResult:
    pm = get_plugin_manager(entry_points=False)
    return load_checks(load_settings(None, {"checks_dirs": (directory,)}), check_types(pm))


def test_validate_names_file_line_and_suggests(tmp_path: Path) -> None:
    (tmp_path / "exec.yaml").write_text(
        "checks:\n"
        "  - name: nightly\n"
        "    type: exec\n"
        "    command: [run-backup, --check]\n"
        "    inherit_envs: [HOME]\n"
        "  - name: stringly\n"
        "    type: exec\n"
        "    command: run-backup --check\n"
    )
    errors = [str(e) for e in _load(tmp_path).errors]
    assert any(
        ":5: checks[0].inherit_envs:" in e and "did you mean 'inherit_env'" in e for e in errors
    ), errors
    assert any(
        "exec.yaml:6: checks[1]" in e and "set shell: true to run it with /bin/sh -c" in e
        for e in errors
    ), errors


def test_example_file_loads() -> None:
    example = Path(__file__).parents[2] / "checks.d"
    loaded = _load(example)
    names = {n for n, s in loaded.specs.items() if s.type == "exec"}
    assert names == {"plugin-disk-root", "plugin-procs", "queue-length"}
    assert [e for e in loaded.errors if "exec.yaml" in str(e)] == []
