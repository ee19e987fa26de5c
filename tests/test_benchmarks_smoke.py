"""The daemon and soak benchmarks still run end to end and print every figure line (so they
cannot rot), and the soak's missed-run arithmetic counts a missing run.

A tiny run: 20 TCP checks at 1 s for a 2 s window against the loopback target the script
starts itself (nginx when installed, else aiohttp). The figures are not asserted beyond sanity;
the real benchmark is run by hand (see benchmarks/README.md).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(script: str, args: list[str], *lines: str, timeout: float = 90) -> str:
    """Run ``benchmarks/<script>`` to completion and return its standard output, which must
    have a line matching each regular expression of ``lines``."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for pattern in lines:
        assert re.search(pattern, out, re.MULTILINE), f"no line matching {pattern!r} in:\n{out}"
    return out


def test_daemon_benchmark_prints_every_figure_line() -> None:
    args = ["--type", "tcp", "--checks", "20", "--interval", "1"]
    args += ["--warmup", "1", "--duration", "2", "--scrapes", "2"]
    out = _run(
        "daemon.py",
        args,
        r"^probed daemon: 20 tcp checks every 1 s against \w+ 127\.0\.0\.1:\d+",
        r"^probes/s: achieved [\d.]+, scheduled 20\.0 ",
        r"^on time: [\d.]+ % of scheduled runs ran; [\d.]+ % of \d+ runs started < 50 ms late",
        r"^lag \(bucket resolution\): p50 (<= )?[\d.]+ ms, p99 (<= )?[\d.]+ ms",
        r"^run duration \(bucket resolution\): p50 (<= )?[\d.]+ ms, p99 (<= )?[\d.]+ ms",
        r"^machine: the daemon waited [\d.]+ s for a CPU",
        r"^results: ok \d+",
        r"^skipped runs: \d+",
        r"^daemon CPU: [\d.]+ s in [\d.]+ s .*ms per probe; \d+ probes per CPU-second",
        r"^RSS: [\d.]+ MB at end of window, [\d.]+ MB max sampled, [\d.]+ MB peak",
        r"^/metrics text: median [\d.]+ ms, max [\d.]+ ms over 2 scrapes",
        r"^/metrics gzip: median [\d.]+ ms, max [\d.]+ ms over 2 scrapes, \d+ KiB \(from",
        r"^/metrics openmetrics: median [\d.]+ ms",
    )
    achieved = float(re.search(r"^probes/s: achieved ([\d.]+)", out, re.MULTILINE)[1])  # type: ignore[index]
    assert achieved > 0, out


