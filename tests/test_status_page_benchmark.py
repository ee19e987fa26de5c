"""benchmarks/status_page.py still runs end to end and prints every figure line (so it cannot
rot). A tiny run: 300 checks, 20 runs kept each, three repeats; the figures are not asserted
beyond sanity (the real run, 10,000 checks, is by hand: see benchmarks/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MS = r"median [\d.]+ ms, max [\d.]+ ms \(CPU: median [\d.]+ ms, max [\d.]+ ms\)"


def test_status_page_benchmark_prints_every_figure_line_and_passes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "status_page.py"), "--checks", "300",
         "--history", "20", "--repeat", "3"],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for pattern in (
        r"^status page: 300 checks, 20 runs kept each, 50 groups",
        rf"^render cold: {MS}; \d+ KiB of HTML$",
        rf"^render warm: {MS}$",
        rf"^render 10% changed: {MS}$",
        rf"^render filtered \(\?q=team-07&status=fail\): {MS}$",
        rf"^JSON cold: {MS}; \d+ KiB$",
        rf"^JSON warm: {MS}$",
        rf"^JSON 10% changed: {MS}$",
        rf"^check page: {MS}$",
        r"^run history: \d+ bytes per check \([\d.]+ MiB in all\)$",
        r"^GET / over loopback \(10% changed each time\): median [\d.]+ ms, max [\d.]+ ms",
        r"^verdict: PASS: server-side render of the list [\d.]+ ms CPU",
    ):
        assert re.search(pattern, out, re.MULTILINE), f"no line matching {pattern!r} in:\n{out}"
    per_check = int(re.search(r"^run history: (\d+) bytes", out, re.MULTILINE)[1])  # type: ignore[index]
    assert 20 * 9 <= per_check < 20 * 9 + 400  # 9 bytes a run plus the arrays' headers
