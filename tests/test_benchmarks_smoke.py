"""The daemon benchmark still runs end to end and prints every figure line (so it cannot rot).

A tiny run: 20 TCP checks at 1 s for a 2 s window against the loopback target the script
starts itself (nginx when installed, else aiohttp). The figures are not asserted beyond sanity;
the real benchmark is run by hand (see benchmarks/README.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_daemon_benchmark_prints_every_figure_line() -> None:
    args = ["--type", "tcp", "--checks", "20", "--interval", "1"]
    args += ["--warmup", "1", "--duration", "2", "--scrapes", "2"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "daemon.py"), *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for pattern in (
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
    ):
        assert re.search(pattern, out, re.MULTILINE), f"no line matching {pattern!r} in:\n{out}"
    achieved = float(re.search(r"^probes/s: achieved ([\d.]+)", out, re.MULTILINE)[1])  # type: ignore[index]
    assert achieved > 0, out
