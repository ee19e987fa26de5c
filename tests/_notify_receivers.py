"""Real local receivers for the notification tests: a JSON webhook (aiohttp) and an SMTP server
(aiosmtpd), both on 127.0.0.1, recording what Apprise delivered to them."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from tests.servers._util import free_port

__all__ = ["JsonReceiver", "Mailbox", "blackhole", "json_receiver", "mailbox"]


@dataclass
class JsonReceiver:
    """What the webhook received: one dict per POST (Apprise's ``json://`` payload)."""

    port: int
    posts: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    def url(self, token: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{token}"

    def titles(self) -> list[str]:
        return [str(p.get("title")) for p in self.posts]


@contextlib.asynccontextmanager
async def json_receiver() -> AsyncIterator[JsonReceiver]:
    """An aiohttp server recording every JSON POST (answering ``receiver.status``)."""
    receiver = JsonReceiver(free_port())

    async def handle(request: web.Request) -> web.Response:
        receiver.posts.append(await request.json())
        return web.Response(status=receiver.status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()


@dataclass
class Mailbox:
    """Messages the SMTP server accepted."""

    port: int
    messages: list[email.message.EmailMessage] = field(default_factory=list)

    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?from=probed@example.com&to=ops@example.com"
            "&mode=insecure"
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"


@contextlib.contextmanager
def mailbox() -> Iterator[Mailbox]:
    """An aiosmtpd server (its own thread) recording every message."""
    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def blackhole() -> AsyncIterator[tuple[int, list[socket.socket]]]:
    """A port that accepts connections and never answers (a receiver that hangs)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    accepted: list[socket.socket] = []
    loop = asyncio.get_running_loop()

    def accept() -> None:
        # Accepted in the reader callback, so every accepted socket is in the list at once:
        # a task awaiting sock_accept, cancelled with a connection in its future, would drop
        # that socket for the garbage collector to warn about in some later test.
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                conn, _ = server.accept()
                accepted.append(conn)

    loop.add_reader(server.fileno(), accept)
    try:
        yield server.getsockname()[1], accepted
    finally:
        loop.remove_reader(server.fileno())
        for conn in accepted:
            conn.close()
        server.close()
