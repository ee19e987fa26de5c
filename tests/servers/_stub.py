"""A tiny loopback TCP server whose per-connection behaviour a test supplies.

For faults real servers will not produce on demand: silence, garbage, a protocol error reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def stub_server(handler: Handler) -> AsyncIterator[int]:
    """A loopback TCP server running ``handler`` per connection; yields its port."""
    writers: list[asyncio.StreamWriter] = []
    done: list[asyncio.Event] = []

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        finished = asyncio.Event()
        done.append(finished)
        try:
            await handler(reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()
            finished.set()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()  # the handler's reader sees EOF and returns
        async with asyncio.timeout(5):
            for finished in done:
                await finished.wait()
        await server.wait_closed()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, never answer, wait for the client to go away."""
    await reader.read()
