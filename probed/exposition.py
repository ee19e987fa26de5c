"""Rendering check state as Prometheus text (0.0.4) and OpenMetrics, fast.

prometheus_client's generic ``Collector`` path builds a ``Metric`` object per family and
formats every sample on every scrape: with 10,000 checks and ~35 series each that is ~350,000
samples formatted per scrape. Here each check's sample lines are rendered once per *change*
of its state (a run, a skip) into one string per metric family and cached on the state; a
scrape then only joins cached strings family by family. Identity label strings are built once
per check spec.

Families are the same in both formats; only the ``# TYPE`` line of counters differs (OpenMetrics
names the family without ``_total``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter
from typing import Final, Literal

from probed.check import MetricDef, Status
from probed.spec import CheckSpec
from probed.state import DURATION_BUCKETS, CheckState

__all__ = [
    "CORE_FAMILIES",
    "Family",
    "TypeMetrics",
    "escape_label",
    "format_value",
    "render_checks",
]

Kind = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True, slots=True)
class Family:
    """Name, help and kind of one metric family."""

    name: str
    help: str
    kind: Kind

    def header(self, openmetrics: bool) -> str:
        """``# HELP`` and ``# TYPE`` lines for this family."""
        name = self.name
        if openmetrics and self.kind == "counter" and name.endswith("_total"):
            name = name[: -len("_total")]
        help_text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return f"# HELP {name} {help_text}\n# TYPE {name} {self.kind}\n"


CORE_FAMILIES: Final[tuple[Family, ...]] = (
    Family("probed_check_success", "1 if the last run passed (ok or warn), else 0.", "gauge"),
    Family("probed_check_up", "1 while the check is up after thresholds, else 0.", "gauge"),
    Family(
        "probed_check_status",
        "Thresholded status as a state set: 1 for the current status label, 0 for the others.",
        "gauge",
    ),
    Family("probed_check_duration_seconds", "Duration of check runs.", "histogram"),
    Family("probed_check_runs_total", "Check runs by result.", "counter"),
    Family("probed_check_failures_total", "Failed runs by bounded reason.", "counter"),
    Family(
        "probed_check_last_run_timestamp_seconds",
        "Unix time at which the last run finished.",
        "gauge",
    ),
    Family(
        "probed_check_phase_duration_seconds",
        "Duration of each phase of the last run (resolve, connect, tls, processing, ...).",
        "gauge",
    ),
    Family("probed_check_state_changes_total", "Changes of the thresholded status.", "counter"),
    Family(
        "probed_check_skipped_runs_total",
        "Runs skipped because the previous run was still in progress.",
        "counter",
    ),
    Family("probed_check_interval_seconds", "Configured interval between runs.", "gauge"),
    Family("probed_check_timeout_seconds", "Configured timeout of one run.", "gauge"),
    Family("probed_check_readiness", "1 if the check counts toward /health/ready.", "gauge"),
)
"""Families every check exports, in output order."""

_N_CORE: Final = len(CORE_FAMILIES)
_STATUSES: Final = tuple(Status)
_INF_BUCKETS: Final = (*(format(b, "g") for b in DURATION_BUCKETS), "+Inf")


