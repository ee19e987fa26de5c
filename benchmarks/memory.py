"""Memory per check of the real daemon, and the RSS of the daemon with only the embedded checks.

For each check type (``tcp``, ``http``) the daemon (``python -m probed run``) is started twice,
with ``--small`` and with ``--large`` generated checks aimed at a loopback target (nginx, or an
aiohttp server when nginx is not installed), interval ``--interval`` (1 h: every check runs
once at start-up, then idles). Once ``/health/startup`` answers (every check has finished its
first run) and ``--settle`` seconds have passed, the figures are read; then ``/metrics`` is
scraped twice and they are read again (render caches included). The per-check figure is the
slope ``(large - small) / (large - small checks)``:

- ``RSS`` from ``/proc/PID/status`` of a plain daemon;
- ``tracemalloc`` from a second daemon run under a wrapper that traces allocations (one frame)
  and, on SIGUSR2, dumps a snapshot and a count of gc-tracked objects by type; the largest
  differences by ``file:line`` and by type are printed, per check.

The status page's run history (``status_page.history``, 9 bytes a run in flat arrays) grows
with the runs, so it is measured on its own, in-process, after 1, 10 and 100 runs.

``embedded`` is the RSS of ``probed run`` with no checks dir (the three embedded host checks),
after its first runs, and which optional drivers it imported (none should be).

    python benchmarks/memory.py                          # tcp and http, 1,000 -> 11,000
    python benchmarks/memory.py --types tcp --large 3000 --no-trace

Loopback only; every daemon and target is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _targets import LOOPBACK, Procs, Target, free_port, http_status, scrape, start_target, wait_for
from daemon import write_profile

REPO = Path(__file__).resolve().parent.parent
KiB = 1024
MB = 1024 * 1024
OPTIONAL_DRIVERS = ("grpc", "asyncssh", "aiomysql", "apprise", "h2", "brotli", "asyncpg", "redis")

# The daemon runs under this wrapper; each SIGUSR2 writes $PROBED_MEM_TRACE.N (a tracemalloc
# snapshot) and $PROBED_MEM_TRACE.N.json (gc-tracked objects by type, loaded modules).
TRACE_WRAPPER = """\
import gc, json, os, runpy, signal, sys, tracemalloc
tracemalloc.start(1)
out, taken = os.environ["PROBED_MEM_TRACE"], [0]
def dump(signum, frame):
    taken[0] += 1
    try:
        _dump()
    except BaseException:  # tell the benchmark instead of stopping the daemon
        import traceback
        with open(f"{out}.{taken[0]}.json", "w") as f:
            json.dump({"error": traceback.format_exc()}, f)
def _dump():
    gc.collect()
    types = {}
    gc.unfreeze()  # the daemon freezes its configuration: frozen objects are not listed
    objects = gc.get_objects()
    gc.freeze()
    for obj in objects:
        kind = type(obj)
        parts = (getattr(kind, "__module__", "?"), getattr(kind, "__qualname__", "?"))
        name = ".".join(p if isinstance(p, str) else "?" for p in parts)
        count, size = types.get(name, (0, 0))
        types[name] = (count + 1, size + sys.getsizeof(obj))
    del objects
    info = {"types": types, "modules": sorted(sys.modules)}
    snap = tracemalloc.take_snapshot()  # after the count: its traces are tuples
    with open(f"{out}.{taken[0]}.json.tmp", "w") as f:
        json.dump(info, f)
    snap.dump(f"{out}.tmp")
    os.replace(f"{out}.{taken[0]}.json.tmp", f"{out}.{taken[0]}.json")
    os.replace(f"{out}.tmp", f"{out}.{taken[0]}")
signal.signal(signal.SIGUSR2, dump)
sys.argv = ["probed", *sys.argv[1:]]
runpy.run_module("probed", run_name="__main__", alter_sys=True)
"""
# Plain daemons: only the loaded modules, on SIGUSR2 (same file protocol, no tracing).
MODULES_WRAPPER = """\
import json, os, runpy, signal, sys
out = os.environ["PROBED_MEM_TRACE"]
def dump(signum, frame):
    with open(f"{out}.tmp", "w") as f:
        json.dump({"modules": sorted(sys.modules)}, f)
    os.replace(f"{out}.tmp", f"{out}.json")
