"""HTML pieces of the status page: what one check shows (:class:`Shown`), a row of the list, the
page around it and the parts of a check's own page. Pure functions of their arguments; every
text reaching HTML is escaped here, and every message is cut to its first line first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from html import escape
from typing import Final, NamedTuple
from urllib.parse import quote

from probed.check import Status
from probed.common import NAME_RE
from probed.phase import format_elapsed
from probed.state import CheckState

__all__ = [
    "STATUSES",
    "Shown",
    "ago",
    "badge",
    "duration_text",
    "iso",
    "page",
    "row",
    "uptime_text",
]

STATUSES: Final = ("ok", "warn", "fail", "unknown", "pending")
"""What the page tells, in this order in its filter; ``pending``: no verdict yet."""

_ICONS: Final = {"ok": "✓", "warn": "!", "fail": "✗", "unknown": "?", "pending": "…"}
MESSAGE_CHARS: Final = 300
"""A message on the list is cut to this many characters (the check page shows more)."""
DETAIL_CHARS: Final = 2000
_TRACE_MARKS: Final = ("Traceback (most recent call last)", '  File "')


def one_line(message: str, limit: int = MESSAGE_CHARS) -> str:
    """The first line of ``message``, never a traceback, at most ``limit`` characters."""
    for mark in _TRACE_MARKS:
        cut = message.find(mark)
        if cut >= 0:
            message = message[:cut]
    line = message.strip().split("\n", 1)[0].strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def label_of(state: CheckState) -> str:
    """The status shown: ``pending`` until the check's first verdict (thresholds included)."""
    if (
        state.status is Status.UNKNOWN
        and state.state_changes == 0
        and state.fail_streak < state.spec.failure_threshold  # not down with unknown
    ):
        return "pending"
    return state.status.label


def iso(ts: float) -> str:
    """``ts`` as an ISO 8601 UTC time (seconds)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(ts: float, now: float) -> str:
    """How long before ``now`` ``ts`` was, shortly (``42s``, ``5m``, ``3h``, ``2d``)."""
    if not ts:
        return "never"
    s = max(0, int(now - ts))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def duration_text(seconds: float | None) -> str:
    """A run's duration as messages write it (:func:`probed.phase.format_elapsed`: ``12.3 ms``,
    ``4.95s``, ``2m5s``; status.js writes the same), or ``-`` before the first run."""
    return "-" if seconds is None else format_elapsed(seconds)


def uptime_text(uptime: float | None) -> str:
    """``99.5%`` (never ``100.0%`` unless every run passed), or ``-`` before any run."""
    if uptime is None:
        return "-"
    if uptime < 1 and uptime >= 0.9995:
        return "99.9%"
    return f"{uptime * 100:.1f}%" if uptime < 1 else "100%"


def badge(label: str) -> str:
    """A status as an icon and a word (never colour alone)."""
    return f'<span class="badge s-{label}">{_ICONS[label]} {label}</span>'


class Shown(NamedTuple):
    """What the page shows of one check (already redacted and cut)."""

    name: str
    status: str
    message: str
    duration: float | None
    since: float
    uptime: float | None
    group: str


_BADGES: Final = {label: badge(label) for label in STATUSES}


def row(
    state: CheckState, redact: Callable[[str], str], group_by: str
) -> tuple[Shown, str, str, str]:
    """One check as the page shows it: what it shows, the (escaped, lower-case) text the
    filter searches, and its list row split around the "since" cell's text (which changes
    with the clock, not with the check). The hot path of a cold page: kept lean."""
    spec = state.spec
    last = state.last
    name = spec.name
    group = ""
    for label, value in spec.labels:
        if label == group_by:
            group = value
            break
    message = one_line(redact(last.message)) if last is not None and last.message else ""
    runlog = state.runlog
    s = Shown(
        name,
        label_of(state),
        message,
        last.duration if last is not None else None,
        state.changed_at,
        runlog.uptime() if runlog is not None else None,
        group,
    )
    safe = NAME_RE.fullmatch(name) is not None  # always, for names probed loaded itself
    shown_name = name if safe else escape(name)
    html_message = escape(message)
    text = f"{shown_name} {escape(group)} {html_message}".lower()
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.since)) if s.since else ""
    head = (
        f'<tr data-check="{shown_name}" data-status="{s.status}" data-text="{text}">'
        f'<th scope="row"><a href="checks/{name if safe else quote(name, safe="")}">'
        f'{shown_name}</a></th><td class="st">{_BADGES[s.status]}</td>'
        f'<td class="msg">{html_message}</td><td class="dur">{duration_text(s.duration)}</td>'
        f'<td class="since"><time datetime="{since}">'
    )
    tail = f'</time></td><td class="up">{uptime_text(s.uptime)}</td></tr>'
    return s, text, head, tail


TABLE_HEAD: Final = (
    '<table><thead><tr><th scope="col">Check</th><th scope="col">Status</th>'
    '<th scope="col">Last message</th><th scope="col">Duration</th>'
    '<th scope="col">Since</th><th scope="col">Uptime</th></tr></thead><tbody>'
)


def page(
    title: str, body: Iterable[str], *, root: str = "", refresh: float = 0, poll: str = "json"
) -> str:
    """A whole HTML document around ``body``; ``root`` leads from its path to the list's
    (``../`` on a check page). With ``refresh``, the script updates it every so many seconds:
    from ``/api/v1/status`` (``poll="json"``, the list) or by fetching the page again and
    swapping its ``<main>`` when its ``data-version`` changed (``poll="page"``)."""
    live = ""
    if refresh and poll == "json":
        live = f' data-refresh="{refresh:g}" data-json="{root}api/v1/status"'
    elif refresh:
        live = f' data-refresh="{refresh:g}" data-poll="page"'
    assets = f"{root}status-assets/"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{escape(title)}</title>"
        f'<link rel="icon" href="{assets}icon.svg" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{assets}status.css">'
        f'<script src="{assets}status.js" defer></script>'
        f'</head><body{live}><a class="skip" href="#main">Skip to the checks</a>'
        + "".join(body)
        + "</body></html>"
    )


def filter_form(query: str, status: str) -> str:
    """The filter: a search box and a status menu (a plain GET form: works without JS)."""
    options = '<option value="">any</option>' + "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>' for s in STATUSES
    )
    return (
        '<form id="filter" class="filter" method="get" action="./" role="search">'
        '<label for="q">Filter checks</label>'
        f'<input id="q" name="q" type="search" value="{escape(query)}" '
        'placeholder="name, group or message" autocomplete="off">'
        '<label for="status">Status</label>'
        f'<select id="status" name="status">{options}</select>'
        '<button type="submit">Apply</button></form>'
    )


def summary(counts: dict[str, int], total: int, now: float) -> str:
    """``12 checks: 10 ok, 2 fail`` and the time of the answer (a live region)."""
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s))
    return (
        '<p id="summary" class="summary">'
        '<span id="counts" role="status" aria-live="polite">'  # announced when counts change
        f"{total} checks{': ' + parts if parts else ''}</span> · "
        f'updated <time id="updated" datetime="{iso(now)}">'
        f"{time.strftime('%H:%M:%S', time.gmtime(now))} UTC</time></p>"
    )
