"""A check's own page on the status page (``/checks/NAME``): status, reasons, phase timings,
recent runs, uptime and an inline SVG latency chart drawn from its :class:`RunLog`."""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape
from typing import Final

from probed._status_history import RunLog
from probed._status_render import (
    DETAIL_CHARS,
    ago,
    badge,
    duration_text,
    iso,
    label_of,
    one_line,
    page,
    uptime_text,
)
from probed.check import Status
from probed.common import common_view
from probed.options import format_duration
from probed.redact import redact_data
from probed.state import CheckState

__all__ = ["check_page", "latency_chart"]

_W: Final = 600
_H: Final = 140
_PAD: Final = 4


def latency_chart(runlog: RunLog | None) -> str:
    """An inline SVG of the kept runs' durations (failed runs marked), with a text summary
    for screen readers; a sentence when there is nothing to draw."""
    runs = list(runlog) if runlog is not None else []
    if not runs:
        return '<p class="nochart">No runs kept yet: the latency chart fills as the check runs.</p>'
    durations = sorted(d for _, d, _ in runs)
    top = durations[-1] or 1e-6
    n = len(runs)
    step = (_W - 2 * _PAD) / max(n - 1, 1)

    def xy(i: int, d: float) -> tuple[float, float]:
        return _PAD + i * step, _H - _PAD - (d / top) * (_H - 2 * _PAD)

    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, d) for i, (_, d, _) in enumerate(runs)))
    marks = "".join(
        f'<rect class="bad" x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6">'
        f"<title>{Status(s).label} at {iso(t)}: {duration_text(d)}</title></rect>"
        for i, (s, d, t) in enumerate(runs)
        if s >= Status.FAIL
        for x, y in (xy(i, d),)
    )
    failed = sum(1 for s, _, _ in runs if s >= Status.FAIL)
    label = (
        f"Latency of the last {n} runs: fastest {duration_text(durations[0])}, "
        f"median {duration_text(durations[n // 2])}, slowest {duration_text(top)}; "
        f"{failed} failed"
    )
    return (
        f'<figure class="chart"><svg viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">'
        f'<line class="axis" x1="0" y1="{_H - _PAD}" x2="{_W}" y2="{_H - _PAD}"/>'
        f'<polyline class="lat" points="{points}"/>{marks}</svg>'
        f"<figcaption>{escape(label)}. Top of the chart: {duration_text(top)}; "
        f"oldest run left ({iso(runs[0][2])}), newest right ({iso(runs[-1][2])}).</figcaption>"
        "</figure>"
    )


def _dl(items: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def check_page(
    state: CheckState, redact: Callable[[str], str], title: str, refresh: float = 0
) -> str:
    """The whole HTML page of one check."""
    spec = state.spec
    now = time.time()
    view = redact_data(common_view(spec), redact)  # labels and description, masked
    label = label_of(state)
    runlog = state.runlog
    facts = [
        ("Status", badge(label)),
        ("Type", escape(spec.type)),
        (
            "Since",
            f'<time datetime="{iso(state.changed_at)}">{ago(state.changed_at, now)}</time>'
            if state.changed_at
            else "no change yet",
        ),
        ("Every", format_duration(spec.interval)),
    ]
    if runlog is not None:
        ok, warn, fail, unknown = runlog.counts()
        facts.append(
            (
                "Uptime",
                f"{uptime_text(runlog.uptime())} of the last {len(runlog)} runs "
                f"({ok} ok, {warn} warn, {fail} fail, {unknown} unknown)",
            )
        )
    if view.get("description"):
        facts.append(("Description", escape(str(view["description"]))))
    labels = view.get("labels") or {}
    if labels:
        facts.append(
            ("Labels", ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in labels.items()))
        )
    last = state.last
    if last is None:
        latest = "<p>No run has finished yet.</p>"
    else:
        phases = "".join(
            f'<tr><th scope="row">{escape(k)}</th><td>{duration_text(v)}</td></tr>'
            for k, v in last.phases.items()
        )
        latest = _dl(
            [
                ("Result", badge(last.status.label)),
                ("Reason", escape(last.reason) or "-"),
                ("Message", escape(one_line(redact(last.message), DETAIL_CHARS)) or "-"),
                ("Duration", duration_text(last.duration)),
                ("At", f'<time datetime="{iso(last.timestamp)}">{iso(last.timestamp)}</time>'),
            ]
        )
        if phases:
            latest += (
                '<table class="phases"><caption>Phase timings of the last run</caption>'
                '<thead><tr><th scope="col">Phase</th><th scope="col">Time</th></tr></thead>'
                f"<tbody>{phases}</tbody></table>"
            )
    rows = "".join(
        f'<tr data-status="{Status(s).label}"><td><time datetime="{iso(t)}">{iso(t)}</time></td>'
        f"<td>{badge(Status(s).label)}</td><td>{escape(reason)}</td>"
        f'<td class="msg">{escape(one_line(redact(message)))}</td>'
        f"<td>{duration_text(d)}</td></tr>"
        for s, reason, message, d, t in reversed(state.history)
    )
    recent = (
        '<table class="runs"><caption>Recent runs, newest first</caption><thead><tr>'
        '<th scope="col">Time</th><th scope="col">Status</th><th scope="col">Reason</th>'
        '<th scope="col">Message</th><th scope="col">Duration</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<p>No runs yet.</p>"
    )
    name = escape(spec.name)
    body = (
        f'<header><nav><a href="../">← {escape(title)}</a></nav><h1>{name}</h1></header>',
        f'<main id="main" data-check="{name}" data-status="{label}" '
        f'data-version="{state.version}">',
        f'<section aria-labelledby="h-state"><h2 id="h-state">State</h2>{_dl(facts)}</section>',
        f'<section aria-labelledby="h-last"><h2 id="h-last">Last run</h2>{latest}</section>',
        '<section aria-labelledby="h-lat"><h2 id="h-lat">Latency</h2>',
        latency_chart(runlog),
        "</section>",
        f'<section aria-labelledby="h-runs"><h2 id="h-runs">Recent runs</h2>{recent}</section>',
        "</main>",
    )
    return page(f"{spec.name} · {title}", body, root="../", refresh=refresh, poll="page")
