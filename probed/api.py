"""JSON views of check state for ``/api/v1/checks`` (secrets redacted).

The list of every check is rendered by a :class:`CheckList`: each check's JSON is kept until
the check changes, the list is built in slices that yield to the event loop, and concurrent
requests share one build; with 10,000 checks ``/health/live`` keeps answering in
milliseconds while the list is requested.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from probed.check import Result, Status
from probed.common import common_view
from probed.redact import redact_data
from probed.spec import CheckSpec
from probed.state import CheckState, StateStore

__all__ = ["CheckList", "check_view", "result_view"]

LIST_BATCH: Final = 250
"""Checks rendered between two yields to the event loop when building the list."""


def _iso(ts: float) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result_view(result: Result, redact: Callable[[str], str]) -> dict[str, Any]:
    """One result as JSON-able data."""
    view: dict[str, Any] = {
        "status": result.status.label,
        "reason": result.reason,
        "message": redact(result.message),
        "duration_seconds": round(result.duration, 6),
        "time": _iso(result.timestamp),
        "phases": {k: round(v, 6) for k, v in result.phases.items()},
    }
    if result.values:
        view["values"] = dict(result.values)
    if result.samples:
        view["samples"] = [
            {"name": s.name, "labels": list(s.labels), "value": s.value} for s in result.samples
        ]
    return view


def check_view(
    state: CheckState, redact: Callable[[str], str], *, detail: bool = False
) -> dict[str, Any]:
    """One check's state; ``detail`` adds options and history."""
    spec = state.spec
    view: dict[str, Any] = {
        **redact_data(common_view(spec), redact),  # description, labels, target: never a secret
        "status": state.status.label,
        "up": state.up,
        "consecutive_failures": state.fail_streak,
        "consecutive_successes": state.ok_streak,
        "runs": sum(state.runs),
        "skipped_runs": state.skipped_runs,
        "status_since": _iso(state.changed_at),
        "last_result": result_view(state.last, redact) if state.last is not None else None,
        "source": spec.where,
    }
    if detail:
        view["options"] = redact_data(spec.public_options(), redact)
        view["history"] = [
            {
                "status": Status(status).label,
                "reason": reason,
                "message": redact(message),
                "duration_seconds": round(duration, 6),
                "time": _iso(timestamp),
            }
            for status, reason, message, duration, timestamp in reversed(state.history)
        ]
    return view


_Key = tuple[object, int, Callable[[str], str], tuple[str, ...]]
"""What a list body was built from: the set of checks, their total version, the redactor and
the configuration errors."""


def _same(a: _Key, b: _Key) -> bool:
    return a[0] is b[0] and a[1] == b[1] and a[2] is b[2] and a[3] == b[3]


class CheckList:
    """Builds the ``/api/v1/checks`` body; one per application.

    A check's JSON is kept (with the state version, spec and redactor it was made from) and
    re-rendered only when one of them changes; the body itself is reused while no check
    changed. A build yields to the loop every :data:`LIST_BATCH` re-rendered checks, and
    requests arriving while one is in flight await it (single flight).
    """

    __slots__ = ("_body", "_flight", "_kept")

    def __init__(self) -> None:
        self._kept: dict[CheckState, tuple[int, CheckSpec, object, bytes]] = {}
        self._body: tuple[_Key, bytes] | None = None
        self._flight: tuple[_Key, asyncio.Future[bytes]] | None = None

    async def body(
        self, states: StateStore, redact: Callable[[str], str], errors: Sequence[str]
    ) -> bytes:
        """``{"checks": [...], "config_errors": [...]}`` as bytes (errors redacted here)."""
        key = (*states.generation(), redact, tuple(errors))
        if self._body is not None and _same(self._body[0], key):
            return self._body[1]
        flight = self._flight
        if flight is None or not _same(flight[0], key):
            future = asyncio.ensure_future(self._build(key, list(states), redact, errors))
            self._flight = flight = (key, future)
            future.add_done_callback(self._landed)
        return await asyncio.shield(flight[1])

    def _landed(self, future: asyncio.Future[bytes]) -> None:
        if self._flight is not None and self._flight[1] is future:
            self._flight = None
        if not future.cancelled():
            future.exception()  # retrieved: every requester may have gone away meanwhile

    async def _build(
        self,
        key: _Key,
        states: list[CheckState],
        redact: Callable[[str], str],
        errors: Sequence[str],
    ) -> bytes:
        kept = self._kept
        parts: list[bytes] = []
        rendered = 0
        for state in states:
            entry = kept.get(state)
            if (
                entry is None
                or entry[0] != state.version
                or entry[1] is not state.spec
                or entry[2] is not redact
            ):
                # version and spec read before rendering: a change meanwhile re-renders later
                entry = (state.version, state.spec, redact, _dumps(check_view(state, redact)))
                kept[state] = entry
                rendered += 1
                if rendered % LIST_BATCH == 0:
                    await asyncio.sleep(0)
            parts.append(entry[3])
        if len(kept) > len(states):  # checks removed by a reload
            self._kept = {s: kept[s] for s in states if s in kept}
        masked = _dumps([redact(e) for e in errors])
        body = b'{"checks": [' + b", ".join(parts) + b'], "config_errors": ' + masked + b"}"
        self._body = (key, body)
        return body


def _dumps(data: Any) -> bytes:
    return json.dumps(data).encode()
