"""Shared helpers for the benchmark scripts: loopback targets, process accounting, scrapes.

- :func:`start_target` runs a throwaway HTTP/TCP target on 127.0.0.1: nginx-light with
  ``location / { return 200 "OK\\n"; }`` when installed, else a one-file aiohttp server.
- :class:`Procs` owns every subprocess a benchmark starts and stops all of them on exit,
  including on Ctrl-C, SIGTERM and exceptions.
- :func:`cpu_seconds`, :func:`rss_bytes`, :func:`peak_rss_bytes` read ``/proc/PID``.
- :func:`scrape` fetches a ``/metrics`` body with the client-measured time;
  :func:`parse_metrics` and :func:`histogram_quantile` turn bodies into figures.

Everything binds to loopback only. Standard library plus prometheus_client; no asyncio here,
so the measuring side stays simple and its cost stays out of the measured process.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "GC_WRAPPER",
    "LOOPBACK",
    "Procs",
    "Scrape",
    "Target",
    "cpu_seconds",
    "free_port",
    "gc_summary",
    "histogram_quantile",
    "http_status",
    "parse_metrics",
    "peak_rss_bytes",
    "rss_bytes",
    "runqueue_wait_seconds",
    "scrape",
    "start_target",
    "top_functions",
    "tree_cpu_seconds",
    "wait_for",
]

LOOPBACK = "127.0.0.1"
_CLK_TCK = os.sysconf("SC_CLK_TCK")

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
    uwsgi_temp_path {dir}; scgi_temp_path {dir};
    server {{
        listen {host}:{port} backlog=4096;
        location / {{ return 200 "OK\\n"; }}
    }}
}}
"""

