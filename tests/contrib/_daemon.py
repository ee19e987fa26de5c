"""Start a real probed daemon (``python -m probed run``) for the contrib tests.

The contrib files must agree with what probed really writes: metric names on /metrics, field
names in its JSON logs. These tests start the daemon as a subprocess on a loopback port and
read both. A daemon that cannot start (an import error, say) fails the test with its log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers._util import free_port, wait_until


class Daemon:
    """A running probed: its URL and the JSON log lines it has written so far."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def get(self, path: str) -> tuple[int, str]:
        """Status and body of a GET (errors such as 503 included)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()

    def alive(self) -> bool:
        try:
            return self.get("/health/live")[0] == 200
        except OSError:
            return False

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON object probed has logged (non-JSON lines are a test failure)."""
        lines = [line for line in self.log.read_text().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]


@contextmanager
def running_probed(checks_dir: Path, *extra: str) -> Iterator[Daemon]:
    """Run ``python -m probed run --checks-dir DIR --listen 127.0.0.1:PORT`` for the block."""
    port = free_port()
    log = checks_dir.parent / f"probed-{port}.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probed", "run", "--checks-dir", str(checks_dir),
             "--listen", f"127.0.0.1:{port}", "--log-format", "json", *extra],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    daemon = Daemon(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_until(lambda: proc.poll() is not None or daemon.alive(), what="probed /health/live")
        assert proc.poll() is None, f"probed exited: {log.read_text()}"
        yield daemon
    finally:
        proc.terminate()
        proc.wait(timeout=15)
