"""Run the real probed daemon with N generated checks against a loopback target and measure it.

The daemon runs as a subprocess (``python -m probed run``) on a temporary ``checks.d`` holding
N ``tcp`` or ``http`` checks aimed at a local nginx (or an aiohttp server when nginx is not
installed). After a warm-up, two ``/metrics`` scrapes bound a measured window; every figure comes
from deltas between them (so start-up work is not counted):

- probes per second achieved (``probed_check_runs_total``) vs scheduled (N / interval);
- runs on time: achieved / scheduled, and the share of runs whose start lag fell in the
  ``probed_scheduler_lag_seconds`` buckets up to 50 ms;
- scheduling lag p50 / p99, interpolated inside the histogram's buckets like PromQL's
  ``histogram_quantile`` (so only bucket resolution: 1, 2.5, 5, 10, 25, 50 ms, ...);
- daemon CPU seconds per probe and probes per CPU-second (``/proc/PID/stat``);
- RSS at the end of the window and the peak (``VmHWM``), skipped runs, result breakdown;
- ``/metrics`` time (client-measured, fresh connection per scrape) and size, plain text,
  gzip and OpenMetrics, taken after the window while the checks keep running.

``--idle`` instead configures the checks with a long interval, waits until every check ran
once, and reports the RSS of the idle daemon.

    python benchmarks/daemon.py --type tcp --checks 1000 --interval 1
    python benchmarks/daemon.py --type http --checks 10000 --interval 10
    python benchmarks/daemon.py --idle --checks 10000

Every wait is bounded; the daemon, the target and any profiler are stopped on exit, Ctrl-C
included. Loopback only. ``--py-spy FILE`` samples the daemon during the window (needs
``pip install py-spy``) and prints its top functions; ``--cprofile FILE`` runs the daemon under
cProfile instead.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _targets import (
    GC_WRAPPER,
    LOOPBACK,
    Procs,
    Target,
    cpu_seconds,
    free_port,
    gc_summary,
    histogram_quantile,
    http_status,
    parse_metrics,
    peak_rss_bytes,
    rss_bytes,
    runqueue_wait_seconds,
    scrape,
    start_target,
    top_functions,
    tree_cpu_seconds,
    wait_for,
)
from series import LARGE_SCALE_DROP

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# Only these families are parsed from the window scrapes (a 10,000-check body has ~300k lines).
_WANTED = (
    "probed_check_runs_total",
    "probed_check_failures_total",
    "probed_check_skipped_runs_total",
    "probed_scheduler_lag_seconds",
    "probed_checks_configured",
    "probed_check_duration_seconds",
    "probed_scheduler_running_checks",
    "probed_scheduler_queued_checks",
)
_KEEP = _WANTED + tuple(f"# {kind} {name}" for name in _WANTED for kind in ("HELP", "TYPE"))


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def write_checks(
    directory: Path,
    kind: str,
    count: int,
    interval: float,
    timeout: float,
    target: Target,
    changed: Mapping[int, int] | None = None,
) -> None:
    """One ``bench.yaml`` with ``count`` checks of ``kind`` aimed at ``target``.

    ``changed`` maps check indexes to a reload number: those checks get a timeout of their
    own (one millisecond less per reload), so a reload sees exactly them changed. The file is
    replaced atomically (the daemon's file watcher never reads half of it).
    """
    option = f"url: {target.url}" if kind == "http" else f"address: {target.address}"
    lines = [
        "defaults:",
        f"  interval: {_duration(interval)}",
        f"  timeout: {_duration(timeout)}",
        "checks:",
    ]
    changed = changed or {}
    for i in range(count):
        own = f", timeout: {_duration(timeout - 0.001 * changed[i])}" if i in changed else ""
        lines.append(f"  - {{name: bench-{i:05d}, type: {kind}, {option}{own}}}")
    tmp = directory / ".bench.yaml.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(directory / "bench.yaml")


def write_profile(path: Path, profile: str) -> None:
    """``probed.yaml`` for ``--profile``: nothing for ``default``; for ``large``, the documented
    large-scale settings (docs/metrics.md#large-scale-settings, ``benchmarks/series.py``)."""
    if profile == "default":
        path.write_text("{}\n")
        return
    drop = "".join(f"    - {name}\n" for name in LARGE_SCALE_DROP)
    path.write_text(
        "metrics:\n  check_labels: info\n  zero_counters: false\n  drop:\n"
        + drop
        + "defaults:\n  duration_histogram: false\n"
    )


@dataclass
class Daemon:
    """A running daemon subprocess and where it listens."""

    pid: int
    port: int


def start_daemon(
    procs: Procs,
    checks_dir: Path,
    timeout: float,
    cprofile: Path | None = None,
    gc_log: Path | None = None,
    gc_threshold: str | None = None,
    log_level: str = "WARNING",
    wrapper: tuple[str, dict[str, str]] | None = None,
    config: Path | None = None,
    loop: str | None = None,
) -> Daemon:
    """Start ``probed run`` on ``checks_dir``; return once ``/health/startup`` answers 200.

    ``wrapper`` is ``(python code, environment)``: the daemon runs as ``python -c CODE``
    with those variables added (the code runs ``probed`` itself, like :data:`GC_WRAPPER`).
    """
    port = free_port()
    argv = [sys.executable]
    env = dict(os.environ)
    if cprofile is not None:
        argv += ["-m", "cProfile", "-o", str(cprofile), "-m", "probed"]
    elif wrapper is not None:
        argv += ["-c", wrapper[0]]
        env.update(wrapper[1])
    elif gc_log is not None:
        argv += ["-c", GC_WRAPPER]
        env["PROBED_BENCH_GC_LOG"] = str(gc_log)
        if gc_threshold:
            env["PROBED_BENCH_GC_THRESHOLD"] = gc_threshold
    else:
        argv += ["-m", "probed"]
    argv += ["run", "--checks-dir", str(checks_dir)]
    if loop is not None:
        env["PROBED_LOOP"] = loop
    if config is not None:
        argv += ["--config", str(config)]
    argv += ["--listen", f"{LOOPBACK}:{port}", "--log-level", log_level]
    proc = procs.start(argv, "daemon", cwd=REPO, env=env)

    def started() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited ({proc.returncode}):\n{procs.log_tail('daemon')}")
        return http_status(LOOPBACK, port, "/health/startup") == 200

    wait_for(started, timeout, "the daemon's /health/startup")
    return Daemon(proc.pid, port)


@dataclass
class Snapshot:
    """Counters from one scrape, with the time and daemon CPU next to it."""

    at: float
    cpu: float
    runs: Counter[str]
    failures: Counter[str]
    skipped: float
    lag: dict[float, float]
    configured: int
    duration: dict[float, float]
    running: float
    queued: float
    wall: float = 0.0
    by_check: Counter[str] = field(default_factory=Counter)


def snapshot(daemon: Daemon) -> Snapshot:
    """Scrape and read CPU together; parse only the families the window needs."""
    # The counters are read when the daemon starts rendering, close to when the request is
    # sent; the body of a 10,000-check scrape then takes a while to arrive.
    at, wall = time.monotonic(), time.time()
    got = scrape(LOOPBACK, daemon.port)
    cpu = cpu_seconds(daemon.pid)
    text = "".join(line + "\n" for line in got.body.decode().splitlines() if line.startswith(_KEEP))
    samples = parse_metrics(text, _WANTED)
    runs: Counter[str] = Counter()
    by_check: Counter[str] = Counter()
    for labels, value in samples.get("probed_check_runs_total", {}).items():
        found = dict(labels)
        runs[found["result"]] += int(value)
        by_check[found["check"]] += int(value)
    failures: Counter[str] = Counter()
    for labels, value in samples.get("probed_check_failures_total", {}).items():
        failures[dict(labels)["reason"]] += int(value)
    skipped = sum(samples.get("probed_check_skipped_runs_total", {}).values())
    lag = {
        float(dict(labels)["le"]): value
        for labels, value in samples.get("probed_scheduler_lag_seconds_bucket", {}).items()
    }
    configured = int(sum(samples.get("probed_checks_configured", {}).values()))
    duration: dict[float, float] = {}
    for labels, value in samples.get("probed_check_duration_seconds_bucket", {}).items():
        le = float(dict(labels)["le"])
        duration[le] = duration.get(le, 0.0) + value
    running = sum(samples.get("probed_scheduler_running_checks", {}).values())
    queued = sum(samples.get("probed_scheduler_queued_checks", {}).values())
    return Snapshot(
        at, cpu, runs, failures, skipped, lag, configured, duration, running, queued, wall, by_check
    )


@dataclass
class ScrapeFigures:
    """Client-measured ``/metrics`` times and the body size as sent."""

    label: str
    median: float
    maximum: float
    size: int
    plain_size: int
    count: int
    render_median: float | None = None  # daemon-side, from probed_metrics_render_seconds


def measure_scrapes(daemon: Daemon, count: int) -> list[ScrapeFigures]:
    """``count`` scrapes each as plain text, gzip and OpenMetrics, one after another."""
    variants: tuple[tuple[str, dict[str, str]], ...] = (
        ("text", {}),
        ("gzip", {"Accept-Encoding": "gzip"}),
        ("openmetrics", {"Accept": OPENMETRICS}),
    )
    out = []
    for label, headers in variants:
        times, size, plain = [], 0, 0
        renders: list[float] = []
        for index in range(count):
            got = scrape(LOOPBACK, daemon.port, headers=headers)
            times.append(got.seconds)
            size = len(got.body)
            text = gzip.decompress(got.body) if got.content_encoding == "gzip" else got.body
            plain = len(text)
            found = re.search(rb"^probed_metrics_render_seconds ([0-9.e+-]+)$", text, re.M)
            if found and index > 0:  # each body reports the render before it
                renders.append(float(found.group(1)))
        if label == "gzip" and size == plain:
            label = "gzip (not compressed by the daemon)"
        out.append(
            ScrapeFigures(
                label,
                statistics.median(times),
                max(times),
                size,
                plain,
                count,
                statistics.median(renders) if renders else None,
            )
        )
    return out


@dataclass
class Missed:
    """Runs of the checks no reload changed, against their phases in the window."""

    checks: int = 0
    due: int = 0
    due_in_window: int = 0
    counted: int = 0
    missed_checks: int = 0
    missed_runs: int = 0
    extra_checks: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class LoadFigures:
    """Everything :func:`run_load` measured."""

    kind: str
    checks: int
    interval: float
    target: str
    window: float
    achieved: float
    scheduled: float
    on_time_share: float
    lag_under_50ms: float
    lag_p50: float
    lag_p99: float
    lag_count: float
    cpu: float
    skipped: float
    results: Counter[str]
    failures: Counter[str]
    rss_end: int
    rss_max_sampled: int
    rss_peak: int
    scrapes: list[ScrapeFigures] = field(default_factory=list)
    profile: str = ""
    gc_pauses: str = ""
    runqueue_wait: float = float("nan")
    run_p50: float = float("nan")
    run_p99: float = float("nan")
    running: tuple[float, float] = (0.0, 0.0)
    queued: tuple[float, float] = (0.0, 0.0)
    target_cpu: float = float("nan")
    load: float = float("nan")
    profile_name: str = "default"
    loop: str = "auto"
    activity: list[str] = field(default_factory=list)
    missed: Missed = field(default_factory=Missed)
    margin: float = 2.0
    stalls: str = ""

    @property
    def probes(self) -> float:
        """Runs completed in the window."""
        return sum(self.results.values())

    @property
    def probes_per_cpu_second(self) -> float:
        """Probes per daemon CPU-second."""
        return self.probes / self.cpu if self.cpu > 0 else float("inf")


def _lag_share(lag: dict[float, float], bound: float) -> float:
    total = lag.get(float("inf"), 0.0)
    under = max((v for le, v in lag.items() if le <= bound), default=0.0)
    return under / total if total else float("nan")


PROMETHEUS_HEADERS = {"Accept": OPENMETRICS, "Accept-Encoding": "gzip"}
"""What a Prometheus scrape sends (the window's own scrapes ask for plain text to parse it)."""


@dataclass
class Event:
    """A scrape or reload done during the window: when (monotonic), how long, what it got."""

    kind: str
    start: float
    seconds: float
    size: int = 0
    status: int = 0


def _post(port: int, path: str) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=300)
    try:
        conn.request("POST", path)
        resp = conn.getresponse()
        resp.read()
        return int(resp.status)
    finally:
        conn.close()


class Activity:
    """Scrapes every ``scrape_every`` s (like Prometheus) and reloads every ``reload_every`` s
    (the first half a period in) with one more check changed, each on its own thread, from
    ``t0`` until ``end`` (monotonic)."""

    def __init__(
        self,
        args: argparse.Namespace,
        daemon: Daemon,
        checks_dir: Path,
        target: Target,
        t0: float,
        end: float,
    ) -> None:
        self.args, self.daemon, self.checks_dir, self.target = args, daemon, checks_dir, target
        self.t0, self.end = t0, end
        self.events: list[Event] = []
        self.changed: dict[int, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if args.scrape_every:
            self._spawn(self._scrape, t0 + args.scrape_every, args.scrape_every)
        if args.reload_every:
            self._spawn(self._reload, t0 + args.reload_every / 2, args.reload_every)

    def _spawn(self, action: Callable[[int], Event], first: float, every: float) -> None:
        def loop() -> None:
            at, number = first, 1
            while at < self.end - 0.5 and not self._stop.wait(max(0.0, at - time.monotonic())):
                self.events.append(action(number))
                at, number = at + every, number + 1

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _scrape(self, _number: int) -> Event:
        start = time.monotonic()
        got = scrape(LOOPBACK, self.daemon.port, headers=PROMETHEUS_HEADERS)
        return Event("scrape", start, time.monotonic() - start, len(got.body), 200)

    def _reload(self, number: int) -> Event:
        args = self.args
        self.changed[(number * 7919 + 17) % args.checks] = number
        write_checks(
            self.checks_dir,
            args.type,
            args.checks,
            args.interval,
            args.timeout,
            self.target,
            self.changed,
        )
        start = time.monotonic()
        status = _post(self.daemon.port, "/-/reload")
        return Event("reload", start, time.monotonic() - start, 0, status)

    def stop(self, timeout: float = 300.0) -> None:
        """Plan no more; wait for what is under way (a slow reload included)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def changed_names(self) -> set[str]:
        """Checks a reload changed (their counters restart, so they are not accounted)."""
        return {f"bench-{i:05d}" for i in self.changed}


def events_summary(events: list[Event], kind: str, every: float) -> str:
    """One line on the scrapes or reloads of the window."""
    got = [e for e in events if e.kind == kind]
    if not got:
        return ""
    times = [e.seconds * 1000 for e in got]
    line = (
        f"{kind}s in window: {len(got)} every {every:g} s; median {statistics.median(times):.1f} "
        f"ms, max {max(times):.1f} ms"
    )
    if kind == "scrape":
        return line + f" (OpenMetrics + gzip, like Prometheus); {got[-1].size / 1024:.0f} KiB"
    statuses = Counter(e.status for e in got)
    return (
        line
        + " (POST /-/reload, one more check changed each); answers "
        + ", ".join(f"{status} x{n}" for status, n in sorted(statuses.items()))
    )


def missed_runs(
    first: Snapshot, second: Snapshot, args: argparse.Namespace, skip: set[str]
) -> Missed:
    """Compare each unchanged check's runs in the window with the runs due on its phase.

    A check runs on the wall-clock slots ``k * interval + crc32(name) / 2**32 * interval``
    (probed.scheduler). Slots more than ``--margin`` seconds inside the window must be counted
    by the second scrape; slots within the margin of an edge may fall either side.
    """
    out = Missed()
    interval: float = args.interval
    margin: float = args.margin
    for i in range(args.checks):
        name = f"bench-{i:05d}"
        if name in skip:
            continue
        offset = zlib.crc32(name.encode()) / 2**32 * interval

        def slots(lo: float, hi: float, offset: float = offset) -> int:
            return math.floor((hi - offset) / interval) - math.floor((lo - offset) / interval)

        sure = slots(first.wall + margin, second.wall - margin)
        most = slots(first.wall - margin, second.wall + margin)
        got = second.by_check[name] - first.by_check[name]
        out.checks += 1
        out.due += sure
        out.due_in_window += slots(first.wall, second.wall)
        out.counted += got
        if got < sure:
            out.missed_checks += 1
            out.missed_runs += sure - got
            if len(out.examples) < 5:
                out.examples.append(f"{name} ran {got} of {sure}")
        elif got > most:
            out.extra_checks += 1
    return out


# With --stalls the daemon runs under this wrapper: every event-loop callback (a task step, a
# timer, an I/O callback) taking over $PROBED_BENCH_STALL_MS is logged with what it was, and a
# probe task sleeping 10 ms logs how late it woke; lines "cb|late START SECONDS WHAT" go to
# $PROBED_BENCH_STALL_LOG (monotonic clock, shared with the benchmark). With
# $PROBED_BENCH_GC_LOG set, garbage collections are timed as under GC_WRAPPER.
STALL_WRAPPER = """\
import asyncio, gc, os, runpy, sys, time
from asyncio import events
log = open(os.environ["PROBED_BENCH_STALL_LOG"], "w", buffering=1)
LONG = float(os.environ.get("PROBED_BENCH_STALL_MS", "20")) / 1000
if os.environ.get("PROBED_BENCH_GC_LOG"):
    gc_log = open(os.environ["PROBED_BENCH_GC_LOG"], "w", buffering=1)
    began = [0.0]
    sizes = os.environ.get("PROBED_BENCH_GC_SIZES") == "1"
    size = [0]
    def timed(phase, info):
        if phase == "start":
            gen = info["generation"]
            size[0] = sum(len(gc.get_objects(g)) for g in range(gen + 1)) if sizes else 0
            began[0] = time.monotonic()
        else:
            gen = info["generation"]
            heap = size[0] if sizes else len(gc.get_objects(2)) if gen == 2 else 0
            took = time.monotonic() - began[0]
            gc_log.write(f"{began[0]} {gen} {took} {info['collected']} {heap}\\n")
    gc.callbacks.append(timed)
def describe(handle):
    cb = handle._callback
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None)
        frame = getattr(coro, "cr_frame", None)
        where = f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}" if code else "?"
        if frame is not None:
            where += f" (now at line {frame.f_lineno})"
        return f"task {owner.get_name()} {where}"
    return getattr(cb, "__qualname__", repr(cb))[:120].replace(" ", "_")
