"""Probes per CPU-second: Debian's prometheus-blackbox-exporter against probed, in one run.

For each target type (``http``, ``tcp``) this script

1. starts a loopback target (nginx, or aiohttp when nginx is missing) and
   ``prometheus-blackbox-exporter`` with an ``http_2xx`` and a ``tcp_connect`` module on
   127.0.0.1, checks one probe answers ``probe_success 1``, then drives
   ``GET /probe?module=...&target=...`` with ``wrk -t1 -c32 -d10s`` (or, without wrk, an
   aiohttp client loop with 32 workers) and counts the exporter's CPU from ``/proc/PID/stat``;
2. runs the daemon benchmark (:mod:`daemon`) for the same type at a load that keeps probed
   below one core (defaults: 1,500 TCP checks, 1,000 HTTP checks, every 1 s) and takes its
   probes per daemon CPU-second over the measured window;
3. prints both figures and their ratio. The machine is shared and noisy, so only ratios
   measured in the same run mean much.

``--probed-probe`` measures probed's blackbox-compatible ``/probe`` instead of its scheduler:
the same module file (``--blackbox-config``) and target, driven with the same wrk load, the
daemon's CPU counted the same way; both figures and the ratio are printed (identical work per
request this time: one HTTP request in, one probe out).

``--probed-loop`` chooses the event loop of probed's daemons (``auto``: uvloop when installed,
``asyncio``, ``uvloop``, or ``both``: probed is measured on each, one after the other, against
the same blackbox figure).

The two are not doing identical work: blackbox is driven as fast as it can go (one HTTP
request in, one probe out, over a keep-alive connection), while probed schedules its own
probes and keeps per-check state and metrics. Both open a fresh connection to the target per
probe.

    python benchmarks/blackbox.py [--types http,tcp] [--duration 10] [--connections 32]
                                  [--probed-probe] [--probed-loop auto|asyncio|uvloop|both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemon as daemon_bench
from _targets import (
    LOOPBACK,
    Procs,
    Target,
    cpu_seconds,
    free_port,
    http_status,
    peak_rss_bytes,
    scrape,
    start_target,
    wait_for,
)

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
MB = 1024 * 1024
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
"""
MODULES = {"http": "http_2xx", "tcp": "tcp_connect"}


@dataclass(frozen=True)
class BlackboxFigures:
    """One driven run of the exporter."""

    kind: str
    driver: str
    probes: int
    errors: int
    seconds: float
    cpu: float
    peak_rss: int

    @property
    def per_cpu_second(self) -> float:
        """Probes per CPU-second of the exporter process."""
        return self.probes / self.cpu if self.cpu > 0 else float("inf")


def _probe_path(kind: str, target: Target) -> str:
    aim = target.url if kind == "http" else target.address
    return "/probe?" + urllib.parse.urlencode({"module": MODULES[kind], "target": aim})


