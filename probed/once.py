"""``probed once``: run selected checks a single time and report as text, JSON or JUnit XML."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pluggy

from probed._yaml import did_you_mean
from probed.check import Result, Status
from probed.config import load_checks
from probed.plugins import check_types
from probed.redact import Redactor
from probed.runner import execute
from probed.settings import Settings
from probed.spec import CheckSpec

__all__ = ["report", "run_once"]

Outcome = tuple[CheckSpec, Result]

_LIST_NAMES: Final = 10


async def run_once(
    settings: Settings,
    pm: pluggy.PluginManager,
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
    types = check_types(pm)
    loaded = await asyncio.to_thread(load_checks, settings, types, extra_files=list(extra_files))
    redact = Redactor(loaded.secrets)
    messages = [redact(str(e)) for e in loaded.errors]
    worst = Status.OK
    if names:
        missing = [n for n in names if n not in loaded.specs]
        messages += [_unknown_name(n, list(loaded.specs), bool(loaded.errors)) for n in missing]
        specs = [loaded.specs[n] for n in names if n in loaded.specs]
        if readiness_only:
            for spec in specs:
                if not spec.readiness:
                    messages.append(
                        f"check {spec.name!r} is not a readiness check (readiness: false at "
                        f"{spec.where}); drop --readiness-only to run it"
                    )
                    missing.append(spec.name)
            specs = [s for s in specs if s.readiness]
        if missing:
            worst = Status.UNKNOWN
    else:
        specs = list(loaded.specs.values())
        if readiness_only:
            specs = [s for s in specs if s.readiness]
            if not specs:
                messages.append("no check has readiness: true: --readiness-only has nothing to run")
                worst = Status.UNKNOWN
        if loaded.errors:
            worst = Status.UNKNOWN
    semaphore = asyncio.Semaphore(settings.max_concurrency)

    async def one(spec: CheckSpec) -> Outcome:
        check = types[spec.type].cls(spec)
        async with semaphore:
            try:
                result = await execute(check, spec.timeout)
            finally:
                await check.close()
        return spec, Result(
            result.status,
            result.reason,
            redact(result.message),
            result.phases,
            result.values,
            result.samples,
            result.duration,
            result.timestamp,
        )

    outcomes = list(await asyncio.gather(*(one(s) for s in specs)))
    for _spec, result in outcomes:
        worst = max(worst, result.status)
    return int(worst), outcomes, messages


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
