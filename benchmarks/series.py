"""Series and bytes per check on ``/metrics`` under each exposition setting (deterministic).

Builds N ``http`` checks of each kind in-process (no daemon, no network, fixed results):

- ``passing``: two passing runs (status 200, four phases, four ``probed_http_*`` values);
- ``failing``: a timeout, then two refused connections (two failure reasons, phases of the
  last run only up to ``connect``), down;
- ``labelled``: like ``passing``, with two labels of its own (``team``, ``env``).

Then renders the check series with the daemon's renderer (:mod:`probed.exposition`) under
each setting and prints, per setting, the series per check of each kind and, for an equal mix
of the three kinds, the bytes per check of the text body and of its gzip (level 6, as
``/metrics`` sends it), and the size of a 50,000-check body derived from them. Figures are
exact for these checks (the renderer's own output, counted); only the names and label values
chosen here make the bytes differ from another configuration's.

    python benchmarks/series.py [--checks 1000] [--markdown]
"""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Sequence
from dataclasses import dataclass

from probed.check import Result
from probed.checks.http import HttpCheck
from probed.exposition import ExpositionOptions, TypeMetrics, render_checks
from probed.spec import CheckSpec
from probed.state import CheckState
from probed.testing import make_spec

KINDS = ("passing", "failing", "labelled")
TYPES = TypeMetrics([("http", HttpCheck.metrics)])
T0 = 1_764_547_200.0  # a fixed Unix time: timestamps have the digits real ones have


@dataclass(frozen=True)
class Setting:
    """One way of configuring the exposition: ``probed.yaml`` keys and the check key."""

    name: str
    yaml: str  # what to write in probed.yaml (for the table)
    options: ExpositionOptions
    histogram: bool = True


CONFIG_GAUGES = (
    "probed_check_interval_seconds",
    "probed_check_timeout_seconds",
    "probed_check_readiness",
)
LARGE_SCALE_DROP = (
    "probed_check_success",
    "probed_check_timeout_seconds",
    "probed_check_readiness",
    "probed_check_status",
    "probed_check_phase_duration_seconds",
    "probed_check_state_changes_total",
    "probed_http_status_code",
    "probed_http_content_length_bytes",
    "probed_http_redirects",
    "probed_http_version",
)
"""What the documented large-scale settings drop (docs/metrics.md#large-scale-settings)."""


LARGE_SCALE = "large-scale"


def _drop(names: Sequence[str]) -> str:
    return "[" + ", ".join(names) + "]"


SETTINGS: tuple[Setting, ...] = (
    Setting("default", "(nothing)", ExpositionOptions()),
    Setting(
        "info added",
        "metrics: {check_info: true}",
        ExpositionOptions(check_info=True),
    ),
    Setting(
        "info instead of config gauges",
        f"metrics: {{check_info: true, drop: {_drop(CONFIG_GAUGES)}}}",
        ExpositionOptions(drop=frozenset(CONFIG_GAUGES), check_info=True),
    ),
    Setting(
        "histogram off",
        "defaults: {duration_histogram: false}",
        ExpositionOptions(),
        histogram=False,
    ),
    Setting(
        "labels on info only",
        "metrics: {check_labels: info}",
        ExpositionOptions(check_labels="info"),
    ),
    Setting(
        "zero counters off",
        "metrics: {zero_counters: false}",
        ExpositionOptions(zero_counters=False),
    ),
    Setting(
        LARGE_SCALE,
        f"metrics: {{check_labels: info, zero_counters: false, drop: {_drop(LARGE_SCALE_DROP)}}}; "
        "defaults: {duration_histogram: false}",
        ExpositionOptions(
            drop=frozenset(LARGE_SCALE_DROP), check_labels="info", zero_counters=False
        ),
        histogram=False,
    ),
)


