"""Rendering check state as Prometheus text (0.0.4) and OpenMetrics, fast.

prometheus_client's generic ``Collector`` path builds a ``Metric`` object per family and
formats every sample on every scrape: with 10,000 checks and ~35 series each that is ~350,000
samples formatted per scrape. Here each check's sample lines are rendered once per *change*
of its state (a run, a skip) into one UTF-8 chunk per metric family it has lines for, kept by
a :class:`Renderer` in one flat tuple per check (one per daemon; the states themselves are
only read); a scrape then only joins kept chunks family by family, at C speed.

Families are the same in both formats; only the ``# TYPE`` line of counters differs (OpenMetrics
names the family without ``_total``).

What a check exports can be slimmed for large daemons (:class:`ExpositionOptions`, the
``metrics:`` block of ``probed.yaml``; the ``duration_histogram`` key of a check): per-check
families can be dropped by name, the static facts exported as one ``probed_check_info``
series, and the duration histogram (16 series) replaced by one last-duration gauge. The
defaults render exactly what earlier versions did.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Final, Literal

from probed._assembly import HEAD, Assembly, Entry, Layout
from probed._sample_text import escape_label, format_value, identity_labels, series_labels
from probed.check import MetricDef, Status
from probed.logs import current_redactor
from probed.spec import CheckSpec
from probed.state import DURATION_BUCKETS, CheckState

__all__ = [
    "CORE_FAMILIES",
    "OPTIONAL_FAMILIES",
    "ExpositionOptions",
    "Family",
    "Renderer",
    "TypeMetrics",
    "escape_label",
    "format_value",
    "new_assembly",
    "render_checks",
    "shared_layout",
]

log = logging.getLogger("probed")

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
"""Families every check exports by default, in output order."""

OPTIONAL_FAMILIES: Final[tuple[Family, ...]] = (
    Family(
        "probed_check_info",
        "Static facts of a check as labels (interval and timeout in seconds, readiness); "
        "always 1. Join with: * on (check) group_left (interval) probed_check_info.",
        "gauge",
    ),
    Family(
        "probed_check_last_duration_seconds",
        "Duration of the last run, for checks whose duration histogram is off.",
        "gauge",
    ),
)
"""Families exported only by some settings, after :data:`CORE_FAMILIES` (no header otherwise)."""


@dataclass(frozen=True, slots=True)
class ExpositionOptions:
    """Which per-check series are exported (the ``metrics:`` block of ``probed.yaml``).

    :param drop: per-check families not exported, by name: core ones
        (:data:`CORE_FAMILIES`, :data:`OPTIONAL_FAMILIES`) or type-specific ones.
    :param check_info: export ``probed_check_info{interval,timeout,readiness}`` (value 1).
    :param check_labels: ``"all_series"``: every series of a check carries ``check``,
        ``type`` and the check's own labels; ``"info"``: only ``probed_check_info`` does (and
        is exported whatever ``check_info`` says), every other series carries ``check`` only
        (join with ``* on (check) group_left (type, team) probed_check_info``) and the own
        labels named in ``series_labels``.
    :param series_labels: own labels kept on every series with ``check_labels="info"``:
        ``replica`` by default (:mod:`probed.replicas`: without it the R copies of a check
        would be one series); ``team`` to route alerts without a join, say.
    :param zero_counters: export per-check counter series that are still 0 (the
        ``probed_check_runs_total`` results that never happened, no state changes, no skipped
        runs); ``False`` leaves them out until they first count.
    """

    drop: frozenset[str] = frozenset()
    check_info: bool = False
    check_labels: Literal["all_series", "info"] = "all_series"
    series_labels: frozenset[str] = frozenset({"replica"})
    zero_counters: bool = True


_ALL_FAMILIES: Final = CORE_FAMILIES + OPTIONAL_FAMILIES
_HISTOGRAM: Final = 3
_INFO_LABELS: Final = frozenset({"interval", "timeout", "readiness"})

_N_CORE: Final = len(CORE_FAMILIES) + len(OPTIONAL_FAMILIES)
_STATUSES: Final = tuple(Status)
_INF_BUCKETS: Final = (*(format(b, "g") for b in DURATION_BUCKETS), "+Inf")


class TypeMetrics:
    """The type-specific families declared by check types, merged by metric name.

    Several types may share a family (``probed_http_status_code`` style); the first
    declaration is used, and a later one that differs in help, kind or labels is logged as a
    warning naming both types (only one ``# HELP`` can be exposed).
    """

    def __init__(self, declared: Iterable[tuple[str, Sequence[MetricDef]]]) -> None:
        self.families: dict[str, Family] = {}
        self.labels: dict[str, tuple[str, ...]] = {}
        first: dict[str, str] = {}
        for type_name, metrics in declared:
            for metric in metrics:
                family = Family(metric.name, metric.help, metric.kind)
                kept = self.families.get(metric.name)
                if kept is None:
                    self.families[metric.name] = family
                    self.labels[metric.name] = metric.labels
                    first[metric.name] = type_name
                elif kept != family or self.labels[metric.name] != metric.labels:
                    log.warning(
                        "metric %s is declared differently by check types %s and %s; "
                        "the declaration of %s is used",
                        metric.name,
                        first[metric.name],
                        type_name,
                        first[metric.name],
                        extra={"event": "metric_conflict", "metric": metric.name},
                    )


# Module-wide %-templates, filled with the check's label block (``lb``) and its numbers: one
# C-level format call per block, and no per-check copies of the templates (memory matters
# more than the few per cent of CPU that per-check prefixes would save).
_STATUS_T: Final = "".join(f'probed_check_status%s,status="{s.label}"}} %s\n' for s in _STATUSES)
_BUCKETS_T: Final = (
    "".join(f'probed_check_duration_seconds_bucket%s,le="{b}"}} %d\n' for b in _INF_BUCKETS)
    + "probed_check_duration_seconds_sum%s} %s\n"
    + "probed_check_duration_seconds_count%s} %d\n"
)
_RUNS_T: Final = "".join(f'probed_check_runs_total%s,result="{s.label}"}} %d\n' for s in _STATUSES)
_STATUS_FLAGS: Final = {s: tuple("1" if t is s else "0" for t in _STATUSES) for s in _STATUSES}
_BUCKET_ARGS: Final = 2 * len(_INF_BUCKETS) + 4


_FIRST_STATIC: Final = 10  # interval, timeout, readiness, info: 10 to 13 in _ALL_FAMILIES
_LAYOUTS: dict[Layout, Layout] = {}
"""One tuple per distinct layout (a few per configuration: which families a check has lines
for depends on its type, its settings and whether it failed)."""


def shared_layout(layout: Layout) -> Layout:
    """The one kept tuple equal to ``layout`` (up to 1,000 kept; others are used as given)."""
    return _LAYOUTS.setdefault(layout, layout) if len(_LAYOUTS) < 1000 else layout


def _static_lines(
    spec: CheckSpec, lb: str, options: ExpositionOptions
) -> tuple[str, str, str, str]:
    drop = options.drop
    info = ""
    on_info = options.check_labels == "info"
    if (options.check_info or on_info) and "probed_check_info" not in drop:
        # A check's own label named like an info label stays off this one series only
        # (the names are not reserved: configurations that use them keep working).
        ilb = lb
        if on_info or any(k in _INFO_LABELS for k, _ in spec.labels):
            ilb = "{" + identity_labels(spec, skip=_INFO_LABELS)
        info = (
            f'probed_check_info{ilb},interval="{format_value(spec.interval)}",'
            f'timeout="{format_value(spec.timeout)}",'
            f'readiness="{"true" if spec.readiness else "false"}"}} 1\n'
        )
    return (
        f"probed_check_interval_seconds{lb}}} {format_value(spec.interval)}\n"
        if "probed_check_interval_seconds" not in drop
        else "",
        f"probed_check_timeout_seconds{lb}}} {format_value(spec.timeout)}\n"
        if "probed_check_timeout_seconds" not in drop
        else "",
        f"probed_check_readiness{lb}}} {1 if spec.readiness else 0}\n"
        if "probed_check_readiness" not in drop
        else "",
        info,
    )


def _render(
    state: CheckState,
    types: TypeMetrics,
    keep: tuple[bool, ...],
    options: ExpositionOptions,
    old: Entry | None,
) -> Entry:
    """A check's lines as one :data:`~probed._assembly.Entry`; ``old`` is its previous one.

    The entry keeps the spec and the label prefix; while the spec is the same, the static
    lines (interval, timeout, readiness, info: first in every entry) are taken from ``old``
    as they are, so a run costs only its changing lines.
    """
    spec = state.spec
    if old is not None and old[2] is spec:
        lb = old[3]
        statics: int = old[1][0]  # type: ignore[assignment]
        keys: list[int | str] = list(old[1][: statics + 1])
        chunks: list[bytes] = list(old[HEAD : HEAD + statics])  # type: ignore[arg-type]
    else:
        if options.check_labels == "info":
            lb = "{" + series_labels(spec, options.series_labels)
        else:
            lb = "{" + identity_labels(spec)
        static = [
            (index, line.encode())
            for index, line in enumerate(_static_lines(spec, lb, options), _FIRST_STATIC)
            if line
        ]
        keys = [len(static)]  # the count of static chunks, then their keys
        keys.extend(index for index, _ in static)
        chunks = [chunk for _, chunk in static]
    zeros = options.zero_counters
    last = state.last
    key = keys.append
    add = chunks.append  # lines that are never empty; joins go through put()

    def put(name: int | str, text: str) -> None:
        if text:
            key(name)
            add(text.encode())

    if last is not None:
        if keep[0]:
            key(0)
            add(f"probed_check_success{lb}}} {1 if last.status.passed else 0}\n".encode())
        if keep[6]:
            key(6)
            add(f"probed_check_last_run_timestamp_seconds{lb}}} {last.timestamp!r}\n".encode())
        if last.phases and keep[7]:
            put(
                7,
                "".join(
                    [
                        f'probed_check_phase_duration_seconds{lb},phase="{escape_label(p)}"}} '
                        f"{format_value(v)}\n"
                        for p, v in last.phases.items()
                    ]
                ),
            )
    if keep[1]:
        key(1)
        add(f"probed_check_up{lb}}} {1 if state.up else 0}\n".encode())
    if keep[2]:
        flags = _STATUS_FLAGS[state.status]
        key(2)
        add((_STATUS_T % (lb, flags[0], lb, flags[1], lb, flags[2], lb, flags[3])).encode())
    if spec.duration_histogram:
        if keep[3]:
            args: list[object] = [lb] * _BUCKET_ARGS
            args[1 : 2 * len(_INF_BUCKETS) : 2] = accumulate(state.bucket_counts)
            args[-3] = format_value(state.duration_sum)
            args[-1] = state.duration_count
            key(3)
            add((_BUCKETS_T % tuple(args)).encode())
    elif last is not None and keep[14]:
        key(14)
        add(f"probed_check_last_duration_seconds{lb}}} {format_value(last.duration)}\n".encode())
    if keep[4]:
        runs = state.runs
        if zeros:
            key(4)
            add((_RUNS_T % (lb, runs[0], lb, runs[1], lb, runs[2], lb, runs[3])).encode())
        else:
            put(
                4,
                "".join(
                    [
                        f'probed_check_runs_total{lb},result="{s.label}"}} {n}\n'
                        for s, n in zip(_STATUSES, runs, strict=True)
                        if n
                    ]
                ),
            )
    if state.failures and keep[5]:
        put(
            5,
            "".join(
                [
                    f'probed_check_failures_total{lb},reason="{escape_label(r)}"}} {n}\n'
                    for r, n in state.failures.items()
                ]
            ),
        )
    if keep[8] and (zeros or state.state_changes):
        key(8)
        add(f"probed_check_state_changes_total{lb}}} {state.state_changes}\n".encode())
    if keep[9] and (zeros or state.skipped_runs):
        key(9)
        add(f"probed_check_skipped_runs_total{lb}}} {state.skipped_runs}\n".encode())

    if last is not None and (last.values or last.samples):
        drop = options.drop
        extra: dict[str, str] = {}
        families = types.families
        for name, value in last.values.items():
            if name in families and name not in drop:
                extra[name] = extra.get(name, "") + f"{name}{lb}}} {format_value(value)}\n"
        redact = current_redactor()  # a check's own label values: never a secret either
        for sample in last.samples:
            label_names = types.labels.get(sample.name)
            if label_names is None or len(label_names) != len(sample.labels) or sample.name in drop:
                continue
            pairs = "".join(
                f',{k}="{escape_label(redact(v))}"'
                for k, v in zip(label_names, sample.labels, strict=True)
            )
            extra[sample.name] = (
                extra.get(sample.name, "")
                + f"{sample.name}{lb}{pairs}}} {format_value(sample.value)}\n"
            )
        for name, text in extra.items():
            put(name, text)
    layout = tuple(keys)
    # nearly always the same families as the last run: then no lookup of the shared one
    layout = old[1] if old is not None and layout == old[1] else shared_layout(layout)
    return (state.version, layout, spec, lb, *chunks)


class Renderer:
    """Renders check states, keeping each check's lines until its state changes.

    One per daemon (or per test). The lines are kept here, keyed by the state object, and
    never written into the states: rendering only reads them.
    """

    __slots__ = ("_entries", "_keep", "options", "types")

    def __init__(self, types: TypeMetrics, options: ExpositionOptions | None = None) -> None:
        self.types = types
        self.options = options or ExpositionOptions()
        self._keep = tuple(f.name not in self.options.drop for f in _ALL_FAMILIES)
        self._entries: dict[CheckState, Entry] = {}

    def refresh(self, states: Iterable[CheckState]) -> list[Entry]:
        """Re-render the states that changed since their last render; return each one's lines.

        An entry is never changed once built (a render that collected it may still be
        assembling): a newer render or a release replaces the renderer's entry instead.
        """
        entries: list[Entry] = []
        append = entries.append
        kept = self._entries
        types = self.types
        options = self.options
        keep = self._keep
        for state in states:
            entry = kept.get(state)
            if entry is None or entry[0] != state.version:
                entry = kept[state] = _render(state, types, keep, options, entry)
            append(entry)
        return entries

    def forget_others(self, states: Collection[CheckState]) -> None:
        """Drop the lines of checks not in ``states`` (removed by a reload).

        Call after refreshing all of ``states``: every one of them then has an entry, so more
        entries than states means some belong to checks that are gone.
        """
        if len(self._entries) > len(states):
            kept = self._entries
            self._entries = {s: kept[s] for s in states if s in kept}

    def release(self, states: Iterable[CheckState], max_interval: float) -> int:
        """Drop the rendered lines of checks that run at least once per ``max_interval`` seconds.

        Such checks change between two scrapes anyway, so keeping their lines would only hold
        memory (about 1 KiB a check). Returns how many were released.
        """
        released = 0
        kept = self._entries
        for state in states:
            if state.spec.interval <= max_interval and kept.pop(state, None) is not None:
                released += 1
        return released

    def body(self, states: Collection[CheckState], openmetrics: bool, tail: bytes = b"") -> bytes:
        """Every check's series then ``tail``, as UTF-8, re-rendering only states that changed."""
        assembly = new_assembly(self.types, self.options)
        assembly.add(self.refresh(states))
        self.forget_others(states)
        return assembly.body(openmetrics, tail)

    def render(self, states: Collection[CheckState], openmetrics: bool, tail: str = "") -> str:
        """Like :meth:`body`, as text."""
        return self.body(states, openmetrics, tail.encode()).decode()


def new_assembly(types: TypeMetrics, options: ExpositionOptions | None = None) -> Assembly:
    """An empty :class:`~probed._assembly.Assembly` of these families.

    A family in ``options.drop``, an optional one no check has lines for, and the histogram
    when no check has one have no header (with no checks at all, the core families keep
    theirs, as they always did).
    """
    drop = options.drop if options is not None else frozenset()
    return Assembly(_ALL_FAMILIES, len(CORE_FAMILIES), _HISTOGRAM, types.families, drop)


def render_checks(
    states: Iterable[CheckState],
    types: TypeMetrics,
    openmetrics: bool,
    options: ExpositionOptions | None = None,
) -> str:
    """Render every check's series once (nothing kept: a :class:`Renderer` keeps lines)."""
    return Renderer(types, options).render(list(states), openmetrics)
