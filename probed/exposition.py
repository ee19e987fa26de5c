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


@dataclass(slots=True)
class _Cache:
    version: int
    spec: CheckSpec
    ident: str
    core: list[str]
    extra: dict[str, str]


def _render(state: CheckState, ident: str, types: TypeMetrics) -> _Cache:
    spec = state.spec
    last = state.last
    core = [""] * _N_CORE
    lb = "{" + ident
    if last is not None:
        core[0] = f"probed_check_success{lb}}} {1 if last.status.passed else 0}\n"
        core[6] = f"probed_check_last_run_timestamp_seconds{lb}}} {format_value(last.timestamp)}\n"
        if last.phases:
            core[7] = "".join(
                f'probed_check_phase_duration_seconds{lb},phase="{escape_label(p)}"}} '
                f"{format_value(v)}\n"
                for p, v in last.phases.items()
            )
    core[1] = f"probed_check_up{lb}}} {1 if state.up else 0}\n"
    current = state.status
    core[2] = "".join(
        f'probed_check_status{lb},status="{s.label}"}} {1 if s is current else 0}\n'
        for s in _STATUSES
    )
    cumulative = 0
    lines = []
    for bound, count in zip(_INF_BUCKETS, state.bucket_counts, strict=True):
        cumulative += count
        lines.append(f'probed_check_duration_seconds_bucket{lb},le="{bound}"}} {cumulative}\n')
    lines.append(f"probed_check_duration_seconds_sum{lb}}} {format_value(state.duration_sum)}\n")
    lines.append(f"probed_check_duration_seconds_count{lb}}} {state.duration_count}\n")
    core[3] = "".join(lines)
    runs = state.runs
    core[4] = "".join(
        f'probed_check_runs_total{lb},result="{s.label}"}} {runs[s]}\n' for s in _STATUSES
    )
    if state.failures:
        core[5] = "".join(
            f'probed_check_failures_total{lb},reason="{escape_label(r)}"}} {n}\n'
            for r, n in state.failures.items()
        )
    core[8] = f"probed_check_state_changes_total{lb}}} {state.state_changes}\n"
    core[9] = f"probed_check_skipped_runs_total{lb}}} {state.skipped_runs}\n"
    core[10] = f"probed_check_interval_seconds{lb}}} {format_value(spec.interval)}\n"
    core[11] = f"probed_check_timeout_seconds{lb}}} {format_value(spec.timeout)}\n"
    core[12] = f"probed_check_readiness{lb}}} {1 if spec.readiness else 0}\n"

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
    return _Cache(state.version, spec, ident, core, extra)


def render_checks(states: Iterable[CheckState], types: TypeMetrics, openmetrics: bool) -> str:
    """Render every check's series, re-rendering only states that changed since last time."""
    caches: list[_Cache] = []
    for state in states:
        cache = state._render_cache
        if (
            not isinstance(cache, _Cache)
            or cache.version != state.version
            or cache.spec is not state.spec
        ):
            ident = (
                cache.ident
                if isinstance(cache, _Cache) and cache.spec is state.spec
                else identity_labels(state.spec)
            )
            cache = _render(state, ident, types)
            state._render_cache = cache
        caches.append(cache)
    out: list[str] = []
    for index, family in enumerate(CORE_FAMILIES):
        out.append(family.header(openmetrics))
        out.extend(c.core[index] for c in caches)
    for name, family in types.families.items():
        chunks = [c.extra[name] for c in caches if name in c.extra]
        if chunks:
            out.append(family.header(openmetrics))
            out.extend(chunks)
    return "".join(out)