def _spec(kind: str, index: int, histogram: bool) -> CheckSpec:
    labels = {"team": "payments", "env": "production"} if kind == "labelled" else {}
    return make_spec(
        HttpCheck,
        name=f"{kind}-{index:05d}",
        interval=60,
        timeout=10,
        labels=labels,
        duration_histogram=histogram,
        url=f"http://target-{index % 100:02d}.example.internal/health",
    )


def _ok(at: float) -> Result:
    return Result.ok(
        "GET http://target/health: 200 OK",
        duration=0.0123456,
        timestamp=at,
        phases={
            "resolve": 0.000412,
            "connect": 0.001234,
            "processing": 0.009876,
            "transfer": 0.000321,
        },
        values={
            "probed_http_status_code": 200.0,
            "probed_http_content_length_bytes": 615.0,
            "probed_http_redirects": 0.0,
            "probed_http_version": 1.1,
        },
    )


def build(kind: str, count: int, histogram: bool = True) -> list[CheckState]:
    """``count`` checks of one kind, each with the same fixed run history."""
    states = []
    for index in range(count):
        state = CheckState(_spec(kind, index, histogram))
        at = T0 + index % 60 + 0.123456  # a real run ends at some fraction of a second
        if kind == "failing":
            state.record(Result.fail("timeout", "timed out after 10s", duration=10.0, timestamp=at))
            for run in (1, 2):
                state.record(
                    Result.fail(
                        "connection_refused",
                        "connect: connection refused",
                        duration=0.0004,
                        timestamp=at + 60 * run,
                        phases={"resolve": 0.000101, "connect": 0.000298},
                    )
                )
        else:
            state.record(_ok(at))
            state.record(_ok(at + 60))
        states.append(state)
    return states


def _series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


@dataclass(frozen=True)
class Row:
    """What one setting costs per check."""

    setting: Setting
    series: dict[str, int]  # per check, by kind
    text_bytes: float  # per check, equal mix of the kinds
    gzip_bytes: float

    def body_mb(self, checks: int, compressed: bool = False) -> float:
        """Size in MB (10^6 bytes) of the check series of ``checks`` such checks."""
        return (self.gzip_bytes if compressed else self.text_bytes) * checks / 1e6


def measure(setting: Setting, count: int) -> Row:
    """Render ``count`` checks of each kind under ``setting``; count series and bytes."""
    series: dict[str, int] = {}
    mix: list[CheckState] = []
    for kind in KINDS:
        states = build(kind, count, setting.histogram)
        total = _series(render_checks(states, TYPES, False, setting.options))
        assert total % count == 0, (setting.name, kind, total)
        series[kind] = total // count
        mix.extend(states)
    empty = render_checks([], TYPES, False, setting.options).encode()
    text = render_checks(mix, TYPES, False, setting.options).encode()
    packed = gzip.compress(text, 6, mtime=0)
    n = len(mix)
    return Row(setting, series, (len(text) - len(empty)) / n, len(packed) / n)


def table(rows: Sequence[Row], markdown: bool) -> str:
    """The figures as a Markdown table or plain columns."""
    head = (
        "setting",
        *(f"series/{k}" for k in KINDS),
        "bytes/check text",
        "bytes/check gzip",
        "50,000 checks text",
        "gzip",
    )
    lines = []
    for row in rows:
        cells = (
            row.setting.name,
            *(str(row.series[k]) for k in KINDS),
            f"{row.text_bytes:,.0f}",
            f"{row.gzip_bytes:,.0f}",
            f"{row.body_mb(50_000):.1f} MB",
            f"{row.body_mb(50_000, compressed=True):.1f} MB",
        )
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(c) + " |" for c in lines]
        out.append("")
        out += [f"- **{r.setting.name}**: `{r.setting.yaml}`" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r) for r in (head, *lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="checks of each kind [1000]")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    rows = [measure(s, args.checks) for s in SETTINGS]
    print(table(rows, args.markdown))


if __name__ == "__main__":
    main()
