"""An aiohttp application served on a random loopback port, for the http-family tests.

``async with serve_app(app, ssl_context=ctx) as url`` yields ``http://127.0.0.1:PORT`` (or
``https://``; ``[::1]`` in brackets for an IPv6 host) and cleans the runner up on exit.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

__all__ = ["serve_app"]


@contextlib.asynccontextmanager
async def serve_app(
    app: web.Application, *, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Run ``app`` on a random port of ``host``; yield its base URL (no trailing slash)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
    await site.start()
    scheme = "https" if ssl_context else "http"
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"{scheme}://{shown}:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