original = events.Handle._run
started = []
async def probe():
    loop = asyncio.get_running_loop()
    while True:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        late = time.monotonic() - before - 0.01
        if late >= LONG:
            log.write(f"late {before + 0.01} {late} probe\\n")
def timed_run(self):
    t0 = time.monotonic()
    original(self)
    took = time.monotonic() - t0
    if took >= LONG:
        log.write(f"cb {t0} {took} {describe(self)}\\n")
events.Handle._run = timed_run  # asyncio's loop only: uvloop runs its callbacks in C
import probed.daemon
serve = probed.daemon.Daemon.serve
async def serve_probed(self, *args, **kwargs):
    started.append(asyncio.get_running_loop().create_task(probe()))
    return await serve(self, *args, **kwargs)
probed.daemon.Daemon.serve = serve_probed
if os.environ.get("PROBED_BENCH_GC_SETTLE"):
    import probed._gc
    young, old = (int(n) for n in os.environ["PROBED_BENCH_GC_SETTLE"].split(","))
    probed._gc.YOUNG_THRESHOLD, probed._gc.OLD_THRESHOLD = young, old
sys.argv = ["probed", *sys.argv[1:]]
runpy.run_module("probed", run_name="__main__", alter_sys=True)
"""


def _gc_pauses(gc_log: Path | None) -> list[tuple[float, float]]:
    out = []
    if gc_log is not None and gc_log.exists():
        for line in gc_log.read_text().splitlines():
            parts = line.split()
            if len(parts) == 5 and int(parts[1]) == 2:
                out.append((float(parts[0]), float(parts[2])))
    return out


def stall_summary(
    log: Path, start: float, end: float, events: list[Event], gc_log: Path | None, long: float
) -> str:
    """Loop stalls of the window: how many, how long, and what was going on at the time
    (a reload or scrape under way, a full garbage collection)."""
    if not log.exists():
        return "loop stalls: no log"
    gcs = _gc_pauses(gc_log)
    late: list[tuple[float, float]] = []
    callbacks: list[tuple[float, float, str]] = []
    for line in log.read_text().splitlines():
        kind, at_text, took_text, what = line.split(" ", 3)
        if not start <= float(at_text) <= end:
            continue
        if kind == "late":
            late.append((float(at_text), float(took_text)))
        else:
            callbacks.append((float(at_text), float(took_text), what))

    def during(at: float, took: float) -> str:
        found = sorted(
            {
                e.kind
                for e in events
                if e.start - 0.05 <= at + took and at <= e.start + e.seconds + 0.05
            }
        )
        if any(g <= at + took and at <= g + s for g, s in gcs):
            found.append("full gc")
        return "+".join(found) or "nothing else"

    by_cause: dict[str, list[float]] = {}
    for at, took in late:
        by_cause.setdefault(during(at, took), []).append(took)
    out = [
        f"loop stalls (probe woke >= {long * 1000:g} ms late): {len(late)}, "
        f"max {1000 * max((t for _, t in late), default=0):.0f} ms, "
        f"total {1000 * sum(t for _, t in late):.0f} ms; during "
        + (
            "; ".join(
                f"{cause} {len(ts)}x (max {1000 * max(ts):.0f} ms)"
                for cause, ts in sorted(by_cause.items(), key=lambda kv: -sum(kv[1]))
            )
            or "-"
        )
    ]
    out.append(f"longest loop callbacks (>= {long * 1000:g} ms):")
    for at, took, what in sorted(callbacks, key=lambda c: -c[1])[:12]:
        out.append(f"  {1000 * took:7.1f} ms at +{at - start:5.1f} s ({during(at, took)}): {what}")
    return "\n".join(out)


def _py_spy(procs: Procs, pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy")
    if exe is None:
        raise SystemExit("--py-spy needs py-spy (pip install py-spy)")
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    # --gil: only the thread holding the GIL is sampled, so idle pool workers blocked in
    # queue.get() (which py-spy can count as busy) stay out of the figures.
    argv += ["--rate", "100", "--nonblocking", "--gil", "--format", "raw", "--output", str(out)]
    return procs.start(argv, "py-spy")


def run_load(args: argparse.Namespace) -> LoadFigures:
    """Start target and daemon, warm up, measure one window, scrape; stop everything."""
    with Procs() as procs:
        target = start_target(procs, args.target)
        checks_dir = procs.tmp / "checks.d"
        checks_dir.mkdir()
        write_checks(checks_dir, args.type, args.checks, args.interval, args.timeout, target)
        config = procs.tmp / "probed.yaml"
        write_profile(config, args.profile)
        gc_log = procs.tmp / "gc.log" if args.gc_pauses or args.gc_threshold else None
        stall_log = procs.tmp / "stalls.log" if args.stalls else None
        wrapper = None
        if stall_log is not None:
            env = {"PROBED_BENCH_STALL_LOG": str(stall_log), "PROBED_BENCH_STALL_MS": "20"}
            if gc_log is not None:
                env["PROBED_BENCH_GC_LOG"] = str(gc_log)
            if args.gc_settle:
                env["PROBED_BENCH_GC_SETTLE"] = args.gc_settle
            if args.gc_sizes:
                env["PROBED_BENCH_GC_SIZES"] = "1"
            wrapper = (STALL_WRAPPER, env)
        daemon = start_daemon(
            procs,
            checks_dir,
            args.start_timeout,
            args.cprofile,
            gc_log,
            args.gc_threshold,
            wrapper=wrapper,
            config=config,
            loop=args.loop,
        )
        # After the quick first round every check moves onto its own phase within 1.5 intervals.
        warmup = args.warmup if args.warmup is not None else 2.0 + 1.5 * args.interval
        time.sleep(warmup)
        # A scrape first, as Prometheus' previous one: the window's first scrape then renders
        # only the checks that ran since (a render of every check takes long enough for runs
        # of checks rendered late in it to count before the window).
        scrape(LOOPBACK, daemon.port)
        first = snapshot(daemon)
        target_cpu0 = tree_cpu_seconds(target.pid)
        if first.configured != args.checks:
            raise SystemExit(
                f"the daemon runs {first.configured} of {args.checks} checks:\n"
                + procs.log_tail("daemon")
            )
        spy = None
        if args.py_spy is not None:
            spy = _py_spy(procs, daemon.pid, args.duration, args.py_spy)
        wait0 = runqueue_wait_seconds(daemon.pid)
        rss_samples = [rss_bytes(daemon.pid)]
        end = first.at + args.duration
        activity = Activity(args, daemon, checks_dir, target, first.at, end)
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(0.5, left))
            rss_samples.append(rss_bytes(daemon.pid))
        activity.stop()
        cpu_end = cpu_seconds(daemon.pid)
        runqueue_wait = runqueue_wait_seconds(daemon.pid) - wait0
        target_cpu = tree_cpu_seconds(target.pid) - target_cpu0
        load = os.getloadavg()[0]
        second = snapshot(daemon)
        rss_end = rss_bytes(daemon.pid)
        rss_samples.append(rss_end)
        scrapes = measure_scrapes(daemon, args.scrapes)
        peak = peak_rss_bytes(daemon.pid)
        profile = ""
        if spy is not None:
            procs.stop(spy)
            if args.py_spy.exists():
                profile = top_functions(args.py_spy)
        procs.stop_all()
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in (gc_log, stall_log):
                if log is not None and log.exists():
                    shutil.copy(log, args.keep_logs / log.name)
            (args.keep_logs / "window.txt").write_text(
                f"{first.at} {second.at}\n"
                + "".join(f"{e.kind} {e.start} {e.seconds}\n" for e in activity.events)
            )
        gc_pauses = gc_summary(gc_log, first.at, second.at) if gc_log is not None else ""
        stalls = (
            stall_summary(stall_log, first.at, second.at, activity.events, gc_log, 0.02)
            if stall_log is not None
            else ""
        )
    window = second.at - first.at
    results = second.runs - first.runs
    lag = {le: second.lag.get(le, 0.0) - first.lag.get(le, 0.0) for le in second.lag}
    buckets = sorted(lag.items())
    took = sorted(
        (le, second.duration.get(le, 0.0) - first.duration.get(le, 0.0)) for le in second.duration
    )
    scheduled = args.checks / args.interval
    achieved = sum(results.values()) / window
    activity_lines = [
        line
        for line in (
            events_summary(activity.events, "scrape", args.scrape_every or 0),
            events_summary(activity.events, "reload", args.reload_every or 0),
        )
        if line
    ]
    return LoadFigures(
        kind=args.type,
        checks=args.checks,
        interval=args.interval,
        target=f"{target.kind} {target.address}",
        window=window,
        achieved=achieved,
        scheduled=scheduled,
        on_time_share=achieved / scheduled,
        lag_under_50ms=_lag_share(lag, 0.05),
        lag_p50=histogram_quantile(0.5, buckets),
        lag_p99=histogram_quantile(0.99, buckets),
        lag_count=lag.get(float("inf"), 0.0),
        cpu=cpu_end - first.cpu,
        skipped=second.skipped - first.skipped,
        results=results,
        failures=second.failures - first.failures,
        rss_end=rss_end,
        rss_max_sampled=max(rss_samples),
        rss_peak=peak,
        scrapes=scrapes,
        profile=profile,
        gc_pauses=gc_pauses,
        runqueue_wait=runqueue_wait,
        run_p50=histogram_quantile(0.5, took),
        run_p99=histogram_quantile(0.99, took),
        running=(first.running, second.running),
        queued=(first.queued, second.queued),
        target_cpu=target_cpu,
        load=load,
        profile_name=args.profile,
        loop=args.loop or os.environ.get("PROBED_LOOP") or "auto",
        activity=activity_lines,
        missed=missed_runs(first, second, args, activity.changed_names),
        margin=args.margin,
        stalls=stalls,
    )


def _quantile_text(value: float, first_bound: float) -> str:
    """A quantile in ms; inside the first bucket only the bound is known."""
    if value <= first_bound:
        return f"<= {first_bound * 1000:g} ms"
    return f"{value * 1000:.2f} ms"


def print_load(fig: LoadFigures) -> None:
    """The figure lines (``tests/test_benchmarks_smoke.py`` checks their prefixes)."""
    ms = 1000.0
    print(
        f"probed daemon: {fig.checks} {fig.kind} checks every {fig.interval:g} s "
        f"against {fig.target}; window {fig.window:.1f} s; metrics profile {fig.profile_name}; "
        f"{fig.loop} loop"
    )
    print(
        f"probes/s: achieved {fig.achieved:.1f}, scheduled {fig.scheduled:.1f} "
        f"({100 * fig.achieved / fig.scheduled:.1f} %)"
    )
    print(
        f"on time: {100 * fig.on_time_share:.2f} % of scheduled runs ran; "
        f"{100 * fig.lag_under_50ms:.2f} % of {fig.lag_count:.0f} runs started < 50 ms late"
    )
    lag_first, run_first = 0.001, 0.005  # the lowest bucket bounds of the two histograms
    print(
        f"lag (bucket resolution): p50 {_quantile_text(fig.lag_p50, lag_first)}, "
        f"p99 {_quantile_text(fig.lag_p99, lag_first)}"
    )
    print(
        f"run duration (bucket resolution): p50 {_quantile_text(fig.run_p50, run_first)}, "
        f"p99 {_quantile_text(fig.run_p99, run_first)}; "
        f"running {fig.running[0]:.0f} -> {fig.running[1]:.0f}, "
        f"queued for a slot {fig.queued[0]:.0f} -> {fig.queued[1]:.0f} (window start -> end)"
    )
    m = fig.missed
    if m.due_in_window:
        print(
            f"on phase: {m.counted} runs counted of {m.due_in_window} due on the phases of the "
            f"{m.checks} checks no reload changed ({100 * m.counted / m.due_in_window:.2f} %; "
            "runs due near an edge may be counted on either side)"
        )
    print(
        f"missed runs: {m.missed_runs} of {m.due} runs due more than {fig.margin:g} s inside the "
        f"window ({m.missed_checks} of {m.checks} checks no reload changed"
        + (f": {', '.join(m.examples)}" if m.examples else "")
        + f"); {m.extra_checks} checks ran more often than scheduled"
    )
    for line in fig.activity:
        print(line)
    outcome = ", ".join(f"{k} {int(v)}" for k, v in sorted(fig.results.items()) if v) or "none"
    reasons = ", ".join(f"{k} {int(v)}" for k, v in fig.failures.most_common() if v)
    print(f"results: {outcome}" + (f" (failures: {reasons})" if reasons else ""))
    print(f"skipped runs: {fig.skipped:.0f}")
    per_probe = fig.cpu / fig.probes * 1e3 if fig.probes else float("nan")
    print(
        f"daemon CPU: {fig.cpu:.2f} s in {fig.window:.1f} s ({100 * fig.cpu / fig.window:.0f} % "
        f"of a core); {per_probe:.3f} ms per probe; {fig.probes_per_cpu_second:.0f} probes per "
        f"CPU-second"
    )
    print(
        f"machine: the daemon waited {fig.runqueue_wait:.2f} s for a CPU in the window "
        f"({100 * fig.runqueue_wait / fig.window:.1f} %); load average {fig.load:.2f} "
        f"on {os.cpu_count()} CPUs; target ({fig.target.split()[0]}) CPU {fig.target_cpu:.2f} s"
    )
    print(
        f"RSS: {fig.rss_end / MB:.1f} MB at end of window, {fig.rss_max_sampled / MB:.1f} MB max "
        f"sampled, {fig.rss_peak / MB:.1f} MB peak (VmHWM)"
    )
    for s in fig.scrapes:
        size = f"{s.size / 1024:.0f} KiB"
        if s.size != s.plain_size:
            size += f" (from {s.plain_size / 1024:.0f} KiB)"
        render = (
            f"; daemon render median {s.render_median * ms:.1f} ms"
            if s.render_median is not None
            else ""
        )
        print(
            f"/metrics {s.label}: median {s.median * ms:.1f} ms, max {s.maximum * ms:.1f} ms "
            f"over {s.count} scrapes, {size}{render}"
        )
    if fig.gc_pauses:
        print(fig.gc_pauses)
    if fig.stalls:
        print(fig.stalls)
    if fig.profile:
        print(fig.profile)


@dataclass
class IdleFigures:
    """RSS and CPU of a daemon whose checks all ran once and now wait for their next turn."""

    checks: int
    kind: str
    interval: float
    settle: float
    rss: int
    peak: int
    cpu: float
    baseline: int
    rss_after_scrapes: int
    scrapes: list[ScrapeFigures]


def _idle_daemon(args: argparse.Namespace, checks: int, scrapes: int) -> IdleFigures:
    with Procs() as procs:
        target = start_target(procs, args.target)
        checks_dir = procs.tmp / "checks.d"
        checks_dir.mkdir()
        write_checks(checks_dir, args.type, checks, args.interval, args.timeout, target)
        daemon = start_daemon(procs, checks_dir, args.start_timeout, args.cprofile)
        settle = args.warmup if args.warmup is not None else 5.0
        time.sleep(settle)
        cpu0 = cpu_seconds(daemon.pid)
        t0 = time.monotonic()
        time.sleep(args.duration)
        cpu = (cpu_seconds(daemon.pid) - cpu0) / (time.monotonic() - t0)
        rss = rss_bytes(daemon.pid)
        peak = peak_rss_bytes(daemon.pid)
        measured = measure_scrapes(daemon, scrapes) if scrapes else []
        after = rss_bytes(daemon.pid)
        procs.stop_all()
    return IdleFigures(checks, args.type, args.interval, settle, rss, peak, cpu, 0, after, measured)


def run_idle(args: argparse.Namespace) -> IdleFigures:
    """Start with a long interval, wait for the first round and a settle time, read RSS.

    A one-check daemon is measured first as the baseline (interpreter, libraries, server), so
    the per-check figure is the increment. ``/metrics`` is then timed with every check's
    rendering cached (nothing changed since the previous scrape but the first).
    """
    baseline = _idle_daemon(args, 1, 0).rss if args.checks > 1 else 0
    figures = _idle_daemon(args, args.checks, args.scrapes)
    figures.baseline = baseline
    return figures


def print_idle(fig: IdleFigures) -> None:
    """The idle figure lines."""
    print(
        f"probed daemon idle: {fig.checks} {fig.kind} checks every {fig.interval:g} s, all ran "
        f"once, then {fig.settle:g} s settle"
    )
    per_check = (fig.rss - fig.baseline) / max(1, fig.checks - 1) / 1024
    print(
        f"idle RSS: {fig.rss / MB:.1f} MB ({fig.baseline / MB:.1f} MB with 1 check, "
        f"{per_check:.1f} KiB per further check); peak (VmHWM, includes the first round) "
        f"{fig.peak / MB:.1f} MB; {fig.rss_after_scrapes / MB:.1f} MB after the scrapes"
    )
    print(f"idle CPU: {100 * fig.cpu:.1f} % of a core")
    for s in fig.scrapes:
        print(
            f"/metrics {s.label} (idle): median {s.median * 1000:.1f} ms, max "
            f"{s.maximum * 1000:.1f} ms over {s.count} scrapes, {s.size / 1024:.0f} KiB"
        )


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--type", choices=("tcp", "http"), default="tcp", help="check type [tcp]")
    p.add_argument("--checks", type=int, default=1000, help="number of checks [1000]")
    p.add_argument("--interval", type=float, help="seconds between runs [1; 3600 with --idle]")
    p.add_argument("--timeout", type=float, help="check timeout in seconds [min(interval / 2, 5)]")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds [20]")
    p.add_argument(
        "--warmup", type=float, help="seconds after startup before measuring [2 + 1.5 interval]"
    )
    p.add_argument(
        "--target", choices=("auto", "nginx", "aiohttp"), default="auto", help="[auto: nginx]"
    )
    p.add_argument("--scrapes", type=int, default=10, help="/metrics scrapes per variant [10]")
    p.add_argument("--idle", action="store_true", help="measure idle RSS instead of load")
    p.add_argument(
        "--start-timeout", type=float, default=120.0, help="seconds to wait for startup [120]"
    )
    p.add_argument("--py-spy", type=Path, help="record the window with py-spy (raw) to FILE")
    p.add_argument("--gc-pauses", action="store_true", help="time the daemon's garbage collections")
    p.add_argument(
        "--gc-threshold",
        metavar="G0,G1,G2",
        help="experiment: gc.set_threshold in the daemon before it starts (implies --gc-pauses)",
    )
    p.add_argument("--cprofile", type=Path, help="run the daemon under cProfile, stats to FILE")
    p.add_argument(
        "--profile",
        choices=("default", "large"),
        default="default",
        help="metrics settings: default, or the documented large-scale ones [default]",
    )
    p.add_argument(
        "--scrape-every", type=float, metavar="S", help="scrape like Prometheus every S s"
    )
    p.add_argument(
        "--reload-every",
        type=float,
        metavar="S",
        help="every S s (first at S/2) change one check and POST /-/reload",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=2.0,
        help="runs due this close to a window edge are not counted as missed [2]",
    )
    p.add_argument(
        "--stalls",
        action="store_true",
        help="log event-loop callbacks and wake-ups over 20 ms in the daemon, with their cause",
    )
    p.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        help="the daemon's event loop (PROBED_LOOP) [auto: uvloop when installed]",
    )
    p.add_argument(
        "--gc-settle",
        metavar="YOUNG,OLD",
        help="experiment (with --stalls): the thresholds probed._gc sets once checks are loaded",
    )
    p.add_argument(
        "--gc-sizes",
        action="store_true",
        help="diagnosis (with --stalls --gc-pauses): log the objects each collection traverses",
    )
    p.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy the GC and stall logs and the window's events (monotonic times) to DIR",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse options, run the chosen mode, print figures."""
    args = parser().parse_args(argv)
    if args.interval is None:
        args.interval = 3600.0 if args.idle else 1.0
    if args.timeout is None:
        args.timeout = min(args.interval / 2, 5.0)
    if args.idle and args.duration == 20.0:
        args.duration = 3.0
    if args.checks < 1 or args.duration <= 0 or args.interval <= 0:
        raise SystemExit("--checks, --duration and --interval must be positive")
    try:
        if args.idle:
            print_idle(run_idle(args))
        else:
            print_load(run_load(args))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; everything started was stopped") from None
    if args.cprofile is not None and args.cprofile.exists():
        import pstats

        print(f"cProfile ({args.cprofile}), top 25 by internal time:")
        pstats.Stats(str(args.cprofile)).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