signal.signal(signal.SIGUSR2, dump)
def mallocstats():
    r, w = os.pipe()
    saved = os.dup(2)
    os.dup2(w, 2)
    os.close(w)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    with os.fdopen(r, "rb") as f:
        lines = f.read().decode().splitlines()
    def num(label):
        for line in lines:
            if line.startswith(label):
                return int(line.rpartition("=")[2].strip().replace(",", ""))
        return 0
    def product(marker):
        for line in lines:
            if marker in line:
                words = line.split()
                return int(words[0]) * int(words[words.index("*") + 1])
        return 0
    return {
        "arenas": product(" bytes/arena"),
        "in_blocks": num("# bytes in allocated blocks"),
        "free_blocks": num("# bytes in available blocks"),
        "free_pools": product(" unused pools "),
    }
def alloc(signum, frame):
    import ctypes, gc
    stats = mallocstats()
    gc.collect()
    stats["garbage"] = stats["in_blocks"] - mallocstats()["in_blocks"]
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            stats["rss_trimmed"] = int(line.split()[1]) * 1024
    with open(f"{out}.alloc.tmp", "w") as f:
        json.dump(stats, f)
    os.replace(f"{out}.alloc.tmp", f"{out}.alloc.json")
signal.signal(signal.SIGUSR1, alloc)
sys.argv = ["probed", *sys.argv[1:]]
runpy.run_module("probed", run_name="__main__", alter_sys=True)
"""


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def write_checks(
    directory: Path,
    kind: str,
    count: int,
    interval: float,
    timeout: float,
    target: Target,
    histogram: bool = True,
    distinct: bool = False,
) -> None:
    """One ``bench.yaml`` with ``count`` checks of ``kind`` aimed at ``target``.

    With ``distinct`` no two checks have equal options, as when each probes its own target:
    an ``http`` check's URL has its own query (``?c=N``), a ``tcp`` check its own
    ``max_read_size`` (which only matters with ``expect``, so the probe is the same).
    """
    option = f"url: {target.url}" if kind == "http" else f"address: {target.address}"
    lines = [
        "defaults:",
        f"  interval: {_duration(interval)}",
        f"  timeout: {_duration(timeout)}",
        *([] if histogram else ["  duration_histogram: false"]),
        "checks:",
    ]
    for i in range(count):
        own = ""
        if distinct:
            own = f"?c={i}" if kind == "http" else f", max_read_size: {65536 + i}"
        lines.append(f"  - {{name: bench-{i:05d}, type: {kind}, {option}{own}}}")
    (directory / "bench.yaml").write_text("\n".join(lines) + "\n")


def rss_bytes(pid: int) -> int:
    """Resident set size from ``/proc/PID/status`` (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KiB
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Reading:
    """What one daemon showed: RSS idle and after scrapes, and the traced data if traced."""

    checks: int
    rss_idle: int
    rss_scraped: int
    traces: list[tracemalloc.Snapshot] = field(default_factory=list)
    types: list[dict[str, tuple[int, int]]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    alloc: dict[str, int] = field(default_factory=dict)


def _start(
    procs: Procs,
    checks_dir: Path | None,
    wrapper: str,
    trace: Path,
    timeout: float,
    profile: str = "default",
) -> tuple[int, int]:
    port = free_port()
    argv = [sys.executable, "-c", wrapper, "run"]
    if checks_dir is not None:
        argv += ["--checks-dir", str(checks_dir)]
    if profile != "default":
        config = procs.tmp / "probed.yaml"
        write_profile(config, profile)
        argv += ["--config", str(config)]
    argv += ["--listen", f"{LOOPBACK}:{port}", "--log-level", "WARNING"]
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PROBED_MEM_TRACE=str(trace), PYTHONPATH=pythonpath)
    cwd = checks_dir.parent if checks_dir is not None else procs.tmp
    proc = procs.start(argv, "daemon", cwd=cwd, env=env)

    def started() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited ({proc.returncode}):\n{procs.log_tail('daemon')}")
        return http_status(LOOPBACK, port, "/health/startup") == 200

    wait_for(started, timeout, "the daemon's /health/startup")
    return proc.pid, port


def _dump(pid: int, path: Path) -> None:
    os.kill(pid, signal.SIGUSR2)
    wait_for(path.exists, 600, f"{path.name} from the daemon")


def _wait_snapshot(trace: Path, n: int) -> None:
    info = json.loads(Path(f"{trace}.{n}.json").read_text())
    if "error" in info:
        raise SystemExit(f"the daemon could not write snapshot {n}:\n{info['error']}")
    wait_for(Path(f"{trace}.{n}").exists, 60, f"snapshot {n}")


def measure(
    args: argparse.Namespace, target: Target, kind: str, checks: int, traced: bool
) -> Reading:
    """Start one daemon with ``checks`` checks of ``kind``; read it idle and after 2 scrapes."""
    with Procs() as procs:
        checks_dir = procs.tmp / "checks.d"
        checks_dir.mkdir()
        write_checks(
            checks_dir,
            kind,
            checks,
            args.interval,
            args.timeout,
            target,
            args.histogram,
            args.distinct,
        )
        trace = procs.tmp / "trace"
        wrapper = TRACE_WRAPPER if traced else MODULES_WRAPPER
        pid, port = _start(procs, checks_dir, wrapper, trace, args.start_timeout, args.profile)
        time.sleep(args.settle)
        reading = Reading(checks, rss_bytes(pid), 0)
        if args.malloc_stats and not traced:
            os.kill(pid, signal.SIGUSR1)
            wait_for(Path(f"{trace}.alloc.json").exists, 60, "allocator stats from the daemon")
            reading.alloc = json.loads(Path(f"{trace}.alloc.json").read_text())
        if traced:
            _dump(pid, Path(f"{trace}.1.json"))
            _wait_snapshot(trace, 1)
        for _ in range(2):
            scrape(LOOPBACK, port)
        time.sleep(args.settle)
        reading.rss_scraped = rss_bytes(pid)
        if traced:
            _dump(pid, Path(f"{trace}.2.json"))
            _wait_snapshot(trace, 2)
            for n in (1, 2):
                reading.traces.append(tracemalloc.Snapshot.load(f"{trace}.{n}"))
                info = json.loads(Path(f"{trace}.{n}.json").read_text())
                reading.types.append({k: tuple(v) for k, v in info["types"].items()})
                reading.modules = info["modules"]
        procs.stop_all()
    return reading


def _traced_total(snap: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snap.statistics("filename"))


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1].lstrip("/")
    return os.path.relpath(filename, REPO) if filename.startswith(str(REPO)) else filename


