"""JSON views of check state for ``/api/v1/checks`` (secrets redacted)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from probed.check import Result, Status
from probed.common import common_view
from probed.redact import redact_data
from probed.state import CheckState

__all__ = ["check_view", "result_view"]


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
        **common_view(spec),
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
