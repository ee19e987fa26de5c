"""Soak the real probed daemon: mixed, failing and hostile checks, two scrapers, periodic reloads.

Starts ``python -m probed run`` (this checkout) on a temporary ``checks.d`` with ``--checks``
checks (default 1,000) against loopback targets it starts itself:

- passing: ``http`` and ``tcp`` checks against nginx (or an aiohttp server, see ``_targets.py``);
- failing: ``tcp`` to a closed port, ``http`` to a server answering ``500``;
- flapping: ``http`` to a server that alternates ``200``/``500`` every 7 s;
- hostile (``_hostile.py``): an endless HTTP header line, an endless status line, a Redis bulk
  reply ``$999999999999``, an endless Redis line, a slow-loris dribbling one byte every 0.5 s,
  and a TCP server that never answers (an ``http`` check against it);
- ``reload.yaml``: a few passing checks whose interval alternates between 2 s and 3 s, rewritten
  before every ``POST /-/reload`` (every ``--reload-every`` s) so each reload changes something.

After ``--warmup`` seconds (every check has filled its 10-result history) the window of
``--duration`` seconds (default 600) starts. During it two scraper threads fetch ``/metrics``
together every ``--scrape-every`` s (the same instant: an HA Prometheus pair), and every
``--sample-every`` s the daemon's RSS, open fds and threads are read from ``/proc`` and
``/health/live`` is asked. Printed at the end:

- RSS at window start and end, drift %, highest sample, ``VmHWM`` and a least-squares trend;
- fds and threads at start, end and highest;
- missed runs of the checks no reload touches: per check, runs due between its last run seen
  at window start and at window end (``probed_check_last_run_timestamp_seconds``, rounded to
  whole intervals) minus runs counted (``probed_check_runs_total``), summed; with the
  scheduler's skipped runs and lag p99;
- scrape errors (not 200, or no answer) and scrape-time percentiles; reload answers; liveness;
- daemon CPU, log lines and tracebacks in its log, and a verdict against the targets
  (RSS drift < 5 %, 0 missed runs, 0 scrape errors).

    python benchmarks/soak.py                               # 1,000 checks, 10 min (+1 min warm-up)
    python benchmarks/soak.py --duration 20 --checks 50 --warmup 3 --reload-every 5   # smoke

Loopback only; every process started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _targets import (
    LOOPBACK,
    Procs,
    Target,
    cpu_seconds,
    free_port,
    histogram_quantile,
    http_status,
    peak_rss_bytes,
    rss_bytes,
    scrape,
    start_target,
    wait_for,
)
from daemon import Daemon, start_daemon

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
MB = 1024 * 1024

# (group, share of --checks, type, interval s, timeout s, target kind): targets "nginx" and
# "closed" are not hostile servers; every other kind is a port of _hostile.py.
MIX: tuple[tuple[str, float, str, int, int, str], ...] = (
    ("pass-http", 0.33, "http", 5, 2, "nginx"),
    ("pass-tcp", 0.20, "tcp", 2, 1, "nginx"),
    ("fail-closed", 0.05, "tcp", 5, 2, "closed"),
    ("fail-500", 0.05, "http", 5, 2, "status500"),
    ("flap", 0.10, "http", 2, 1, "flap"),
    ("endless-header", 0.04, "http", 5, 2, "endless_header"),
    ("endless-status", 0.04, "http", 5, 2, "endless_status"),
    ("redis-bulk", 0.04, "redis", 5, 2, "redis_bulk"),
    ("redis-line", 0.04, "redis", 5, 2, "redis_line"),
    ("slowloris", 0.04, "http", 5, 2, "slowloris"),
    ("blackhole", 0.04, "http", 5, 2, "blackhole"),
)
# --tracemalloc: the daemon runs under this wrapper; each SIGUSR2 writes a snapshot to
# $PROBED_SOAK_TRACE.N (written aside, then renamed: a complete file appears at once).
TRACE_WRAPPER = """\
import os, runpy, signal, sys, tracemalloc
tracemalloc.start(int(os.environ["PROBED_SOAK_TRACE_FRAMES"]))
out, taken = os.environ["PROBED_SOAK_TRACE"], [0]
def dump(signum, frame):
    taken[0] += 1
    snap = tracemalloc.take_snapshot()
    snap.dump(f"{out}.tmp")
    os.replace(f"{out}.tmp", f"{out}.{taken[0]}")