_DROP = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<*")]


def top_lines(small: tracemalloc.Snapshot, large: tracemalloc.Snapshot, n: int, top: int) -> str:
    """The largest per-check differences by ``file:line``."""
    diff = large.filter_traces(_DROP).compare_to(small.filter_traces(_DROP), "lineno")
    diff.sort(key=lambda d: d.size_diff, reverse=True)
    out = []
    for stat in diff[:top]:
        frame = stat.traceback[0]
        out.append(
            f"    {stat.size_diff / n:8.0f} B  {stat.count_diff / n:6.2f} blocks  "
            f"{_short(frame.filename)}:{frame.lineno}"
        )
    return "\n".join(out)


def top_types(
    small: dict[str, tuple[int, int]], large: dict[str, tuple[int, int]], n: int, top: int
) -> str:
    """The largest per-check differences of gc-tracked objects by type (shallow sizes)."""
    rows = []
    for name, (count, size) in large.items():
        count0, size0 = small.get(name, (0, 0))
        rows.append(((size - size0) / n, (count - count0) / n, name))
    rows.sort(reverse=True)
    return "\n".join(
        f"    {size:8.0f} B  {count:6.2f} objects  {name}" for size, count, name in rows[:top]
    )


def history_cost() -> str:
    """Bytes per check of the status page's RunLog after 1, 10 and 100 runs (in-process)."""
    from probed._status_history import RunLog

    out = []
    for runs in (1, 10, 100):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        logs = [RunLog(100) for _ in range(1000)]
        for log in logs:
            for i in range(runs):
                log.add(0, 0.01, 1.7e9 + i)
        size = (tracemalloc.get_traced_memory()[0] - before) / len(logs)
        tracemalloc.stop()
        del logs
        out.append(f"{runs} run{'s' if runs > 1 else ''}: {size:.0f} B")
    return "status_page.history (100 runs, default): " + ", ".join(out) + " per check"


