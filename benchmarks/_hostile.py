"""Hostile and failing loopback targets for ``soak.py``: one asyncio process, one port per kind.

    python benchmarks/_hostile.py [--cap BYTES] [--flap-period S] KIND:PORT ...

Kinds (each binds ``127.0.0.1:PORT`` and prints ``ready`` once every port listens):

- ``status500``: any HTTP request gets ``500 Internal Server Error``.
- ``flap``: ``200`` and ``500`` alternate every ``--flap-period`` seconds (wall clock).
- ``endless_header``: ``HTTP/1.1 200 OK`` then one header line that never ends.
- ``endless_status``: a status line that never ends.
- ``redis_bulk``: any command gets the bulk reply header ``$999999999999`` and bytes behind it.
- ``redis_line``: any command gets a simple-string reply (``+aaaa...``) that never ends.
- ``slowloris``: ``HTTP/1.1 200 OK`` then one header byte every 0.5 s, never the blank line.
- ``blackhole``: accepts and never answers.

"Never ends" means: written as fast as the client reads, until the client closes or ``--cap``
bytes (default 16 MiB) went out on that connection; then the connection is held silently until
the client closes it. The cap keeps a client without read limits from taking the shared
machine down (it still shows as RSS growth). Every connection is dropped after 120 s at most.
Standard library only; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

CHUNK = b"a" * 65536
MAX_LIFETIME = 120.0
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request_head(reader: asyncio.StreamReader) -> None:
    """Read an HTTP request head (or whatever the client sends first, up to 64 KiB)."""
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)


async def _hold(reader: asyncio.StreamReader) -> None:
    """Wait until the client closes (reading and dropping whatever it sends)."""
    while await reader.read(65536):
        pass


async def _stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, cap: int
) -> None:
    writer.write(head)
    sent = len(head)
    while sent < cap:
        writer.write(CHUNK)
        await writer.drain()
        sent += len(CHUNK)
    await _hold(reader)


def _http(status: str) -> bytes:
    body = f"{status}\n".encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def handlers(cap: int, flap_period: float) -> dict[str, Handler]:
    """One connection handler per kind."""

    async def status500(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(_http("500 Internal Server Error"))
        await writer.drain()

    async def flap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        up = int(time.time() / flap_period) % 2 == 0
        writer.write(_http("200 OK" if up else "500 Internal Server Error"))
        await writer.drain()

    async def endless_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        await _stream(reader, writer, b"HTTP/1.1 200 OK\r\nX-Endless: ", cap)

    async def endless_status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        await _stream(reader, writer, b"HTTP/1.1 200 ", cap)

    async def redis_bulk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await _stream(reader, writer, b"$999999999999\r\n", cap)

    async def redis_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await _stream(reader, writer, b"+", cap)

    async def slowloris(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        pending = asyncio.ensure_future(_hold(reader))
        try:
            line = b"HTTP/1.1 200 OK\r\n"
            while not pending.done():
                for i in range(len(line)):
                    writer.write(line[i : i + 1])
                    await writer.drain()
                    await asyncio.wait([pending], timeout=0.5)
                    if pending.done():
                        return
                line = b"X-Slow: a\r\n"
        finally:
            pending.cancel()

    async def blackhole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _hold(reader)

    return {
        "status500": status500,
        "flap": flap,
        "endless_header": endless_header,
        "endless_status": endless_status,
        "redis_bulk": redis_bulk,
        "redis_line": redis_line,
        "slowloris": slowloris,
        "blackhole": blackhole,
    }


def guarded(handler: Handler) -> Handler:
    """Bound a handler's lifetime, swallow client disconnects, always close the socket."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(handler(reader, writer), MAX_LIFETIME)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return run


async def serve(specs: list[tuple[str, int]], cap: int, flap_period: float) -> None:
    """Listen on every ``(kind, port)`` and serve until killed."""
    table = handlers(cap, flap_period)
    servers = [
        await asyncio.start_server(guarded(table[kind]), "127.0.0.1", port, backlog=4096)
        for kind, port in specs
    ]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    """Parse ``KIND:PORT`` arguments and serve."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cap", type=int, default=16 * 1024 * 1024, help="bytes per connection")
    p.add_argument("--flap-period", type=float, default=7.0, help="seconds per flap state [7]")
    p.add_argument("targets", nargs="+", metavar="KIND:PORT")
    args = p.parse_args()
    known = handlers(args.cap, args.flap_period)
    specs = []
    for item in args.targets:
        kind, _, port = item.partition(":")
        if kind not in known or not port.isdigit():
            p.error(f"bad target {item!r}: KIND:PORT with KIND one of {', '.join(known)}")
        specs.append((kind, int(port)))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(specs, args.cap, args.flap_period))


if __name__ == "__main__":
    main()