def _run_wrk(url: str, connections: int, duration: float) -> tuple[int, int]:
    """Requests completed and non-2xx/socket errors from one ``wrk`` run."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", url]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    found = re.search(r"(\d+) requests in", out)
    if found is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout) (\d+)", out))
    return int(found[1]), errors


async def _client_loop(url: str, connections: int, duration: float) -> tuple[int, int]:
    """The aiohttp fallback driver: ``connections`` workers, keep-alive, until ``duration``."""
    import aiohttp

    done = errors = 0
    deadline = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    done += 1
                    errors += resp.status != 200

        await asyncio.gather(*(worker() for _ in range(connections)))
    return done, errors


def run_blackbox(kind: str, args: argparse.Namespace, probed: bool = False) -> BlackboxFigures:
    """Start target and exporter, check one probe, drive it, count the exporter's CPU.

    :param probed: drive probed's ``/probe`` (same module file) instead of blackbox_exporter.
    """
    exe = shutil.which("prometheus-blackbox-exporter") or BLACKBOX
    if not probed and not Path(exe).exists():
        raise SystemExit("prometheus-blackbox-exporter not found (apt-get install -y it)")
    who = "probed /probe" if probed else "blackbox"
    with Procs() as procs:
        target = start_target(procs, args.target)
        config = procs.tmp / "blackbox.yml"
        config.write_text(BLACKBOX_CONFIG)
        port = free_port()
        if probed:
            checks = procs.tmp / "no-checks"
            checks.mkdir()
            argv = [sys.executable, "-m", "probed", "run", "--checks-dir", str(checks)]
            argv += ["--listen", f"{LOOPBACK}:{port}", "--blackbox-config", str(config)]
            proc = procs.start([*argv, "--log-level", "WARNING"], "probed")
            ready = "/health/live"
        else:
            argv = [exe, f"--config.file={config}", f"--web.listen-address={LOOPBACK}:{port}"]
            proc = procs.start([*argv, "--log.level=warn"], "blackbox")
            ready = "/metrics"
        wait_for(lambda: http_status(LOOPBACK, port, ready) == 200, 30, who)
        path = _probe_path(kind, target)
        body = scrape(LOOPBACK, port, path).body.decode()
        if not re.search(r"^probe_success 1$", body, re.MULTILINE):
            raise SystemExit(f"{who} probe failed on {path}:\n{body}")
        url = f"http://{LOOPBACK}:{port}{path}"
        cpu0 = cpu_seconds(proc.pid)
        start = time.monotonic()
        if shutil.which("wrk") and args.driver in ("auto", "wrk"):
            driver = f"wrk -t1 -c{args.connections} -d{round(args.duration)}s"
            probes, errors = _run_wrk(url, args.connections, args.duration)
        else:
            driver = f"aiohttp loop, {args.connections} workers, {args.duration:g} s"
            probes, errors = asyncio.run(_client_loop(url, args.connections, args.duration))
        seconds = time.monotonic() - start
        cpu = cpu_seconds(proc.pid) - cpu0
        after = scrape(LOOPBACK, port, path).body.decode()
        if not re.search(r"^probe_success 1$", after, re.MULTILINE):
            raise SystemExit(f"{who} probe failed after the run on {path}:\n{after}")
        figures = BlackboxFigures(
            kind, driver, probes, errors, seconds, cpu, peak_rss_bytes(proc.pid)
        )
        procs.stop_all()
    return figures


def run_probed(kind: str, args: argparse.Namespace) -> daemon_bench.LoadFigures:
    """The daemon benchmark for ``kind`` at the configured load."""
    checks = args.probed_tcp_checks if kind == "tcp" else args.probed_http_checks
    options = daemon_bench.parser().parse_args(
        [
            "--type",
            kind,
            "--checks",
            str(checks),
            "--interval",
            str(args.probed_interval),
            "--duration",
            str(args.probed_duration),
            "--target",
            args.target,
            "--scrapes",
            "1",
        ]
    )
    options.timeout = min(options.interval / 2, 5.0)
    return daemon_bench.run_load(options)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--types", default="http,tcp", help="comma-separated: http, tcp [http,tcp]")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to drive blackbox [10]")
    p.add_argument("--connections", type=int, default=32, help="driver connections [32]")
    p.add_argument("--driver", choices=("auto", "wrk", "aiohttp"), default="auto")
    p.add_argument(
        "--target", choices=("auto", "nginx", "aiohttp"), default="auto", help="[auto: nginx]"
    )
    p.add_argument("--probed-tcp-checks", type=int, default=1500, help="[1500]")
    p.add_argument("--probed-http-checks", type=int, default=1000, help="[1000]")
    p.add_argument("--probed-interval", type=float, default=1.0, help="seconds [1]")
    p.add_argument("--probed-duration", type=float, default=15.0, help="measured seconds [15]")
    p.add_argument("--skip-probed", action="store_true", help="measure blackbox only")
    p.add_argument(
        "--probed-loop",
        choices=("auto", "asyncio", "uvloop", "both"),
        default="auto",
        help="event loop of probed's daemons (PROBED_LOOP); both: measure probed on each [auto]",
    )
    p.add_argument(
        "--probed-probe",
        action="store_true",
        help="compare with probed's /probe (same module file, same load) instead of its "
        "scheduled checks",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Run each type: blackbox, then probed (on each loop asked for), then print the ratio."""
    args = parser().parse_args(argv)
    kinds = [k.strip() for k in args.types.split(",") if k.strip()]
    if not kinds or any(k not in MODULES for k in kinds):
        raise SystemExit("--types takes http and/or tcp")
    loops = ["asyncio", "uvloop"] if args.probed_loop == "both" else [args.probed_loop]
    try:
        for kind in kinds:
            bb = run_blackbox(kind, args)
            print(
                f"blackbox {kind}: {bb.probes} probes in {bb.seconds:.1f} s "
                f"({bb.probes / bb.seconds:.0f}/s, {bb.errors} errors) with {bb.driver}; "
                f"CPU {bb.cpu:.2f} s; {bb.per_cpu_second:.0f} probes per CPU-second; "
                f"peak RSS {bb.peak_rss / MB:.1f} MB"
            )
            if args.skip_probed:
                continue
            for loop in loops:
                os.environ["PROBED_LOOP"] = loop  # the daemons started below inherit it
                on = f" ({loop} loop)" if loop != "auto" else ""
                if args.probed_probe:
                    ours = run_blackbox(kind, args, probed=True)
                    print(
                        f"probed /probe {kind}{on}: {ours.probes} probes in {ours.seconds:.1f} s "
                        f"({ours.probes / ours.seconds:.0f}/s, {ours.errors} errors) with "
                        f"{ours.driver}; CPU {ours.cpu:.2f} s; {ours.per_cpu_second:.0f} probes "
                        f"per CPU-second; peak RSS {ours.peak_rss / MB:.1f} MB"
                    )
                    print(
                        f"ratio {kind} /probe{on}: probed / blackbox probes per CPU-second = "
                        f"{ours.per_cpu_second / bb.per_cpu_second:.2f}"
                    )
                    continue
                pr = run_probed(kind, args)
                outcome = ", ".join(f"{k} {int(v)}" for k, v in sorted(pr.results.items()) if v)
                print(
                    f"probed {kind}{on}: {pr.checks} checks every {pr.interval:g} s, "
                    f"{pr.achieved:.0f} probes/s ({outcome}) over {pr.window:.1f} s; "
                    f"CPU {pr.cpu:.2f} s ({100 * pr.cpu / pr.window:.0f} % of a core); "
                    f"{pr.probes_per_cpu_second:.0f} probes per CPU-second; "
                    f"peak RSS {pr.rss_peak / MB:.1f} MB"
                )
                print(
                    f"ratio {kind}{on}: probed / blackbox probes per CPU-second = "
                    f"{pr.probes_per_cpu_second / bb.per_cpu_second:.2f}"
                )
    except KeyboardInterrupt:
        raise SystemExit("interrupted; everything started was stopped") from None


if __name__ == "__main__":
    main()