def _soak_module() -> ModuleType:
    """benchmarks/soak.py imported as a module; the names it adds to sys.modules are removed."""
    before = set(sys.modules)
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("soak", REPO / "benchmarks" / "soak.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["soak"] = module  # dataclasses look their module up while decorating
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
        for name in set(sys.modules) - before:
            if name in ("soak", "daemon", "_targets"):
                del sys.modules[name]


def _counters(
    soak: ModuleType, at: float, ok: int, fail: int, last: float, wall: float | None = None
) -> Any:
    labels = 'check="pass-tcp-0000",type="tcp"'
    body = "\n".join(
        [
            'probed_check_skipped_runs_total{check="x",type="tcp"} 3',
            f'probed_check_runs_total{{{labels},result="ok"}} {ok}',
            f'probed_check_runs_total{{{labels},result="fail"}} {fail}',
            f"probed_check_last_run_timestamp_seconds{{{labels}}} {last}",
        ]
    )
    return soak.read_counters(body, at=at, cpu=0.0, wall=last + 0.5 if wall is None else wall)


def test_soak_counts_a_run_missing_between_two_scrapes_as_missed() -> None:
    soak = _soak_module()
    plan = soak.plan_checks(50)
    assert sum(plan.counts.values()) == 50 and len(plan.checks) == 49
    one = soak.Plan({"pass-tcp-0000": ("pass-tcp", 2)}, {"pass-tcp": 1}, frozenset())
    first = _counters(soak, 0.0, ok=10, fail=2, last=1000.01)
    assert first.runs["pass-tcp-0000"] == 12 and first.skipped == 3
    # 20 s later on its 2 s grid: 10 runs due; 9 counted, then 10.
    late = _counters(soak, 20.0, ok=18, fail=3, last=1020.03)
    assert soak.missed_runs(one, first, late) == (1, 10, {"pass-tcp": 1})
    on_time = _counters(soak, 20.0, ok=19, fail=3, last=1020.03)
    assert soak.missed_runs(one, first, on_time) == (0, 10, {})
    # A check that stopped running: its last run is 20 s old at window end, 9 runs overdue.
    stopped = _counters(soak, 40.0, ok=19, fail=3, last=1020.03, wall=1040.1)
    assert soak.missed_runs(one, first, stopped) == (9, 19, {"pass-tcp": 9})
    # A check absent from the second scrape missed every run of the window.
    assert soak.missed_runs(plan, first, on_time)[0] > len(plan.checks)


def test_soak_names_the_first_exception_of_a_json_or_text_log() -> None:
    soak = _soak_module()
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nIndexError: list index'
    json_log = "\n".join(
        [
            json.dumps({"level": "info", "msg": "started"}),
            json.dumps({"level": "error", "msg": "boom", "exc_info": trace}),
            json.dumps({"level": "error", "exc_info": trace.replace("IndexError", "KeyError")}),
        ]
    )
    assert soak.first_exception(json_log.encode()) == "IndexError: list index"
    text_log = f"INFO started\nERROR boom\n{trace}\nINFO next line\n"
    assert soak.first_exception(text_log.encode()) == "IndexError: list index"
    assert soak.first_exception(b"INFO all quiet\n") == ""


def test_soak_benchmark_prints_every_figure_line() -> None:
    args = ["--checks", "50", "--duration", "10", "--warmup", "2"]
    args += ["--reload-every", "4", "--sample-every", "2"]
    out = _run(
        "soak.py",
        args,
        r"^soak: 50 checks \(pass-http \d+, .*redis-bulk \d+, .*reload 1\); window [\d.]+ s",
        r"^RSS: start [\d.]+ MB, end [\d.]+ MB, drift [+-][\d.]+ % \(target < 5 %\); highest",
        r"^RSS: .*; medians of the first and last tenth [\d.]+ -> [\d.]+ MB \([+-][\d.]+ %\)$",
        r"^fds: start \d+, end \d+, highest \d+",
        r"^threads: start \d+, end \d+, highest \d+",
        r"^missed runs \(checks no reload touches\): \d+ of \d+ due \(target 0\)",
        r"^scrapes: \d+ answered 200 by 2 parallel scrapers, \d+ errors",
        r"^reloads: [1-9]\d* \(",
        r"^liveness: [1-9]\d* probes of /health/live, \d+ not 200",
        r"^daemon CPU: [\d.]+ s in [\d.]+ s",
        r"^log: \d+ lines \(\d+ a minute\), \d+ KiB, \d+ tracebacks",
        r"^verdict: (PASS|FAIL) ",
    )
    # The per-check counters were parsed: runs were due and scrapes answered.
    due = int(re.search(r" of (\d+) due", out)[1])  # type: ignore[index]
    assert due > 50, out
    answered = int(re.search(r"^scrapes: (\d+) answered", out, re.MULTILINE)[1])  # type: ignore[index]
    assert answered >= 4, out


@pytest.mark.timeout(240)
def test_memory_benchmark_prints_per_check_bytes_history_and_embedded_rss() -> None:
    # one type (the http path is the same code): five daemon starts, the slow part
    args = ["--types", "tcp", "--small", "5", "--large", "25", "--top", "3", "--settle", "0.5"]
    out = _run(
        "memory.py",
        args,
        r"^status_page\.history \(100 runs, default\): 1 run: \d+ B, 10 runs: \d+ B, "
        r"100 runs: \d+ B per check$",
        r"^tcp: per extra check from 5 to 25 checks",
        r"^  RSS: -?\d+ B idle, -?\d+ B after 2 /metrics scrapes",
        r"^  tracemalloc: -?\d+ B idle, -?\d+ B after 2 /metrics scrapes$",
        r"^    +-?\d+ B +[-\d.]+ blocks  \S+:\d+$",
        r"^    +-?\d+ B +[-\d.]+ objects  \S+$",
        r"^embedded: probed run with no checks dir: RSS [\d.]+ MB; optional drivers imported: ",
        timeout=200,
    )
    # the run history grows with the runs and stays within ~9 bytes a run plus its headers
    history = re.search(r"1 run: (\d+) B, 10 runs: (\d+) B, 100 runs: (\d+) B", out)
    assert history is not None
    one, ten, hundred = (int(x) for x in history.groups())
    assert one < ten < hundred <= one + 100 * 9 + 200
    # none of the optional drivers is imported by a daemon that does not use them
    drivers = re.search(r"optional drivers imported: (.*)$", out, re.MULTILINE)
    assert drivers is not None
    assert not {"grpc", "asyncssh", "aiomysql", "apprise", "h2"} & set(drivers[1].split(", "))