AIOHTTP_TARGET = """\
import sys
from aiohttp import web
app = web.Application()
app.router.add_get("/", lambda r: web.Response(text="OK\\n"))
web.run_app(app, host=sys.argv[1], port=int(sys.argv[2]), access_log=None, print=None,
            backlog=4096)
"""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 50 ms until true; raise ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def port_open(host: str, port: int) -> bool:
    """True if a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Procs(contextlib.AbstractContextManager["Procs"]):
    """Starts subprocesses and guarantees they are gone when the ``with`` block ends.

    Children get their own session so a terminal's Ctrl-C reaches only this script, which
    then stops them in order (SIGTERM, then SIGKILL after ``grace`` seconds). SIGTERM to
    this script is turned into ``KeyboardInterrupt`` for the same clean-up path.
    """

    def __init__(self, grace: float = 10.0) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []
        self._grace = grace
        self._old_term: object = None
        self.tmp = Path(tempfile.mkdtemp(prefix="probed-bench-"))

    def __enter__(self) -> Procs:
        def on_term(_signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        self._old_term = signal.signal(signal.SIGTERM, on_term)
        return self

    def start(self, argv: Sequence[str], name: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start ``argv``; stdout/stderr go to ``<tmp>/<name>.log`` unless given."""
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed right after Popen
        with log:
            kwargs.setdefault("stdout", log)
            kwargs.setdefault("stderr", subprocess.STDOUT)
            proc = subprocess.Popen(argv, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc  # type: ignore[no-any-return]

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines a started process wrote (for error messages)."""
        try:
            text = (self.tmp / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes]) -> int | None:
        """Stop one process (SIGTERM, then SIGKILL) and return its exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self._grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        """Stop every process still running, the most recently started first."""
        for proc in reversed(list(self._procs)):
            self.stop(proc)

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop_all()
        finally:
            signal.signal(signal.SIGTERM, self._old_term)  # type: ignore[arg-type]
            shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass(frozen=True)
class Target:
    """A running loopback target: what it is and where."""

    kind: str
    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        """The URL that answers ``200 OK``."""
        return f"http://{self.host}:{self.port}/"

    @property
    def address(self) -> str:
        """``host:port`` for TCP checks."""
        return f"{self.host}:{self.port}"


def start_target(procs: Procs, kind: str = "auto") -> Target:
    """Start nginx (``kind`` ``nginx`` or ``auto`` when installed) or the aiohttp fallback."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if kind == "nginx" and nginx is None:
        raise SystemExit("nginx not found (apt-get install -y nginx-light)")
    port = free_port()
    if kind in ("nginx", "auto") and nginx is not None:
        conf = procs.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=procs.tmp, host=LOOPBACK, port=port))
        proc = procs.start([nginx, "-c", str(conf), "-e", str(procs.tmp / "error.log")], "nginx")
        name = "nginx"
    else:
        script = procs.tmp / "target.py"
        script.write_text(AIOHTTP_TARGET)
        proc = procs.start([sys.executable, str(script), LOOPBACK, str(port)], "target")
        name = "aiohttp"
    try:
        wait_for(lambda: proc.poll() is not None or port_open(LOOPBACK, port), 15, name)
    except TimeoutError:
        raise SystemExit(f"{name} did not start:\n{procs.log_tail(name)}") from None
    if proc.poll() is not None:
        raise SystemExit(f"{name} exited:\n{procs.log_tail(name)}")
    return Target(name, LOOPBACK, port, proc.pid)


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used (``/proc/PID/stat`` utime + stime)."""
    fields = _stat_fields(pid)
    # Fields 14 and 15 of stat(5); the list starts at field 3.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the main thread of ``pid`` spent runnable but waiting for a CPU.

    Second field of ``/proc/PID/schedstat``: on a shared machine it shows how much of the
    wall-clock lag came from other processes holding the cores, not from the process itself.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` plus its live children (nginx's master and its worker)."""
    total = cpu_seconds(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        with contextlib.suppress(OSError):  # it may exit between the two reads
            total += cpu_seconds(int(child))
    return total


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_bytes(pid: int) -> int:
    """Resident set size now (``VmRSS``)."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size since start (``VmHWM``)."""
    return _status_kib(pid, "VmHWM") * 1024


@dataclass(frozen=True)
class Scrape:
    """One ``/metrics`` fetch: client-measured seconds, body bytes as sent, content type."""

    seconds: float
    body: bytes
    content_type: str
    content_encoding: str


def scrape(
    host: str, port: int, path: str = "/metrics", headers: dict[str, str] | None = None
) -> Scrape:
    """GET ``path`` on a fresh connection; time from request sent to the last body byte."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.connect()
        start = time.perf_counter()
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        seconds = time.perf_counter() - start
        if resp.status != 200:
            raise RuntimeError(f"GET {path} answered {resp.status}: {body[:200]!r}")
        return Scrape(
            seconds,
            body,
            resp.getheader("Content-Type", ""),
            resp.getheader("Content-Encoding", ""),
        )
    finally:
        conn.close()


def http_status(host: str, port: int, path: str) -> int:
    """Status code of ``GET path``, or 0 when nothing answers."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()
    except OSError:
        return 0


Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse_metrics(text: str, names: Sequence[str]) -> Samples:
    """Samples of the families ``names``: sample name -> sorted label pairs -> value."""
    wanted = set(names)
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        if family.name not in wanted and f"{family.name}_total" not in wanted:
            continue
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Like PromQL ``histogram_quantile``: linear interpolation inside cumulative buckets.

    ``buckets`` are ``(upper bound, cumulative count)`` pairs including ``+Inf``. The answer
    has bucket resolution only: it says which bucket the quantile falls in and assumes runs
    are spread evenly inside it. Returns NaN without observations; a quantile in the ``+Inf``
    bucket returns the highest finite bound (as Prometheus does).
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return float("nan")
    rank = q * ordered[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return ordered[-1][0]


# With --gc-pauses the daemon runs under this wrapper: gc.callbacks time every collection and
# append "start generation seconds collected gen2-objects" lines to $PROBED_BENCH_GC_LOG;
# $PROBED_BENCH_GC_THRESHOLD ("700,10,10") tries other gc.set_threshold values.
GC_WRAPPER = """\
import gc, os, runpy, sys, time
log = open(os.environ["PROBED_BENCH_GC_LOG"], "w", buffering=1)
began = [0.0]
def timed(phase, info):
    if phase == "start":
        began[0] = time.monotonic()
    else:
        took = time.monotonic() - began[0]
        gen = info["generation"]
        heap = len(gc.get_objects(2)) if gen == 2 else 0
        log.write(f"{began[0]} {gen} {took} {info['collected']} {heap}\\n")
gc.callbacks.append(timed)
if os.environ.get("PROBED_BENCH_GC_THRESHOLD"):
    gc.set_threshold(*(int(n) for n in os.environ["PROBED_BENCH_GC_THRESHOLD"].split(",")))
sys.argv = ["probed", *sys.argv[1:]]
runpy.run_module("probed", run_name="__main__", alter_sys=True)
"""


def top_functions(raw: Path, limit: int = 15) -> str:
    """Top functions by self and by inclusive samples from py-spy's collapsed-stack output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # Root first, leaf (where the sample landed) last.
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "py-spy recorded no samples"
    out = [f"py-spy: {total} samples; top functions by own samples:"]
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in own.most_common(limit)]
    # Inclusive counts are shown for probed's own frames: the frames above them (runpy, click,
    # the event loop) are in every sample and say nothing.
    ours = Counter({k: v for k, v in inclusive.items() if "(probed/" in k})
    out.append("top probed functions by inclusive samples:")
    out += [f"  {100 * n / total:5.1f} %  {name}" for name, n in ours.most_common(limit)]
    return "\n".join(out)


def gc_summary(log: Path, start: float, end: float) -> str:
    """One line on the garbage collector's pauses that began inside the window."""
    by_gen: dict[int, list[float]] = {0: [], 1: [], 2: []}
    heap = 0
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 5 and start <= float(parts[0]) <= end:
                by_gen[int(parts[1])].append(float(parts[2]))
                heap = max(heap, int(parts[4]))
    return (
        "GC pauses in window: "
        + "; ".join(
            f"gen{gen} {len(p)}x, max {1000 * max(p, default=0):.1f} ms, "
            f"total {1000 * sum(p):.0f} ms"
            for gen, p in by_gen.items()
        )
        + f"; up to {heap} objects in the oldest generation after a full collection"
    )
