"""``probed once``: run selected checks a single time and report as text, JSON, JUnit XML or
one Nagios plugin status line (``--format nagios``, so Nagios, Icinga or Zabbix can run probed
as a plugin).

``once`` and ``gate`` go through the same plugin lifecycle as ``probed run`` (see
:func:`checks_session`): ``probed_configure``, ``probed_discover_checks`` while loading,
``probed_startup`` before the first run and ``probed_shutdown`` at the end. There is no HTTP
server, so no routes or collectors, and no per-run notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from probed._yaml import did_you_mean
from probed.check import Result, Status
from probed.checks._nagios import format_perfdata
from probed.config import LoadResult, load_checks
from probed.notify import Notifier
from probed.plugins import CheckTypeInfo, ProbedPluginManager, check_types, discover_checks
from probed.redact import Redactor
from probed.runner import execute
from probed.settings import Settings
from probed.spec import CheckSpec
from probed.state import CheckState, StateStore

__all__ = [
    "Selection",
    "Session",
    "checks_session",
    "nagios_report",
    "report",
    "run_once",
    "select",
]

Outcome = tuple[CheckSpec, Result]

_LIST_NAMES: Final = 10
_NAGIOS_WORDS: Final = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
_NAGIOS_SHOWN: Final = 5  # problem checks named on the status line; then "and N more"
_NAGIOS_MESSAGE: Final = 160  # characters of each problem check's message on the line
_NAGIOS_VALUES: Final = 8  # a check type's own values per check in the perfdata


@dataclass(frozen=True, slots=True)
class Session:
    """A loaded configuration with its plugins configured and started."""

    settings: Settings
    types: dict[str, CheckTypeInfo]
    loaded: LoadResult
    redact: Redactor
    states: StateStore

    async def run(self, specs: Sequence[CheckSpec]) -> list[Outcome]:
        """Run ``specs`` once, concurrently (at most ``max_concurrency`` at a time); results in
        the order of ``specs``, messages redacted."""
        semaphore = asyncio.Semaphore(self.settings.max_concurrency)

        async def one(spec: CheckSpec) -> Outcome:
            check = self.types[spec.type].cls(spec)
            async with semaphore:
                try:
                    result = await execute(check, spec.timeout)
                finally:
                    await check.close()
            result = replace(result, message=self.redact(result.message))
            state = self.states.get(spec.name)
            if state is not None:
                state.record(result)
            return spec, result

        return list(await asyncio.gather(*(one(s) for s in specs)))


@contextlib.asynccontextmanager
async def checks_session(
    settings: Settings, pm: ProbedPluginManager, extra_files: Sequence[Path] = ()
) -> AsyncIterator[Session]:
    """Configure plugins, load the checks (with discovered ones), start plugins; shut them
    down on exit. The configuration is read once, however many runs the session makes."""
    notifier = Notifier(pm, settings.hook_timeout)
    types = check_types(pm)
    await notifier.call("probed_configure", settings=settings, plugin_config=settings.plugins)
    try:

        def load() -> LoadResult:
            found = discover_checks(pm, settings)
            return load_checks(settings, types, discovered=found, extra_files=list(extra_files))

        loaded = await asyncio.to_thread(load)
        states = StateStore({n: CheckState(s, settings.history) for n, s in loaded.specs.items()})
        await notifier.call("probed_startup", settings=settings, states=states)
        yield Session(settings, types, loaded, Redactor(loaded.secrets), states)
    finally:
        await notifier.drain()
        await notifier.call("probed_shutdown", settings=settings)


@dataclass(slots=True)
class Selection:
    """The checks a command line selects, and what it asked for that cannot run."""

    specs: list[CheckSpec]
    messages: list[str] = field(default_factory=list)
    worst: Status = Status.OK  # UNKNOWN when something asked for cannot run


def select(session: Session, names: Sequence[str], *, readiness_only: bool = False) -> Selection:
    """The named checks (all when empty), or only readiness checks with ``readiness_only``.

    Configuration errors are part of the messages; with no names they make the worst status
    ``unknown`` (a check with an error does not run), as does a name that is not configured
    or not a readiness check when ``readiness_only`` asks for those.
    """
    loaded = session.loaded
    out = Selection([], [session.redact(str(e)) for e in loaded.errors])
    if names:
        missing = [n for n in names if n not in loaded.specs]
        out.messages += [_unknown_name(n, list(loaded.specs), bool(loaded.errors)) for n in missing]
        out.specs = [loaded.specs[n] for n in names if n in loaded.specs]
        if readiness_only:
            for spec in out.specs:
                if not spec.readiness:
                    out.messages.append(
                        f"check {spec.name!r} is not a readiness check (readiness: false at "
                        f"{spec.where}); drop --readiness-only to run it"
                    )
                    missing.append(spec.name)
            out.specs = [s for s in out.specs if s.readiness]
        if missing:
            out.worst = Status.UNKNOWN
    else:
        out.specs = list(loaded.specs.values())
        if readiness_only:
            out.specs = [s for s in out.specs if s.readiness]
            if not out.specs:
                out.messages.append(
                    "no check has readiness: true: --readiness-only has nothing to run"
                )
                out.worst = Status.UNKNOWN
        if loaded.errors:
            out.worst = Status.UNKNOWN
    return out


async def run_once(
    settings: Settings,
    pm: ProbedPluginManager,
    names: Sequence[str],
    extra_files: Sequence[Path] = (),
    *,
    readiness_only: bool = False,
) -> tuple[int, list[Outcome], list[str]]:
    """Run the named checks (all when empty) once, concurrently.

    :param readiness_only: run only checks with ``readiness: true`` (those that decide
        ``/health/ready``); a named check that is not one is an error.
    :return: Nagios exit code (worst status; 3 for unknown names, invalid selected checks or
        nothing to run), the results in configuration order, and messages for standard error.
    """
    async with checks_session(settings, pm, extra_files) as session:
        selection = select(session, names, readiness_only=readiness_only)
        outcomes = await session.run(selection.specs)
    worst = max((r.status for _, r in outcomes), default=Status.OK)
    return int(max(worst, selection.worst)), outcomes, selection.messages


def _unknown_name(name: str, configured: Sequence[str], has_errors: bool) -> str:
    """``no check named 'x' (did you mean 'y'?); configured checks: ...``."""
    shown = ", ".join(configured[:_LIST_NAMES]) or "none"
    if len(configured) > _LIST_NAMES:
        shown += f" and {len(configured) - _LIST_NAMES} more"
    text = f"no {'valid ' if has_errors else ''}check named {name!r}"
    text += f"{did_you_mean(name, configured)}; configured checks: {shown}"
    if has_errors:
        text += " (checks with the errors above do not run)"
    return text


def report(outcomes: Sequence[Outcome], fmt: str) -> str:
    """Format outcomes as ``text``, ``json`` or ``junit``."""
    if fmt == "json":
        return (
            json.dumps(
                [
                    {
                        "name": spec.name,
                        "type": spec.type,
                        "status": r.status.label,
                        "reason": r.reason,
                        "message": r.message,
                        "duration_seconds": round(r.duration, 6),
                        "phases": dict(r.phases),
                        "values": dict(r.values),
                    }
                    for spec, r in outcomes
                ],
                indent=2,
            )
            + "\n"
        )
    if fmt == "junit":
        return _junit(outcomes)
    lines = []
    for spec, r in outcomes:
        detail = f" [{r.reason}]" if r.reason else ""
        msg = f": {r.message}" if r.message else ""
        lines.append(
            f"{r.status.label.upper():<7} {spec.name} ({spec.type}, "
            f"{r.duration * 1000:.1f}ms){detail}{msg}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _junit(outcomes: Sequence[Outcome]) -> str:
    failures = sum(1 for _, r in outcomes if r.status is Status.FAIL)
    errors = sum(1 for _, r in outcomes if r.status is Status.UNKNOWN)
    total = sum(r.duration for _, r in outcomes)
    suites = ET.Element(
        "testsuites",
        name="probed",
        tests=str(len(outcomes)),
        failures=str(failures),
        errors=str(errors),
        time=f"{total:.6f}",
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="probed",
        tests=str(len(outcomes)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{total:.6f}",
    )
    for spec, r in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"probed.{spec.type}",
            name=spec.name,
            time=f"{r.duration:.6f}",
        )
        if r.status is Status.FAIL:
            node = ET.SubElement(case, "failure", type=r.reason or "fail", message=r.message)
            node.text = r.message
        elif r.status is Status.UNKNOWN:
            node = ET.SubElement(case, "error", type=r.reason or "unknown", message=r.message)
            node.text = r.message
        elif r.status is Status.WARN:
            ET.SubElement(case, "system-out").text = f"WARN [{r.reason}]: {r.message}"
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _plugin_text(text: str, limit: int) -> str:
    """``text`` fit for a plugin's status line: one line, no ``|`` (it starts perfdata)."""
    flat = " ".join(text.replace("|", "/").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _unit(metric: str) -> str:
    """The perfdata unit of a metric's value: ``s`` for durations, ``B`` for sizes."""
    if metric.endswith("_seconds") and not metric.endswith("_timestamp_seconds"):
        return "s"
    return "B" if metric.endswith("_bytes") else ""


def nagios_report(code: int, outcomes: Sequence[Outcome], errors: Sequence[str] = ()) -> str:
    """One Nagios plugin status line: ``PROBED <STATE> - <summary> | <perfdata>``.

    ``STATE`` is the word of ``code`` (the exit code: OK, WARNING, CRITICAL, UNKNOWN); the
    summary counts the checks per status, then names the worst checks with their messages
    (at most five), then the first of ``errors`` (configuration errors and unknown names,
    all printed on standard error). Perfdata per check: ``<name>_duration`` in seconds (with the
    check's timeout as the maximum) and ``<name>_status`` (0 ok, 1 warn, 2 fail, 3 unknown;
    warning 1, critical 2), then up to eight of the check type's own values
    (``<name>_http_status_code``, ``<name>_tls_cert_expiry_timestamp_seconds``...); labels are
    quoted when they need it.
    """
    state = _NAGIOS_WORDS[min(max(code, 0), 3)]
    counts = {s: sum(1 for _, r in outcomes if r.status is s) for s in reversed(Status)}
    words = {Status.OK: "ok", Status.WARN: "warning", Status.FAIL: "critical"}
    summary = ", ".join(f"{n} {words.get(status, 'unknown')}" for status, n in counts.items() if n)
    noun = "check" if len(outcomes) == 1 else "checks"
    text = f"{len(outcomes)} {noun}" + (f": {summary}" if summary else "")
    problems = sorted(
        ((spec, r) for spec, r in outcomes if r.status is not Status.OK),
        key=lambda o: -o[1].status,
    )
    shown = [
        f"{spec.name} {_NAGIOS_WORDS[r.status]}: {_plugin_text(r.message, _NAGIOS_MESSAGE)}"
        for spec, r in problems[:_NAGIOS_SHOWN]
    ]
    if len(problems) > _NAGIOS_SHOWN:
        shown.append(f"and {len(problems) - _NAGIOS_SHOWN} more")
    if shown:
        text += "; " + "; ".join(shown)
    if errors:
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        text += f"; error: {_plugin_text(errors[0], _NAGIOS_MESSAGE)}{more} (see standard error)"
    perf = []
    for spec, r in outcomes:
        perf.append(
            format_perfdata(
                f"{spec.name}_duration", round(r.duration, 6), "s", min=0, max=spec.timeout
            )
        )
        perf.append(
            format_perfdata(f"{spec.name}_status", int(r.status), warn=1, crit=2, min=0, max=3)
        )
        perf += [
            format_perfdata(f"{spec.name}_{name.removeprefix('probed_')}", value, _unit(name))
            for name, value in sorted(r.values.items())[:_NAGIOS_VALUES]
            if math.isfinite(value)
        ]
    line = f"PROBED {state} - {text}"
    return (line + (" | " + " ".join(perf) if perf else "")) + "\n"