signal.signal(signal.SIGUSR2, dump)
sys.argv = ["probed", *sys.argv[1:]]
runpy.run_module("probed", run_name="__main__", alter_sys=True)
"""
RELOAD_SHARE = 0.01  # checks in reload.yaml (rewritten before each reload; not counted as missed)
RUNS_RE = re.compile(r'^probed_check_runs_total\{check="([^"]+)".*\} ([0-9.e+]+)$', re.M)
LAST_RE = re.compile(
    r'^probed_check_last_run_timestamp_seconds\{check="([^"]+)".*\} ([0-9.e+]+)$', re.M
)
SKIPPED_RE = re.compile(r"^probed_check_skipped_runs_total\{.*\} ([0-9.e+]+)$", re.M)
LAG_RE = re.compile(r'^probed_scheduler_lag_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', re.M)
CONFIGURED_RE = re.compile(r"^probed_checks_configured\{.*\} ([0-9.e+]+)$", re.M)


@dataclass(frozen=True)
class Plan:
    """The generated checks: name -> (group, interval); groups in order with their counts."""

    checks: dict[str, tuple[str, int]]
    counts: dict[str, int]
    reload_names: frozenset[str]


def plan_checks(total: int) -> Plan:
    """Split ``total`` checks over :data:`MIX` (at least one each; pass-http takes the rest)."""
    n_reload = max(1, round(total * RELOAD_SHARE))
    counts = {group: max(1, int(total * share)) for group, share, *_ in MIX}
    counts["pass-http"] += total - n_reload - sum(counts.values())
    if counts["pass-http"] < 1:
        raise SystemExit(f"--checks {total} is too few for the mix (at least {len(MIX) + 2})")
    checks = {}
    for group, _share, _kind, interval, *_ in MIX:
        for i in range(counts[group]):
            checks[f"{group}-{i:04d}"] = (group, interval)
    reload_names = frozenset(f"reload-{i:03d}" for i in range(n_reload))
    counts["reload"] = n_reload
    return Plan(checks, counts, reload_names)


def check_files(plan: Plan, target: Target, ports: dict[str, int]) -> str:
    """``soak.yaml``: every check of the plan but the reloaded ones."""
    lines = ["checks:"]
    spec = {row[0]: row for row in MIX}
    for name, (group, _interval) in plan.checks.items():
        _g, _s, kind, interval, timeout, where = spec[group]
        address = target.address if where == "nginx" else f"{LOOPBACK}:{ports[where]}"
        if kind == "http":
            option = f"url: 'http://{address}/'"
        elif kind == "redis":
            option = f"url: 'redis://{address}/0'"
        else:
            option = f"address: '{address}'"
        lines.append(
            f"  - {{name: {name}, type: {kind}, interval: {interval}s, timeout: {timeout}s, "
            f"{option}}}"
        )
    return "\n".join(lines) + "\n"


def reload_file(plan: Plan, target: Target, generation: int) -> str:
    """``reload.yaml``: its checks' interval alternates between 2 s and 3 s."""
    interval = 2 if generation % 2 == 0 else 3
    lines = ["checks:"]
    for name in sorted(plan.reload_names):
        lines.append(
            f"  - {{name: {name}, type: tcp, interval: {interval}s, timeout: 1s, "
            f"address: '{target.address}'}}"
        )
    return "\n".join(lines) + "\n"


@dataclass
class Counters:
    """Per-check counters from one ``/metrics`` body."""

    at: float
    cpu: float
    runs: dict[str, float]
    last: dict[str, float]
    skipped: float
    lag: dict[float, float]
    configured: int
    wall: float  # time.time() when the scrape was sent, to compare with last-run timestamps


def read_counters(body: str, at: float, cpu: float, wall: float) -> Counters:
    """Parse the families the figures need out of a ``/metrics`` body (regular expressions)."""
    runs: dict[str, float] = {}
    for name, value in RUNS_RE.findall(body):
        runs[name] = runs.get(name, 0.0) + float(value)
    last = {name: float(value) for name, value in LAST_RE.findall(body)}
    lag = {float(le): float(v) for le, v in LAG_RE.findall(body)}
    skipped = sum(float(v) for v in SKIPPED_RE.findall(body))
    configured = int(sum(float(v) for v in CONFIGURED_RE.findall(body)))
    return Counters(at, cpu, runs, last, skipped, lag, configured, wall)


