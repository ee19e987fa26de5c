"""Probes per CPU-second of probed's HTTP probe client versus a bare aiohttp ClientSession.

Starts a target on loopback in a separate process (nginx if installed, else an aiohttp server),
then runs N probes with C concurrent in this process, once with each client, counting only this
process's CPU time (``time.process_time``: user + system). Both clients open a fresh connection
per probe (``Connection: close`` / ``force_close=True``), as a monitoring probe must; probed's
client also records the resolve/connect/tls/processing/transfer phases.

    python benchmarks/http_client.py [--probes 20000] [--concurrency 32] [--target nginx|aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probed.checks._httpclient import ClientConfig, HttpRequest, Url, fetch

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
    uwsgi_temp_path {dir}; scgi_temp_path {dir};
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "OK\\n"; }}
    }}
}}
"""

AIOHTTP_TARGET = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_get("/", lambda r: web.Response(text="OK\\n"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"target did not start on port {port}")


def start_target(kind: str, port: int, workdir: str) -> subprocess.Popen[bytes]:
    if kind == "nginx":
        conf = Path(workdir) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
        cmd = [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-e", "stderr"]
    else:
        cmd = [sys.executable, "-c", AIOHTTP_TARGET, str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


async def run_many(
    probe: Callable[[], Awaitable[None]], total: int, concurrency: int
) -> tuple[float, float]:
    """Run ``total`` probes, ``concurrency`` at a time; return (CPU seconds, wall seconds)."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await probe()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def bench_probed(url: str, total: int, concurrency: int) -> tuple[float, float]:
    request = HttpRequest(Url.parse(url))
    config = ClientConfig()
    phases_seen: set[str] = set()

    async def probe() -> None:
        response = await fetch(request, config)
        if response.status != 200 or response.body != b"OK\n":
            raise RuntimeError(f"unexpected answer {response.status} {response.body!r}")
        phases_seen.update(response.phases)

    await run_many(probe, min(500, total), concurrency)  # warm-up
    result = await run_many(probe, total, concurrency)
    if phases_seen != {"connect", "processing", "transfer"}:
        raise RuntimeError(f"phases missing: {phases_seen}")
    return result


async def bench_aiohttp(url: str, total: int, concurrency: int) -> tuple[float, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def probe() -> None:
            async with session.get(url) as response:
                body = await response.read()
                if response.status != 200 or body != b"OK\n":
                    raise RuntimeError(f"unexpected answer {response.status} {body!r}")

        await run_many(probe, min(500, total), concurrency)
        return await run_many(probe, total, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--target",
        choices=["nginx", "aiohttp"],
        default="nginx" if shutil.which("nginx") else "aiohttp",
    )
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as workdir:
        proc = start_target(args.target, port, workdir)
        try:
            figures = {}
            for name, bench in (("probed", bench_probed), ("aiohttp", bench_aiohttp)):
                cpu, wall = asyncio.run(bench(url, args.probes, args.concurrency))
                figures[name] = args.probes / cpu
                print(
                    f"{name:8s} {args.probes} probes, concurrency {args.concurrency}: "
                    f"{cpu:.2f} CPU-s, {wall:.2f} wall-s -> {args.probes / cpu:,.0f} probes/CPU-s "
                    f"({args.probes / wall:,.0f}/s wall)"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(
        f"target {args.target} (pid {os.getpid()} measured); probed/aiohttp ratio: "
        f"{figures['probed'] / figures['aiohttp']:.2f}x"
    )


if __name__ == "__main__":
    main()