def state_cost() -> str:
    """Bytes per check of its state (``CheckState`` with the default 10 recent runs and 100
    runs of status-page history, and its last result) after 1, 10 and 100 passing runs of a
    TCP-like result (in-process): the steady state of a check that keeps running."""
    from probed.check import Result, Status
    from probed.checks.tcp import TcpCheck
    from probed.settings import Settings
    from probed.state import CheckState
    from probed.testing import make_spec

    spec = make_spec(TcpCheck, name="bench", address="127.0.0.1:80")
    settings = Settings()
    out = []
    for runs in (1, 10, 100):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        kept = settings.status_page.kept
        states = [CheckState(spec, settings.history, kept) for _ in range(1000)]
        for i in range(runs):
            for state in states:
                seconds = 0.0003 + i * 1e-7
                state.record(
                    Result(
                        Status.OK,
                        "",
                        f"127.0.0.1:80: connected in {seconds * 1000:.1f}ms",
                        phases={"connect": seconds},
                        duration=seconds * 1.1,
                        timestamp=1.7e9 + i * 60.0,
                    )
                )
        size = (tracemalloc.get_traced_memory()[0] - before) / len(states)
        tracemalloc.stop()
        del states
        out.append(f"{runs} run{'s' if runs > 1 else ''}: {size:.0f} B")
    return "check state with its last result (defaults): " + ", ".join(out) + " per check"


def embedded(args: argparse.Namespace) -> tuple[int, list[str]]:
    """RSS of ``probed run`` with no checks dir after its first runs; the optional drivers
    it imported."""
    with Procs() as procs:
        trace = procs.tmp / "modules"
        pid, _port = _start(procs, None, MODULES_WRAPPER, trace, args.start_timeout)
        time.sleep(args.settle)
        rss = rss_bytes(pid)
        _dump(pid, Path(f"{trace}.json"))
        modules = json.loads(Path(f"{trace}.json").read_text())["modules"]
        procs.stop_all()
    drivers = [m for m in OPTIONAL_DRIVERS if m in modules]
    return rss, drivers


