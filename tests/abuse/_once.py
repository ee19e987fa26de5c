"""``probed once`` in a subprocess that reports its own peak-RSS growth (for the abuse suite).

The child imports probed and the built-in check types first, then takes ``ru_maxrss``, runs
``probed once --format json`` and writes ``RSS_DELTA_KIB n`` to stderr: the growth is the run's,
not the imports'.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OnceRun", "once_measured"]

REPO = Path(__file__).resolve().parents[2]

_DRIVER = """\
import resource, sys
import probed.checks.http, probed.checks.json_api, probed.checks.redis, probed.checks.tcp
from probed.cli import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    sys.argv = ["probed", *sys.argv[1:]]
    main()
except SystemExit:
    pass
finally:
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sys.stderr.write(f"RSS_DELTA_KIB {after - before}\\n")
"""


@dataclass
class OnceRun:
    """What one measured ``probed once`` did: results by check name, seconds, RSS growth."""

    results: dict[str, dict[str, Any]]
    elapsed: float
    rss_delta_kib: int
    stderr: str


async def once_measured(checks: Path, timeout: float = 60) -> OnceRun:
    """Run ``probed once`` on the checks directory ``checks``; fail on a traceback."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DRIVER,
        "once",
        "--checks-dir",
        str(checks),
        "--format",
        "json",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    elapsed = time.perf_counter() - start
    stderr = err.decode()
    assert "Traceback" not in stderr, stderr
    delta = int(stderr.rsplit("RSS_DELTA_KIB ", 1)[1].split()[0])
    return OnceRun({c["name"]: c for c in json.loads(out)}, elapsed, delta, stderr)