def missed_runs(plan: Plan, first: Counters, second: Counters) -> tuple[int, int, Counter[str]]:
    """Runs due but not counted for the checks no reload changes: (missed, due, by group).

    For each check the runs between its last run seen at window start and at window end are
    ``round((last_end - last_start) / interval)`` on its schedule; each one counted once in
    ``probed_check_runs_total``. Runs overdue at window end count too: a check whose last run
    is more than two intervals old (a timeout is below half an interval here) stopped running,
    and every interval since its last run is a missed run. A counter that went backwards
    counts as all missed.
    """
    missed, due = 0, 0
    by_group: Counter[str] = Counter()
    for name, (group, interval) in plan.checks.items():
        if name not in first.last or name not in second.last:
            expected = round((second.at - first.at) / interval)
            counted = 0.0
        else:
            expected = round((second.last[name] - first.last[name]) / interval)
            expected += max(0, int((second.wall - second.last[name]) / interval) - 1)
            counted = second.runs.get(name, 0.0) - first.runs.get(name, 0.0)
        due += expected
        lost = max(0, expected - int(counted))
        if lost:
            missed += lost
            by_group[group] += lost
    return missed, due, by_group


class Scrapers:
    """Two (or more) threads scraping ``/metrics`` at the same instants, every ``every`` s."""

    def __init__(self, port: int, every: float, count: int = 2) -> None:
        self.port, self.every = port, every
        self.times: list[float] = []
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]

    def __enter__(self) -> Scrapers:
        for t in self._threads:
            t.start()
        return self

    def _loop(self) -> None:
        tick = 1
        while not self._stop.wait(max(0.0, self._start + tick * self.every - time.monotonic())):
            tick = int((time.monotonic() - self._start) / self.every) + 1
            try:
                got = scrape(LOOPBACK, self.port)
                with self._lock:
                    self.times.append(got.seconds)
            except (RuntimeError, OSError) as exc:
                with self._lock:
                    self.errors[str(exc).splitlines()[0][:120]] += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(90)


def _post(port: int, path: str) -> int:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        conn.request("POST", path, body=b"")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()


@dataclass
class Sample:
    """One reading of the daemon's resources."""

    at: float
    rss: int
    fds: int
    threads: int


def sample(pid: int) -> Sample:
    """RSS, open fds and threads of ``pid`` from ``/proc``."""
    threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Sample(time.monotonic(), rss_bytes(pid), fds, threads)


@dataclass
class SoakFigures:
    """Everything one soak measured."""

    plan: Plan
    window: float
    warmup: float
    samples: list[Sample]
    peak: int
    missed: int
    due: int
    missed_by_group: Counter[str]
    skipped: float
    lag_p99: float
    scrape_times: list[float]
    scrape_errors: Counter[str]
    reloads: Counter[int]
    live_failures: int
    live_probes: int
    cpu: float
    log_lines: int
    log_bytes: int
    tracebacks: int
    first_exception: str
    load: float
    commit: str = ""
    notes: list[str] = field(default_factory=list)


def _commit() -> str:
    """``git describe --always --dirty`` of the checkout soaked (``-dirty``: uncommitted edits)."""
    try:
        sha = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return sha or "unknown (not a git checkout)"


def first_exception(log: bytes) -> str:
    """The last line of the first traceback in the daemon's log (JSON or text), or ``""``."""
    at = log.find(b"Traceback")
    if at < 0:
        return ""
    start = log.rfind(b"\n", 0, at) + 1
    end = log.find(b"\n", at)
    line = log[start : end if end >= 0 else len(log)].decode(errors="replace")
    if line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = {}
        line = next((v for v in record.values() if isinstance(v, str) and "Traceback" in v), "")
        lines = [x for x in line.splitlines() if x.strip()]
    else:  # text format: the traceback's lines follow until one that does not start with space
        lines = []
        for raw in log[at:].decode(errors="replace").splitlines()[1:]:
            lines.append(raw)
            if raw and not raw.startswith(" "):
                break
    return lines[-1].strip()[:200] if lines else ""


def _snapshot(daemon: Daemon) -> Counters:
    at, wall = time.monotonic(), time.time()
    got = scrape(LOOPBACK, daemon.port)
    return read_counters(got.body.decode(), at, cpu_seconds(daemon.pid), wall)


