"""A ``probed run`` subprocess with the slow drop-in plugin (``_slow_plugin.py``), for the
lifecycle and log abuse tests: markers to wait on, HTTP helpers, its log lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

from tests.harness import write
from tests.servers._util import free_port, wait_until

ROOT = Path(__file__).parent.parent.parent
PLUGIN = Path(__file__).parent / "_slow_plugin.py"
PROBED_RUN = (sys.executable, "-m", "probed", "run")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def metric(text: str, name: str) -> float | None:
    """The value of the first sample of ``name`` (a metric name, or the start of a sample
    line such as ``name{label="x"``); ``None`` if absent."""
    for line in text.splitlines():
        rest = line[len(name) :] if line.startswith(name) else "#"
        if rest[:1] in (" ", "{", ","):
            return float(line.rsplit(" ", 1)[1])
    return None


class Probed:
    """``probed run`` with the slow plugin; ``slow`` names the steps that wait for :meth:`go`."""

    def __init__(
        self,
        root: Path,
        *,
        slow: str = "",
        spam: int = 0,
        settings: str = "",
        interval: str = "1s",
        log: BinaryIO | int | None = None,
    ) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        plugins = root / "plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        shutil.copy(PLUGIN, plugins / "slow.py")
        write(
            root / "checks.d" / "tick.yaml",
            f"checks:\n  - {{name: tick, type: tick, interval: {interval}, timeout: 50ms}}\n",
        )
        config = write(
            root / "probed.yaml",
            f"checks_dirs: [checks.d]\nplugins_dirs: [plugins]\nwatch: false\n"
            f"hook_timeout: 60s\nstartup_spread: 0\n{settings}",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.update(H8D_DIR=str(root), H8D_SLOW=slow, H8D_SPAM=str(spam))
        self.log_path = root / "probed.log"
        out: Any = log if log is not None else self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*PROBED_RUN, "--config", str(config), "--listen", f"127.0.0.1:{self.port}"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=out,
        )
        if log is None:
            out.close()

    def began(self, step: str) -> bool:
        return (self.root / f"{step}-began").exists()

    def wait_began(self, step: str) -> None:
        wait_until(lambda: self.began(step) or self.proc.poll() is not None, 30, f"{step} to begin")
        assert self.proc.poll() is None, self.text()

    def go(self) -> None:
        (self.root / "go").write_text("")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        return http_get(self.url + path, timeout)

    def wait_live(self) -> None:
        wait_until(
            lambda: self.proc.poll() is not None or self.get("/health/live")[0] == 200,
            30,
            "/health/live",
        )
        assert self.proc.poll() is None, self.text()

    def wait_exit(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == event]

    def kill(self) -> None:
        """Kill the process if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