def run_type(args: argparse.Namespace, target: Target, kind: str) -> None:
    """Print the per-check figures of one check type."""
    n = args.large - args.small
    print(
        f"{kind}: per extra check from {args.small:,} to {args.large:,} checks "
        f"(each ran once; interval {args.interval:g} s"
        f"{'' if args.histogram else '; duration_histogram: false'}"
        f"{'; distinct options' if args.distinct else ''}"
        f"{'; metrics profile ' + args.profile if args.profile != 'default' else ''})"
    )
    if args.rss:
        small = measure(args, target, kind, args.small, traced=False)
        large = measure(args, target, kind, args.large, traced=False)
        print(
            f"  RSS: {(large.rss_idle - small.rss_idle) / n:.0f} B idle, "
            f"{(large.rss_scraped - small.rss_scraped) / n:.0f} B after 2 /metrics scrapes "
            f"({small.rss_idle / MB:.1f} -> {large.rss_idle / MB:.1f} MB idle, "
            f"{small.rss_scraped / MB:.1f} -> {large.rss_scraped / MB:.1f} MB scraped)"
        )
        if args.malloc_stats:
            a, b = small.alloc, large.alloc
            print(
                "  idle, allocators (per check): "
                + ", ".join(
                    f"{label} {(b[key] - a[key]) / n:.0f} B"
                    for key, label in (
                        ("rss_trimmed", "RSS after gc and malloc_trim"),
                        ("arenas", "obmalloc arenas"),
                        ("in_blocks", "in use"),
                        ("garbage", "of it cyclic garbage"),
                        ("free_blocks", "free blocks"),
                        ("free_pools", "free pools"),
                    )
                )
            )
    if args.trace:
        small = measure(args, target, kind, args.small, traced=True)
        large = measure(args, target, kind, args.large, traced=True)
        idle = (_traced_total(large.traces[0]) - _traced_total(small.traces[0])) / n
        scraped = (_traced_total(large.traces[1]) - _traced_total(small.traces[1])) / n
        print(f"  tracemalloc: {idle:.0f} B idle, {scraped:.0f} B after 2 /metrics scrapes")
        print("  idle, by file:line (per check):")
        print(top_lines(small.traces[0], large.traces[0], n, args.top))
        print("  added by the scrapes, by file:line (per check):")
        scrape_small = small.traces[1].filter_traces(_DROP)
        scrape_large = large.traces[1].filter_traces(_DROP)
        diff_s = scrape_large.compare_to(large.traces[0].filter_traces(_DROP), "lineno")
        base_s = scrape_small.compare_to(small.traces[0].filter_traces(_DROP), "lineno")
        base = {(d.traceback[0].filename, d.traceback[0].lineno): d.size_diff for d in base_s}
        rows = [
            (
                d.size_diff - base.get((d.traceback[0].filename, d.traceback[0].lineno), 0),
                d.traceback[0],
            )
            for d in diff_s
        ]
        rows.sort(key=lambda r: r[0], reverse=True)
        for size, frame in rows[: max(3, args.top // 3)]:
            print(f"    {size / n:8.0f} B  {_short(frame.filename)}:{frame.lineno}")
        print("  idle, gc-tracked objects by type (shallow, per check):")
        print(top_types(small.types[0], large.types[0], n, args.top))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--types", default="tcp,http", help="check types, comma-separated [tcp,http]")
    p.add_argument("--small", type=int, default=1000, help="checks of the small daemon [1000]")
    p.add_argument("--large", type=int, default=11000, help="checks of the large daemon [11000]")
    p.add_argument("--interval", type=float, default=3600.0, help="check interval, s [3600]")
    p.add_argument("--timeout", type=float, default=5.0, help="check timeout, s [5]")
    p.add_argument("--settle", type=float, default=2.0, help="wait before reading, s [2]")
    p.add_argument("--start-timeout", type=float, default=300.0, help="s [300]")
    p.add_argument("--target", default="auto", choices=("auto", "nginx", "aiohttp"))
    p.add_argument("--top", type=int, default=12, help="rows of the breakdowns [12]")
    p.add_argument(
        "--no-histogram",
        dest="histogram",
        action="store_false",
        help="the checks set duration_histogram: false (one duration series, not 14)",
    )
    p.add_argument(
        "--distinct",
        action="store_true",
        help="no two checks have equal options (each http URL its own query), as when each "
        "probes its own target; by default all probe the same one",
    )
    p.add_argument(
        "--malloc-stats",
        action="store_true",
        help="also read the idle daemons' allocators: CPython's arenas (in use, of it "
        "garbage a collection frees, free blocks, free pools) and the RSS after a collection "
        "and malloc_trim (the scraped figures are then read after those)",
    )
    p.add_argument(
        "--profile",
        default="default",
        choices=("default", "large"),
        help="metrics settings: large = the documented large-scale settings "
        "(docs/metrics.md#large-scale-settings), as benchmarks/daemon.py --profile large",
    )
    p.add_argument("--no-rss", dest="rss", action="store_false", help="skip the RSS slope")
    p.add_argument("--no-trace", dest="trace", action="store_false", help="skip tracemalloc")
    p.add_argument("--no-embedded", dest="embedded", action="store_false")
    args = p.parse_args()
    if args.large <= args.small:
        raise SystemExit("--large must be more than --small")
    print(f"probed memory benchmark: python {sys.version.split()[0]}, pid {os.getpid()}")
    print(history_cost())
    print(state_cost())
    with Procs() as procs:
        target = start_target(procs, args.target)
        for kind in args.types.split(","):
            run_type(args, target, kind.strip())
    if args.embedded:
        rss, drivers = embedded(args)
        print(
            f"embedded: probed run with no checks dir: RSS {rss / MB:.1f} MB; optional drivers "
            f"imported: {', '.join(drivers) or 'none'}"
        )


if __name__ == "__main__":
    main()