def run_soak(args: argparse.Namespace) -> SoakFigures:
    """Start targets and daemon, warm up, soak for the window, collect figures, stop all."""
    plan = plan_checks(args.checks)
    with Procs() as procs:
        target = start_target(procs, args.target)
        kinds = sorted({row[5] for row in MIX} - {"nginx"})
        ports = {kind: free_port() for kind in kinds}
        hostile = [f"{k}:{p}" for k, p in ports.items() if k != "closed"]
        argv = [sys.executable, str(HERE / "_hostile.py"), "--cap", str(args.hostile_cap)]
        server = procs.start([*argv, *hostile], "hostile")
        wait_for(
            lambda: "ready" in procs.log_tail("hostile") or server.poll() is not None,
            15,
            "the hostile targets",
        )
        if server.poll() is not None:
            raise SystemExit(f"_hostile.py exited:\n{procs.log_tail('hostile')}")
        checks_dir = procs.tmp / "checks.d"
        checks_dir.mkdir()
        (checks_dir / "soak.yaml").write_text(check_files(plan, target, ports))
        (checks_dir / "reload.yaml").write_text(reload_file(plan, target, 0))
        trace = procs.tmp / "trace"
        wrapper = None
        if args.tracemalloc:
            frames = str(args.tracemalloc)
            env = {"PROBED_SOAK_TRACE": str(trace), "PROBED_SOAK_TRACE_FRAMES": frames}
            wrapper = (TRACE_WRAPPER, env)
        daemon = start_daemon(
            procs, checks_dir, args.start_timeout, log_level=args.log_level, wrapper=wrapper
        )
        time.sleep(args.warmup)
        first = _snapshot(daemon)
        if args.tracemalloc:
            _trace_snapshot(daemon.pid, trace, 1)
        total = len(plan.checks) + len(plan.reload_names)
        if first.configured != total:
            raise SystemExit(
                f"the daemon runs {first.configured} of {total} checks:\n"
                + procs.log_tail("daemon")
            )
        samples = [sample(daemon.pid)]
        reloads: Counter[int] = Counter()
        live = [0, 0]
        generation = 0
        next_sample = first.at + args.sample_every
        next_reload = first.at + args.reload_every
        end = first.at + args.duration
        with Scrapers(daemon.port, args.scrape_every) as scrapers:
            while (now := time.monotonic()) < end:
                time.sleep(max(0.0, min(next_sample, next_reload, end) - now))
                now = time.monotonic()
                if not _alive(daemon.pid):
                    raise SystemExit(f"the daemon died:\n{procs.log_tail('daemon')}")
                if now >= next_reload:
                    generation += 1
                    (checks_dir / "reload.yaml").write_text(reload_file(plan, target, generation))
                    reloads[_post(daemon.port, "/-/reload")] += 1
                    next_reload += args.reload_every
                if now >= next_sample:
                    samples.append(sample(daemon.pid))
                    live[0] += 1
                    live[1] += http_status(LOOPBACK, daemon.port, "/health/live") != 200
                    next_sample += args.sample_every
        samples.append(sample(daemon.pid))
        second = _snapshot(daemon)
        peak = peak_rss_bytes(daemon.pid)
        growth = []
        if args.tracemalloc:
            _trace_snapshot(daemon.pid, trace, 2)
            growth = heap_growth(Path(f"{trace}.1"), Path(f"{trace}.2"))
        log = procs.tmp / "daemon.log"
        procs.stop_all()
        text = log.read_bytes() if log.exists() else b""
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for name in procs.tmp.glob("*.log"):
                shutil.copy(name, args.keep_logs / name.name)
            shutil.copytree(checks_dir, args.keep_logs / "checks.d", dirs_exist_ok=True)
            rows = [f"{x.at - first.at:.1f},{x.rss},{x.fds},{x.threads}" for x in samples]
            csv = "seconds,rss_bytes,fds,threads\n" + "\n".join(rows) + "\n"
            (args.keep_logs / "samples.csv").write_text(csv)
    missed, due, by_group = missed_runs(plan, first, second)
    lag = sorted((le, second.lag.get(le, 0.0) - first.lag.get(le, 0.0)) for le in second.lag)
    return SoakFigures(
        plan=plan,
        window=second.at - first.at,
        warmup=args.warmup,
        samples=samples,
        peak=peak,
        missed=missed,
        due=due,
        missed_by_group=by_group,
        skipped=second.skipped - first.skipped,
        lag_p99=histogram_quantile(0.99, lag),
        scrape_times=sorted(scrapers.times),
        scrape_errors=scrapers.errors,
        reloads=reloads,
        live_failures=live[1],
        live_probes=live[0],
        cpu=second.cpu - first.cpu,
        log_lines=text.count(b"\n"),
        log_bytes=len(text),
        tracebacks=text.count(b"Traceback"),
        first_exception=first_exception(text),
        load=os.getloadavg()[0],
        commit=args.commit or _commit(),
        notes=growth,
    )


