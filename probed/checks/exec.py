"""The ``exec`` check type: run a command the way Nagios runs a plugin, and read its verdict.

The command is an argument list run without a shell (``shell: true`` takes one string and runs
it with ``/bin/sh -c``), in its own session and process group, with standard input from
``/dev/null``, an explicit environment and working directory. Its exit code is the verdict,
per the Nagios plugin API: 0 ok, 1 warn, 2 fail, 3 unknown; any other code, or death by a
signal, is ``unknown`` with a message saying what happened. The first line of standard output
is the message; its perfdata become ``probed_exec_perfdata{label}`` gauges (parsing lives in
:mod:`probed.checks._nagios`).

Bounds: standard output and standard error are each kept up to ``max_output`` bytes and the
rest is read and thrown away as it arrives (a command printing gigabytes costs CPU, not
memory, and never blocks on a full pipe); at most ``max_perfdata`` perfdata items. Shortly
before the check's timeout the whole process group gets SIGTERM, then SIGKILL, so a child that
forked and hangs holding the pipes is stopped too; when the command exits, anything it left
running in its group is stopped the same way. Nothing here blocks the event loop: the process
is an asyncio subprocess and its pipes are read by the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from time import perf_counter
from typing import Any, ClassVar, Final

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Sample, Status
from probed.checks._nagios import MAX_PERFDATA, PerfData, parse_output, parse_perfdata
from probed.checks._reasons import EXIT_CODE, NOT_FOUND, PERMISSION, PLUGIN, SIGNAL
from probed.options import AbsolutePath, Size, format_size
from probed.phase import format_elapsed, set_phase
from probed.redact import MIN_SECRET_LENGTH, Redactor, is_secret_env

__all__ = ["DEFAULT_ENV", "ExecCheck", "ExecOptions"]

DEFAULT_ENV: Final = {
    # System directories first, so a plugin directory cannot shadow a system command.
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ":/usr/lib/nagios/plugins:/usr/lib64/nagios/plugins",
    "LC_ALL": "C",
}
"""The whole environment of a command unless ``env``, ``secret_env`` or ``inherit_env`` add to
it: a fixed ``PATH`` (the system directories, then Debian's and Red Hat's Nagios plugin
directories, so ``[check_disk, ...]`` finds the stock plugins), and ``LC_ALL=C`` so plugins print
numbers with a decimal point."""

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHELL: Final = "/bin/sh"
# Time to read what an exited command left in its pipes before deciding something else
# (a child it left behind) holds them open.
_DRAIN: Final = 0.1
# Time a cancelled run waits for its SIGKILLed command to be reaped (at most; it is usually
# a millisecond, longer only for a process stuck in the kernel).
_REAP_AFTER_CANCEL: Final = 1.0
# Process groups of finished commands whose members may be probed's own children: when probed
# is PID 1 (a container without an init), whatever a command left behind is re-parented to it
# once its parent exits, and after the kill nobody else would reap it. Process-wide because
# PID 1 is; bounded. Only groups whose leader asyncio has reaped are listed, so reaping by
# group never takes a leader's exit status from asyncio's child watcher.
_ORPHAN_GROUPS: set[int] = set()
_MAX_ORPHAN_GROUPS: Final = 1024
_METRIC_HELP: Final = "Perfdata of the command, in base units (seconds, bytes, 0..1 for %)"


class ExecOptions(CheckOptions):
    """Options of the ``exec`` check type."""

    # Validation errors must not echo env values: they may be secrets.
    model_config = ConfigDict(hide_input_in_errors=True)

    command: list[str] | str = Field(
        description="the program and its arguments as a list ([check_disk, -w, 10%]); "
        "one string only with shell: true"
    )
    shell: bool = Field(
        False, description="run command (one string) with /bin/sh -c; off: no shell involved"
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="environment variables for the command, on top of PATH and LC_ALL=C; "
        "values of secret-looking names (*PASS*, *TOKEN*, *KEY*...) are masked in all output",
    )
    secret_env: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="environment variables whose values are secrets (PGPASSWORD, API keys): "
        "masked in all output, whatever their names",
    )
    inherit_env: list[str] = Field(
        default_factory=list,
        description="names of probed's own environment variables passed on (HOME, TZ...)",
    )
    cwd: AbsolutePath = Field("/", description="working directory of the command")
    max_output: Size = Field(
        65536,
        gt=0,
        le=16 * 2**20,
        description="bytes kept of standard output and of standard error each; "
        "the rest is read and discarded",
    )
    max_perfdata: int = Field(
        MAX_PERFDATA, ge=0, le=256, description="most perfdata items exported per run"
    )

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | str) -> list[str] | str:
        parts = [value] if isinstance(value, str) else value
        if not parts or not parts[0].strip():
            raise ValueError("command is empty: give the program to run, e.g. [check_dummy, 0]")
        if any("\0" in part for part in parts):
            raise ValueError("command contains a NUL character")
        return value

    @field_validator("env", "secret_env", mode="before")
    @classmethod
    def _env_numbers(cls, value: Any) -> Any:
        """``PORT: 5432`` means the text ``5432``; ``yes``/``true`` must be quoted (which text?)."""
        if not isinstance(value, dict):
            return value
        out = {}
        for name, item in value.items():
            if isinstance(item, bool):
                raise ValueError(
                    f"{name} is a YAML boolean; quote the text the command expects "
                    "('true', 'yes', '1'...)"
                )
            out[name] = str(item) if isinstance(item, int | float) else item
        return out

    @field_validator("env", "secret_env")
    @classmethod
    def _env(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(
                    f"{name[:40]!r} is not a variable name (letters, digits, _; "
                    "not starting with a digit)"
                )
            text = item.get_secret_value() if isinstance(item, SecretStr) else item
            if "\0" in text:
                raise ValueError(f"the value of {name} contains a NUL character")
        return value

    @field_validator("inherit_env")
    @classmethod
    def _inherit(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name[:40]!r} is not a variable name")
        return value

    @model_validator(mode="after")
    def _shell_or_list(self) -> ExecOptions:
        twice = sorted(set(self.env) & set(self.secret_env))
        if twice:
            raise ValueError(
                f"{', '.join(twice)} set in both env and secret_env: keep one (secret_env for "
                "a secret)"
            )
        if isinstance(self.command, str) and not self.shell:
            raise ValueError(
                "command is one string but shell is off: write it as a list "
                "([program, arg, ...]), or set shell: true to run it with /bin/sh -c"
            )
        if isinstance(self.command, list) and self.shell:
            raise ValueError(
                "shell: true takes the command as one string (run with /bin/sh -c); "
                "drop shell to run the list without a shell"
            )
        return self

    def secrets(self) -> set[str]:
        """Every ``secret_env`` value, and the ``env`` and inherited values of secret-looking
        names (``PGPASSWORD``, ``API_TOKEN``, ``AWS_SECRET_ACCESS_KEY``...).

        Not every ``env`` value: the configuration's redactor masks a known secret in all of
        probed's output, so ``PGHOST: db.internal`` would hide that host in every check's
        messages.
        """
        found = {v.get_secret_value() for v in self.secret_env.values()}
        found.update(v for n, v in self.env.items() if is_secret_env(n))
        found.update(
            os.environ[name]
            for name in self.inherit_env
            if is_secret_env(name) and name in os.environ
        )
        return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


class _Collector(asyncio.SubprocessProtocol):
    """Keeps the first ``limit`` bytes of each pipe, counts and drops the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.dropped: dict[int, int] = {1: 0, 2: 0}
        self.open_pipes = {1, 2}
        self.eof = asyncio.Event()
        self.exited = asyncio.Event()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        kept = self.kept[fd]
        room = self.limit - len(kept)
        if room > 0:
            kept += data[:room]
        self.dropped[fd] += max(len(data) - max(room, 0), 0)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.open_pipes.discard(fd)
        if not self.open_pipes:
            self.eof.set()

    def process_exited(self) -> None:
        self.exited.set()

    def text(self, fd: int) -> str:
        """What was kept of pipe ``fd``, decoded (invalid UTF-8 replaced)."""
        return self.kept[fd].decode("utf-8", "replace")


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` is set within ``timeout`` seconds."""
    if event.is_set():
        return True
    if timeout <= 0:
        return False
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _kill_group(pgid: int, sig: int) -> None:
    # ProcessLookupError: the group is gone; PermissionError: macOS for a group of zombies.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap_orphans() -> None:
    """Reap exited members of the groups in :data:`_ORPHAN_GROUPS` (never blocks); forget a
    group once none of its members is a child of probed any more."""
    for pgid in list(_ORPHAN_GROUPS):
        while True:
            try:
                if os.waitid(os.P_PGID, pgid, os.WEXITED | os.WNOHANG) is None:
                    break  # members left, still running: next time
            except ChildProcessError:
                _ORPHAN_GROUPS.discard(pgid)
                break


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(slots=True)
class _Stop:
    """How a process group was stopped: ``"SIGTERM"`` or ``"SIGKILL"``."""

    how: str = ""


class ExecCheck(Check[ExecOptions]):
    """Run a command (a Nagios plugin or any script) and map its exit code to a status."""

    type_name: ClassVar[str] = "exec"
    options_model: ClassVar[type[CheckOptions]] = ExecOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_exec_exit_code", "Exit code of the command's last run that exited"),
        MetricDef("probed_exec_perfdata", _METRIC_HELP, labels=("label",)),
        MetricDef("probed_exec_perfdata_warn", "Perfdata warning threshold", labels=("label",)),
        MetricDef("probed_exec_perfdata_crit", "Perfdata critical threshold", labels=("label",)),
        MetricDef("probed_exec_perfdata_min", "Perfdata minimum", labels=("label",)),
        MetricDef("probed_exec_perfdata_max", "Perfdata maximum", labels=("label",)),
    )
    description: ClassVar[str] = "run a command or Nagios plugin; exit code 0-3 is the verdict"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = self.options
        if isinstance(options.command, str):
            self.argv = [_SHELL, "-c", options.command]
            self.program = "sh -c"
        else:
            self.argv = list(options.command)
            self.program = os.path.basename(options.command[0]) or options.command[0]
        self.redact = Redactor(options.secrets())

    def _environment(self) -> dict[str, str]:
        env = dict(DEFAULT_ENV)
        env.update((n, os.environ[n]) for n in self.options.inherit_env if n in os.environ)
        env.update(self.options.env)
        env.update((n, v.get_secret_value()) for n, v in self.options.secret_env.items())
        return env

    def _reserve(self) -> tuple[float, float]:
        """(seconds before the timeout at which the group is stopped, SIGTERM-to-SIGKILL grace)."""
        timeout = self.spec.timeout
        reserve = min(max(0.2 * timeout, 0.1), 2.0, 0.5 * timeout)
        return reserve, reserve / 2

    async def run(self) -> Result:
        """Run the command once: spawn, wait (stopping the group at the deadline), judge."""
        loop = asyncio.get_running_loop()
        start = perf_counter()
        reserve, grace = self._reserve()
        deadline = start + self.spec.timeout - reserve
        set_phase(f"starting {self.program}")
        try:
            transport, proto = await loop.subprocess_exec(
                lambda: _Collector(self.options.max_output),
                *self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._environment(),
                cwd=self.options.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return self._spawn_failed(exc)
        pgid = transport.get_pid()
        _ORPHAN_GROUPS.discard(pgid)  # a group of that number is gone: this one is new
        stopped = _Stop()
        try:
            set_phase(f"waiting for {self.program} to exit")
            if not await _wait(proto.exited, deadline - perf_counter()):
                await self._stop(pgid, proto, grace, stopped)
                return self._timed_out(proto, deadline - start, stopped)
            # The exit code is known; read what is left in the pipes, unless a child left
            # behind holds them open: then stop the group as at a timeout.
            if not await _wait(proto.eof, min(_DRAIN, deadline + reserve - perf_counter())):
                await self._stop(pgid, proto, grace, stopped)
            elapsed = perf_counter() - start
        finally:
            if not stopped.how:
                # Leftovers in the group (or everything, when the run was cancelled) go now.
                _kill_group(pgid, signal.SIGKILL)
                if not proto.exited.is_set():
                    # Cancelled: reap the killed command before closing, so its exit reaches
                    # this loop (not a closed one) and no zombie or unreaped Popen is left.
                    await _wait(proto.exited, _REAP_AFTER_CANCEL)
            transport.close()
            if os.getpid() == 1:
                if (
                    transport.get_returncode() is not None
                    and len(_ORPHAN_GROUPS) < _MAX_ORPHAN_GROUPS
                ):
                    _ORPHAN_GROUPS.add(pgid)
                _reap_orphans()
        code = transport.get_returncode()
        return self._verdict(code if code is not None else -signal.SIGKILL, proto, elapsed)

    async def _stop(self, pgid: int, proto: _Collector, grace: float, stopped: _Stop) -> None:
        """SIGTERM the group; SIGKILL it unless it exited and closed the pipes within ``grace``."""
        set_phase(f"stopping {self.program}")
        _kill_group(pgid, signal.SIGTERM)
        stopped.how = "SIGTERM"
        end = perf_counter() + grace
        if await _wait(proto.exited, grace) and await _wait(proto.eof, end - perf_counter()):
            _kill_group(pgid, signal.SIGKILL)  # members that closed the pipes but ignore TERM
            return
        _kill_group(pgid, signal.SIGKILL)
        stopped.how = "SIGKILL"
        await _wait(proto.exited, grace)

    def _spawn_failed(self, exc: OSError) -> Result:
        where = exc.filename if isinstance(exc.filename, str) else self.argv[0]
        if where == self.options.cwd and isinstance(exc, FileNotFoundError | NotADirectoryError):
            return Result.unknown(
                NOT_FOUND, f"working directory {where} does not exist (cwd); nothing was run"
            )
        if isinstance(exc, FileNotFoundError):
            hint = f" in PATH ({self._environment()['PATH']})" if "/" not in self.argv[0] else ""
            return Result.unknown(
                NOT_FOUND,
                f"command {self.argv[0]!r} not found{hint}: install it, or give its absolute path",
            )
        if isinstance(exc, PermissionError):
            return Result.unknown(
                PERMISSION,
                f"cannot execute {where!r}: permission denied (not executable, or a "
                "directory on its path is not searchable)",
            )
        return Result.unknown(
            Reason.EXCEPTION, f"cannot start {self.program}: {exc.strerror or exc}"
        )

    def _output_line(self, proto: _Collector) -> str:
        """The message: the first line of standard output, else of standard error."""
        first = parse_output(proto.text(1)).message
        if not first:
            err = parse_output(proto.text(2)).message
            first = f"no output; standard error: {err}" if err else "no output"
        if proto.dropped[1] or proto.dropped[2]:
            dropped = proto.dropped[1] + proto.dropped[2]
            first += (
                f" (output over max_output {format_size(self.options.max_output)}: "
                f"{format_size(dropped)} discarded)"
            )
        return self.redact(first)

    def _timed_out(self, proto: _Collector, ran: float, stopped: _Stop) -> Result:
        """``ran``: seconds from the start to the SIGTERM."""
        how = (
            "SIGTERM; it stopped"
            if stopped.how == "SIGTERM"
            else "SIGTERM, then SIGKILL (it did not stop on SIGTERM)"
        )
        return Result.fail(
            Reason.TIMEOUT,
            f"{self.program} was still running after {format_elapsed(ran)} (timeout "
            f"{self.spec.timeout:g}s, the rest kept to stop it): its process group got {how}; "
            f"last output: {self._output_line(proto)}",
        )

    def _verdict(self, code: int, proto: _Collector, elapsed: float) -> Result:
        out = parse_output(proto.text(1))
        perf = parse_perfdata(out.perfdata, max_items=self.options.max_perfdata)
        samples = self._samples(perf.items)
        message = self._output_line(proto)
        values = {"probed_exec_exit_code": float(code)}
        phases = {"exec": elapsed}
        extra: dict[str, Any] = {"values": values, "samples": samples, "phases": phases}
        if code == 0:
            return Result.ok(message, **extra)
        if code in (1, 2, 3):
            return Result(Status(code), PLUGIN, message, **extra)
        if code < 0:
            name = _signal_name(-code)
            return Result.unknown(
                SIGNAL, f"{self.program} was killed by {name} (not by probed): {message}", **extra
            )
        meaning = ""
        if code == 126:
            meaning = " (the shell found the command but could not execute it)"
        elif code == 127:
            meaning = " (the shell did not find the command)"
        elif 128 < code < 128 + 65:
            meaning = (
                f" (128+{code - 128}: killed by {_signal_name(code - 128)}, as a shell or "
                "container reports it; SIGKILL is also what the OOM killer sends)"
            )
        return Result.unknown(
            EXIT_CODE,
            f"{self.program} exited with code {code}, outside the plugin range 0-3{meaning}: "
            f"{message}",
            **extra,
        )

    def _samples(self, items: tuple[PerfData, ...]) -> tuple[Sample, ...]:
        out: list[Sample] = []
        for item in items:
            label = (self.redact(item.label),)
            for suffix, value in (
                ("", item.value),
                ("_warn", item.warn),
                ("_crit", item.crit),
                ("_min", item.min),
                ("_max", item.max),
            ):
                if value is not None:
                    out.append(Sample(f"probed_exec_perfdata{suffix}", value, label))
        return tuple(out)


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``exec`` check type."""
    return [ExecCheck]