def escape_label(value: str) -> str:
    """Escape a label value for both exposition formats."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def format_value(value: float) -> str:
    """Format a sample value the way Prometheus parses it."""
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if value != value:
        return "NaN"
    if isinstance(value, int) or value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(float(value))
    return repr(value)


def identity_labels(spec: CheckSpec) -> str:
    """``check="..",type="..",<own labels>`` for a check, built once per spec."""
    parts = [f'check="{escape_label(spec.name)}"', f'type="{escape_label(spec.type)}"']
    parts.extend(f'{k}="{escape_label(v)}"' for k, v in spec.labels)
    return ",".join(parts)


class TypeMetrics:
    """The type-specific families declared by check types, merged by metric name."""

    def __init__(self, declared: Iterable[tuple[str, Sequence[MetricDef]]]) -> None:
        self.families: dict[str, Family] = {}
        self.labels: dict[str, tuple[str, ...]] = {}
        for _type_name, metrics in declared:
            for metric in metrics:
                if metric.name not in self.families:
                    self.families[metric.name] = Family(metric.name, metric.help, metric.kind)
                    self.labels[metric.name] = metric.labels


class _Prefixes:
    """Everything about a check's lines that only changes with its spec, built once.

    Rendering a changed state then only appends numbers to these prefixes.
    """

    __slots__ = (
        "buckets",
        "failures",
        "ident",
        "last_run",
        "lb",
        "phases",
        "runs",
        "skipped",
        "spec",
        "state_changes",
        "static",
        "status",
        "success",
        "up",
    )

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.ident = identity_labels(spec)
        lb = self.lb = "{" + self.ident
        # %-templates: one C-level format call per block instead of a dozen concatenations.
        esc = lb.replace("%", "%%")
        self.success = (f"probed_check_success{lb}}} 0\n", f"probed_check_success{lb}}} 1\n")
        self.up = (f"probed_check_up{lb}}} 0\n", f"probed_check_up{lb}}} 1\n")
        self.status = "".join(
            f'probed_check_status{esc},status="{s.label}"}} %s\n' for s in _STATUSES
        )
        self.phases: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        self.buckets = (
            "".join(
                f'probed_check_duration_seconds_bucket{esc},le="{b}"}} %d\n' for b in _INF_BUCKETS
            )
            + f"probed_check_duration_seconds_sum{esc}}} %s\n"
            + f"probed_check_duration_seconds_count{esc}}} %d\n"
        )
        self.runs = "".join(
            f'probed_check_runs_total{esc},result="{s.label}"}} %d\n' for s in _STATUSES
        )
        self.last_run = f"probed_check_last_run_timestamp_seconds{lb}}} "
        self.state_changes = f"probed_check_state_changes_total{lb}}} "
        self.skipped = f"probed_check_skipped_runs_total{lb}}} "
        self.static = (
            f"probed_check_interval_seconds{lb}}} {format_value(spec.interval)}\n",
            f"probed_check_timeout_seconds{lb}}} {format_value(spec.timeout)}\n",
            f"probed_check_readiness{lb}}} {1 if spec.readiness else 0}\n",
        )


_STATUS_FLAGS: Final = {s: tuple("1" if t is s else "0" for t in _STATUSES) for s in _STATUSES}


@dataclass(slots=True)
class _Cache:
    version: int
    prefixes: _Prefixes
    core: list[str]
    extra: dict[str, str]


def _render(state: CheckState, px: _Prefixes, types: TypeMetrics) -> _Cache:
    last = state.last
    lb = px.lb
    core = ["", "", "", "", "", "", "", "", "", "", *px.static]
    if last is not None:
        core[0] = px.success[last.status.passed]
        core[6] = f"{px.last_run}{last.timestamp!r}\n"
        if last.phases:
            phase_px = px.phases
            parts = []
            for phase, seconds in last.phases.items():
                prefix = phase_px.get(phase)
                if prefix is None:
                    prefix = phase_px[phase] = (
                        f'probed_check_phase_duration_seconds{lb},phase="{escape_label(phase)}"}} '
                    )
                parts.append(f"{prefix}{format_value(seconds)}\n")
            core[7] = "".join(parts)
    core[1] = px.up[state.up]
    core[2] = px.status % _STATUS_FLAGS[state.status]
    core[3] = px.buckets % (
        *accumulate(state.bucket_counts),
        format_value(state.duration_sum),
        state.duration_count,
    )
    core[4] = px.runs % tuple(state.runs)
    if state.failures:
        fail_px = px.failures
        parts = []
        for reason, count in state.failures.items():
            prefix = fail_px.get(reason)
            if prefix is None:
                prefix = fail_px[reason] = (
                    f'probed_check_failures_total{lb},reason="{escape_label(reason)}"}} '
                )
            parts.append(f"{prefix}{count}\n")
        core[5] = "".join(parts)
    core[8] = f"{px.state_changes}{state.state_changes}\n"
    core[9] = f"{px.skipped}{state.skipped_runs}\n"

    extra: dict[str, str] = {}
    if last is not None:
        families = types.families
        for name, value in last.values.items():
            if name in families:
                extra[name] = extra.get(name, "") + f"{name}{lb}}} {format_value(value)}\n"
        for sample in last.samples:
            label_names = types.labels.get(sample.name)
            if label_names is None or len(label_names) != len(sample.labels):
                continue
            pairs = "".join(
                f',{k}="{escape_label(v)}"' for k, v in zip(label_names, sample.labels, strict=True)
            )
            extra[sample.name] = (
                extra.get(sample.name, "")
                + f"{sample.name}{lb}{pairs}}} {format_value(sample.value)}\n"
            )
    return _Cache(state.version, px, core, extra)


def refresh(states: Iterable[CheckState], types: TypeMetrics) -> list[_Cache]:
    """Re-render the states that changed since their last render; return every state's cache."""
    caches: list[_Cache] = []
    append = caches.append
    for state in states:
        cache = state._render_cache
        if not isinstance(cache, _Cache) or cache.version != state.version:
            px = cache.prefixes if isinstance(cache, _Cache) else _Prefixes(state.spec)
            cache = _render(state, px, types)
            state._render_cache = cache
        append(cache)
    return caches


def assemble(
    caches: Sequence[_Cache], types: TypeMetrics, openmetrics: bool, tail: str = ""
) -> str:
    """Join rendered caches family by family into one exposition text, then ``tail``."""
    out: list[str] = []
    cores = [c.core for c in caches]
    for index, family in enumerate(CORE_FAMILIES):
        out.append(family.header(openmetrics))
        out.extend(map(itemgetter(index), cores))
    # One pass over the checks' type-specific chunks, grouped by family (not family x check).
    grouped: dict[str, list[str]] = {}
    for cache in caches:
        for name, chunk in cache.extra.items():
            bucket = grouped.get(name)
            if bucket is None:
                grouped[name] = [chunk]
            else:
                bucket.append(chunk)
    for name, family in types.families.items():
        chunks = grouped.get(name)
        if chunks:
            out.append(family.header(openmetrics))
            out.extend(chunks)
    out.append(tail)
    return "".join(out)


def release(states: Iterable[CheckState], max_interval: float) -> int:
    """Drop the rendered lines of checks that run at least once per ``max_interval`` seconds.

    Such checks change between two scrapes anyway, so keeping their lines would only hold
    memory (about 3 KiB a check); their label prefixes stay cached. Returns how many were
    released.
    """
    released = 0
    for state in states:
        cache = state._render_cache
        if isinstance(cache, _Cache) and cache.core and state.spec.interval <= max_interval:
            cache.version = -1
            cache.core = []
            cache.extra = {}
            released += 1
    return released


def render_checks(states: Iterable[CheckState], types: TypeMetrics, openmetrics: bool) -> str:
    """Render every check's series, re-rendering only states that changed since last time."""
    return assemble(refresh(states, types), types, openmetrics)