def _trace_snapshot(pid: int, trace: Path, n: int) -> None:
    """Ask the daemon (under :data:`TRACE_WRAPPER`) for tracemalloc snapshot ``n``; wait for it."""
    os.kill(pid, signal.SIGUSR2)
    wait_for(lambda: Path(f"{trace}.{n}").exists(), 300, f"tracemalloc snapshot {n}")


def heap_growth(before: Path, after: Path, top: int = 12) -> list[str]:
    """The allocation sites whose traced memory grew most between two snapshots.

    A site is the innermost frame of probed's own code and the frame that allocated (when that
    is elsewhere, such as a library or the standard library).
    """
    drop = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<*")]
    old = tracemalloc.Snapshot.load(str(before)).filter_traces(drop)
    new = tracemalloc.Snapshot.load(str(after)).filter_traces(drop)
    sizes: Counter[str] = Counter()
    blocks: Counter[str] = Counter()
    for stat in new.compare_to(old, "traceback"):
        frames = list(stat.traceback)  # oldest first
        ours = [f for f in frames if f"{os.sep}probed{os.sep}" in f.filename]
        inner = frames[-1] if frames else None
        where = f"{_short(ours[-1])}" if ours else "(no probed frame)"
        if inner is not None and (not ours or inner is not ours[-1]):
            where += f" <- allocated in {_short(inner)}"
        sizes[where] += stat.size_diff
        blocks[where] += stat.count_diff
    total = sum(s.size for s in new.statistics("filename")) - sum(
        s.size for s in old.statistics("filename")
    )
    out = [f"tracemalloc: traced Python memory {total / MB:+.2f} MB in the window; most growth:"]
    for where, size in sizes.most_common(top):
        out.append(f"  {size / MB:+8.3f} MB {blocks[where]:+8d} blocks  {where}")
    return out


def _short(frame: tracemalloc.Frame) -> str:
    parts = Path(frame.filename).parts
    keep = parts[parts.index("probed") :] if "probed" in parts else parts[-2:]
    return f"{'/'.join(keep)}:{frame.lineno}"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _trend_mb_per_hour(samples: list[Sample]) -> float:
    if len(samples) < 3 or samples[-1].at <= samples[0].at:
        return float("nan")
    slope = statistics.linear_regression([s.at for s in samples], [s.rss for s in samples]).slope
    return slope * 3600 / MB


