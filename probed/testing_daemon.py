"""A real ``probed run`` in a subprocess on free loopback ports, and a client for it.

::

    from probed.testing import start_daemon

    with start_daemon(checks_dir, plugins_dir=plugins) as daemon:
        daemon.wait_for(lambda: daemon.metric("probed_check_up", check="web") == 1)
        assert daemon.get("/health/ready").status == 200

The ``probed_daemon`` pytest fixture (``probed.testing`` is a pytest plugin) starts one per call
and stops them all after the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PROBED_RUN = (sys.executable, "-m", "probed", "run")

__all__ = ["Answer", "RunningDaemon", "free_port", "metric_value", "start_daemon", "wait_until"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` passes.

    :raises TimeoutError: it never did.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g}s: {what or predicate!r}")
        time.sleep(0.02)


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The value of sample ``name`` whose labels include ``labels`` in a ``/metrics`` text.

    Parsed with prometheus_client's parser; ``name`` is a sample name as exposed
    (``probed_check_up``, ``probed_check_runs_total``, ``..._bucket``).

    :return: the first matching sample's value, or ``None`` when there is none.
    """
    from prometheus_client.parser import text_string_to_metric_families

    wanted = dict(labels or {})
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                return float(sample.value)
    return None


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: ``status`` (0 when nothing answered), ``body``, ``headers``."""

    status: int
    body: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def http_get(url: str, timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> Answer:
    """GET ``url``; an HTTP error status is an :class:`Answer`, no answer is status 0."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return Answer(resp.status, resp.read().decode(), dict(resp.headers))
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.read().decode(), dict(exc.headers))
    except OSError:
        return Answer(0, "", {})


class RunningDaemon:
    """A started ``probed run``: ``url``, ``get()``, ``metrics()``, ``checks()``, ``stop()``."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def get(self, path: str, timeout: float = 5.0, **headers: str) -> Answer:
        """GET ``path`` (``/health/live``, ``/api/v1/checks``...) from the daemon."""
        return http_get(self.url + path, timeout, headers)

    def metrics(self) -> str:
        """The ``/metrics`` text."""
        answer = self.get("/metrics")
        if answer.status != 200:
            raise AssertionError(f"/metrics answered {answer.status}: {answer.body[:200]}")
        return answer.body

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of ``/metrics`` (see :func:`metric_value`)."""
        return metric_value(self.metrics(), name, labels)

    def checks(self) -> dict[str, Any]:
        """``/api/v1/checks`` as ``{name: check}``."""
        body = self.get("/api/v1/checks").json()
        items = body.get("checks", body) if isinstance(body, dict) else body
        if isinstance(items, dict):
            return dict(items)
        return {item["name"]: item for item in items}

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll ``predicate`` until true (see :func:`wait_until`); says so if the daemon died."""
        try:
            return wait_until(predicate, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- probed log ---\n{self.log()}") from None

    def log(self) -> str:
        """What the daemon wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait, return the exit code (killed past ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextmanager
def start_daemon(
    checks_dir: Path | str,
    *,
    plugins_dir: Path | str | None = None,
    config: str = "",
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningDaemon]:
    """Run ``probed run`` over ``checks_dir`` on a free 127.0.0.1 port until the block ends.

    :param plugins_dir: a directory of drop-in plugin files.
    :param config: extra ``probed.yaml`` text (e.g. ``"live_listen: 127.0.0.1:9999\\n"``).
    :param args: extra command-line arguments of ``probed run``.
    :param env: extra environment (``PROBED_*`` variables of the caller are not passed on).
    :raises TimeoutError: ``/health/live`` did not answer within ``startup_timeout``.
    """
    work = Path(tempfile.mkdtemp(prefix="probed-daemon-"))
    port = free_port()
    settings = work / "probed.yaml"
    plugins = f"plugins_dirs: [{json.dumps(str(plugins_dir))}]\n" if plugins_dir else ""
    settings.write_text(
        f"checks_dirs: [{json.dumps(str(checks_dir))}]\n{plugins}startup_spread: 0\n{config}"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    environ.update(env or {})
    log_path = work / "probed.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [*_PROBED_RUN, "--config", str(settings), "--listen", f"127.0.0.1:{port}", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=work,
        )
    daemon = RunningDaemon(proc, port, log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while daemon.get("/health/live", timeout=1.0).status == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(
                    f"probed run did not answer on {daemon.url} "
                    f"(exit {proc.poll()}):\n{daemon.log()}"
                )
            time.sleep(0.05)
        yield daemon
    finally:
        daemon.stop()
