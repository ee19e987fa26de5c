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
    """A loopback TCP server running ``handler`` per connection; yields its port.

    Every accepted connection is recorded the moment it is accepted (a plain callback, not a
    coroutine that starts one loop turn later) and closed on exit: a connection accepted just
    before the server closes would otherwise be left to the garbage collector, whose
    "unclosed transport" warning then fails whichever test happens to run at that moment.
    """
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        tasks.append(asyncio.get_running_loop().create_task(run(reader, writer)))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()  # the handler's reader sees EOF and returns
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, never answer, wait for the client to go away."""
    await reader.read()