def _tenths(samples: list[Sample]) -> str:
    """Median RSS of the first and the last tenth of the samples: a drift that one sample's
    noise (a hostile connection in flight) cannot make."""
    n = max(1, len(samples) // 10)
    head = statistics.median(x.rss for x in samples[:n])
    tail = statistics.median(x.rss for x in samples[-n:])
    return (
        f"medians of the first and last tenth {head / MB:.1f} -> {tail / MB:.1f} MB "
        f"({100 * (tail - head) / head:+.1f} %)"
    )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def print_soak(fig: SoakFigures) -> None:
    """The figure lines (``tests/test_benchmarks_smoke.py`` parses them)."""
    s0, s1 = fig.samples[0], fig.samples[-1]
    groups = ", ".join(f"{g} {n}" for g, n in fig.plan.counts.items())
    total = sum(fig.plan.counts.values())
    print(
        f"soak: {total} checks ({groups}); window {fig.window:.1f} s after {fig.warmup:g} s "
        f"warm-up; commit {fig.commit}; load average {fig.load:.2f} on {os.cpu_count()} CPUs"
    )
    drift = 100 * (s1.rss - s0.rss) / s0.rss
    print(
        f"RSS: start {s0.rss / MB:.1f} MB, end {s1.rss / MB:.1f} MB, drift {drift:+.1f} % "
        f"(target < 5 %); highest sample {max(s.rss for s in fig.samples) / MB:.1f} MB, "
        f"VmHWM {fig.peak / MB:.1f} MB; trend {_trend_mb_per_hour(fig.samples):+.1f} MB/h "
        f"over {len(fig.samples)} samples; {_tenths(fig.samples)}"
    )
    for label, attr in (("fds", "fds"), ("threads", "threads")):
        values = [getattr(s, attr) for s in fig.samples]
        print(f"{label}: start {values[0]}, end {values[-1]}, highest {max(values)}")
    where = ", ".join(f"{g} {n}" for g, n in fig.missed_by_group.most_common() if n)
    print(
        f"missed runs (checks no reload touches): {fig.missed} of {fig.due} due "
        f"(target 0){f' ({where})' if where else ''}; skipped runs {fig.skipped:.0f}; "
        f"lag p99 {1000 * fig.lag_p99:.1f} ms (bucket resolution)"
    )
    ms = [1000 * t for t in fig.scrape_times]
    errors = sum(fig.scrape_errors.values())
    detail = "; ".join(f"{n}x {e}" for e, n in fig.scrape_errors.most_common(3))
    print(
        f"scrapes: {len(ms)} answered 200 by 2 parallel scrapers, {errors} errors"
        f"{f' ({detail})' if detail else ''}; time p50 {_pct(ms, 0.5):.1f} ms, "
        f"p90 {_pct(ms, 0.9):.1f} ms, p99 {_pct(ms, 0.99):.1f} ms, "
        f"max {max(ms, default=float('nan')):.1f} ms"
    )
    answers = ", ".join(f"{code or 'no answer'} x{n}" for code, n in sorted(fig.reloads.items()))
    print(f"reloads: {sum(fig.reloads.values())} ({answers or 'none'})")
    print(f"liveness: {fig.live_probes} probes of /health/live, {fig.live_failures} not 200")
    print(
        f"daemon CPU: {fig.cpu:.1f} s in {fig.window:.1f} s "
        f"({100 * fig.cpu / fig.window:.0f} % of a core)"
    )
    print(
        f"log: {fig.log_lines} lines ({60 * fig.log_lines / (fig.window + fig.warmup):.0f} a "
        f"minute), {fig.log_bytes / 1024:.0f} KiB, {fig.tracebacks} tracebacks"
        + (f" (first: {fig.first_exception})" if fig.first_exception else "")
    )
    for line in fig.notes:
        print(line)
    ok = drift < 5 and fig.missed == 0 and errors == 0
    print(f"verdict: {'PASS' if ok else 'FAIL'} (RSS drift < 5 %, 0 missed runs, 0 scrape errors)")


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checks", type=int, default=1000, help="number of checks [1000]")
    p.add_argument("--duration", type=float, default=600.0, help="measured seconds [600]")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before the window [60]")
    p.add_argument("--scrape-every", type=float, default=1.0, help="scrape period, s [1]")
    p.add_argument("--reload-every", type=float, default=30.0, help="reload period, s [30]")
    p.add_argument("--sample-every", type=float, default=5.0, help="RSS/fd sample period [5]")
    p.add_argument(
        "--hostile-cap", type=int, default=16 * MB, help="bytes per hostile stream [16 MiB]"
    )
    p.add_argument("--log-level", default="INFO", help="the daemon's --log-level [INFO]")
    p.add_argument(
        "--target", choices=("auto", "nginx", "aiohttp"), default="auto", help="[auto: nginx]"
    )
    p.add_argument("--start-timeout", type=float, default=120.0, help="start-up wait, s [120]")
    p.add_argument("--keep-logs", type=Path, help="copy the daemon's and targets' logs to DIR")
    p.add_argument("--commit", help="commit to print [git describe --always --dirty]")
    p.add_argument(
        "--tracemalloc",
        type=int,
        metavar="FRAMES",
        help="diagnosis: trace the daemon's allocations (FRAMES deep) and print the sites whose "
        "memory grew in the window (slows the daemon: missed runs and RSS do not count then)",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse options, soak, print figures."""
    args = parser().parse_args(argv)
    if args.duration <= 0 or args.scrape_every <= 0 or args.reload_every <= 0:
        raise SystemExit("--duration, --scrape-every and --reload-every must be positive")
    try:
        print_soak(run_soak(args))
    except KeyboardInterrupt:
        raise SystemExit("interrupted; everything started was stopped") from None


if __name__ == "__main__":
    main()
