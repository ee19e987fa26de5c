"""Real loopback servers for check tests, served by threads (no asyncio plugin needed).

::

    with tcp_server(greeting=b"220 mail.test ESMTP\\r\\n") as server:
        result = run_check_sync(HelloCheck, port=server.port, expect="^220 ")

    with http_server({"/health": (200, "ok")}) as server:
        result = run_check_sync(HttpCheck, url=server.url + "/health")
        assert server.requests[0].path == "/health"
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HTTPRequest", "LoopbackServer", "http_server", "tcp_server"]

TCPHandler = Callable[[socket.socket], None]
HTTPReply = tuple[int, str | bytes] | tuple[int, str | bytes, Mapping[str, str]]
HTTPRoute = HTTPReply | Callable[["HTTPRequest"], HTTPReply]


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """One request the HTTP server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class LoopbackServer:
    """A started server on 127.0.0.1: ``host``, ``port``, ``url``, what it received."""

    host: str
    port: int
    requests: list[HTTPRequest] = field(default_factory=list)
    connections: int = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"


class _Threads:
    """Connection threads that never hold up the test: daemon threads, not joined."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


@contextmanager
def _serving(server: socketserver.BaseServer, info: LoopbackServer) -> Iterator[LoopbackServer]:
    info.port = int(server.server_address[1])  # type: ignore[index]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield info
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def tcp_server(
    handler: TCPHandler | None = None,
    *,
    greeting: bytes = b"",
    reply: bytes | None = None,
    hold: bool = False,
) -> Iterator[LoopbackServer]:
    """A TCP server on 127.0.0.1 (free port), one thread per connection.

    :param handler: called with each accepted socket (closed afterwards); when not given, the
        server sends ``greeting``, then, if ``reply`` is set, reads once and sends ``reply``,
        then closes the connection, or with ``hold=True`` keeps it open until the client
        closes it (``tcp_server(hold=True)`` is a service that accepts and never answers).
    """
    info = LoopbackServer("127.0.0.1", 0)

    def default(sock: socket.socket) -> None:
        if greeting:
            sock.sendall(greeting)
        if reply is not None and sock.recv(65536):
            sock.sendall(reply)
        while hold and sock.recv(65536):
            pass

    serve = handler or default

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            info.connections += 1
            with contextlib.suppress(OSError):  # the client went away: its business
                serve(self.request)

    class Server(_Threads, socketserver.ThreadingTCPServer):
        pass

    with _serving(Server(("127.0.0.1", 0), Handler), info) as started:
        yield started


@contextmanager
def http_server(
    routes: Mapping[str, HTTPRoute] | Callable[[HTTPRequest], HTTPReply] | None = None,
) -> Iterator[LoopbackServer]:
    """An HTTP/1.1 server on 127.0.0.1 (free port); every request is recorded.

    :param routes: ``{path: (status, body[, headers])}``, a value may also be a callable taking
        the :class:`HTTPRequest`; or one callable for every request. Unknown paths are 404.
    """
    info = LoopbackServer("127.0.0.1", 0)
    table = routes if isinstance(routes, Mapping) else {}
    fallback = routes if callable(routes) else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = HTTPRequest(
                self.command, self.path, dict(self.headers), self.rfile.read(length)
            )
            info.requests.append(request)
            route = table.get(self.path.partition("?")[0], fallback)
            answer: Any = route(request) if callable(route) else route
            status, body, *rest = answer if answer is not None else (404, "not found")
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            headers = dict(rest[0]) if rest else {}
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    class Server(_Threads, ThreadingHTTPServer):
        pass

    with _serving(Server(("127.0.0.1", 0), Handler), info) as started:
        yield started
