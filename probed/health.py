"""Liveness, readiness and startup verdicts, rendered as ``application/health+json`` or text.

- live: the event loop answers (it is serving the request) and the scheduler's heartbeat is
  fresh: it is running, its timer is armed, and its earliest due run is less late than
  :func:`stuck_after` allows (three of that check's intervals, at least :data:`STUCK_MIN` and
  at most :data:`STUCK_AFTER` seconds). A loop that is stuck does not answer at all, which
  the probe's own timeout counts as a failure. Never depends on check results: a failing
  database must not restart the pod.
- ready: every readiness check is up (after thresholds).
- startup: every readiness check has finished its first run (latched once true).

The JSON body follows the draft "Health Check Response Format for HTTP APIs"
(``status`` pass/warn/fail, ``checks`` keyed by check name). ``?verbose`` or
``Accept: text/plain`` gives kube-apiserver ``/readyz?verbose`` style lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from probed.check import Status
from probed.state import CheckState, StateStore

__all__ = [
    "HEALTH_JSON",
    "STUCK_AFTER",
    "STUCK_INTERVALS",
    "STUCK_MIN",
    "Heartbeat",
    "StartupLatch",
    "Verdict",
    "liveness_verdict",
    "readiness_verdict",
    "render_json",
    "render_text",
    "startup_verdict",
    "stuck_after",
]

HEALTH_JSON: Final = "application/health+json"
STUCK_AFTER: Final = 60.0
"""Most seconds the scheduler's earliest due run may be late before liveness fails."""
STUCK_MIN: Final = 10.0
"""Seconds a due run may always be late (a long garbage collection, a burst of work)."""
STUCK_INTERVALS: Final = 3
"""Intervals of the earliest due check it may be late, between the two bounds above."""


def stuck_after(interval: float) -> float:
    """Seconds a run of a check with this interval may be late before liveness fails."""
    return min(STUCK_AFTER, max(STUCK_MIN, STUCK_INTERVALS * interval))


class Heartbeat(Protocol):
    """What liveness reads from the scheduler."""

    @property
    def alive(self) -> bool:
        """True while the scheduler is not stopped and its timer is armed."""
        ...

    def overdue(self) -> float:
        """Seconds the earliest due run is late (0 when none is)."""
        ...

    def earliest_interval(self) -> float:
        """Interval of the check whose run is due first (infinite when none is)."""
        ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """One endpoint's answer: overall pass/fail plus per-check lines."""

    name: str
    passed: bool
    warn: bool
    states: tuple[CheckState, ...]
    note: str = ""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def liveness_verdict(heartbeat: Heartbeat) -> Verdict:
    """Live while the scheduler runs with its timer armed and its earliest due run is less
    late than :func:`stuck_after` allows."""
    overdue = heartbeat.overdue()
    if overdue >= stuck_after(heartbeat.earliest_interval()):
        note = f"scheduler stuck: the earliest run is {overdue:.0f}s overdue"
    elif not heartbeat.alive:
        note = "scheduler stuck: stopped, or its timer is not armed"
    else:
        note = ""
    return Verdict("livez", not note, False, (), note)


def readiness_verdict(states: Iterable[CheckState], exclude: Iterable[str] = ()) -> Verdict:
    """Ready while every readiness check (minus ``exclude``) is up."""
    skip = set(exclude)
    chosen = tuple(s for s in states if s.spec.readiness and s.spec.name not in skip)
    passed = all(s.up for s in chosen)
    warn = passed and any(s.status is Status.WARN for s in chosen)
    return Verdict("readyz", passed, warn, chosen)


def startup_verdict(states: Iterable[CheckState], started: bool) -> Verdict:
    """Started once every readiness check finished its first run."""
    chosen = tuple(s for s in states if s.spec.readiness)
    return Verdict("startupz", started, False, chosen)


class StartupLatch:
    """Whether startup has finished: once every readiness check ran, latched for good.

    A reload that adds a check that has not run yet does not close ``/health/startup`` again.
    """

    __slots__ = ("_passed", "_store")

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._passed = False

    def passed(self) -> bool:
        """True once every readiness check has finished a first run."""
        if not self._passed and self._store.started():
            self._passed = True
        return self._passed


def _check_status(state: CheckState, startup: bool) -> str:
    if startup:
        return "pass" if state.started else "fail"
    if not state.up:
        return "fail"
    return "warn" if state.status is Status.WARN else "pass"


def _output(state: CheckState, startup: bool) -> str:
    last = state.last
    if last is None:
        return "not run yet"
    if startup:
        return "first run finished"
    if not state.up and last.status.passed:
        return f"recovering: {state.ok_streak}/{state.spec.success_threshold} passing runs"
    return last.message or last.status.label


def render_json(verdict: Verdict, startup: bool = False) -> bytes:
    """The ``application/health+json`` body."""
    checks: dict[str, list[dict[str, Any]]] = {}
    for state in verdict.states:
        entry: dict[str, Any] = {
            "componentType": state.spec.type,
            "status": _check_status(state, startup),
            "output": _output(state, startup),
        }
        last = state.last
        if last is not None:
            entry["time"] = _iso(last.timestamp)
            entry["observedValue"] = round(last.duration, 6)
            entry["observedUnit"] = "s"
            if last.reason:
                entry["reason"] = last.reason
        checks[state.spec.name] = [entry]
    status = "fail" if not verdict.passed else ("warn" if verdict.warn else "pass")
    body: dict[str, Any] = {"status": status, "checks": checks}
    if verdict.note:
        body["output"] = verdict.note
    return json.dumps(body).encode()


def render_text(verdict: Verdict, startup: bool = False) -> bytes:
    """kube-apiserver style: ``[+]name ok`` / ``[-]name failed: reason`` then a summary line."""
    lines = []
    for state in verdict.states:
        status = _check_status(state, startup)
        if status == "fail":
            lines.append(f"[-]{state.spec.name} failed: {_output(state, startup)}")
        else:
            lines.append(f"[+]{state.spec.name} ok")
    if verdict.note:
        lines.append(verdict.note)
    lines.append(f"{verdict.name} check {'passed' if verdict.passed else 'failed'}")
    return ("\n".join(lines) + "\n").encode()
