"""Liveness served off the event loop: ``/health/live`` answered by a thread (``live_listen``).

Every other endpoint is served by the event loop, so while a check blocks the loop (a
``time.sleep(5)`` in an ``async def run``), nothing answers and a kubelet liveness probe with its
default 1 s timeout restarts a pod whose only fault is one careless check. With ``live_listen:
HOST:PORT`` in ``probed.yaml``, a small HTTP server in its own threads answers
``GET /health/live`` on that address from what the loop last published:

- the loop publishes the scheduler's liveness verdict (:func:`probed.health.liveness_verdict`)
  every :data:`PUBLISH_EVERY` seconds, with the time it did;
- the thread answers that verdict (200 ``pass`` / 503 ``fail``) as long as it is fresh, so a
  loop blocked for a few seconds is still live and the answer comes at once;
- a loop that has published nothing for :data:`STALE_AFTER` seconds (the same bound as a stuck
  scheduler, :data:`probed.health.STUCK_MIN`) is a hung daemon: 503 ``event loop unresponsive``,
  so a truly hung loop still fails liveness and the pod is restarted.

Not protected: readiness, startup, ``/metrics`` and the API are still served by the loop and
wait while it is blocked; a check that blocks the loop still delays every other check. The
listener is plain HTTP, serves nothing else (404), and bounds itself: at most
:data:`MAX_CONNECTIONS` connections at a time (more are closed at once), each with
:data:`REQUEST_TIMEOUT` seconds to send its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from probed.health import (
    HEALTH_JSON,
    STUCK_MIN,
    Heartbeat,
    Verdict,
    liveness_verdict,
    render_json,
    render_text,
)

__all__ = [
    "MAX_CONNECTIONS",
    "PUBLISH_EVERY",
    "REQUEST_TIMEOUT",
    "STALE_AFTER",
    "LiveServer",
    "LoopBeat",
    "liveness_listener",
]

log = logging.getLogger("probed")

PUBLISH_EVERY: Final = 0.25
"""Seconds between two verdicts published by the event loop."""
STALE_AFTER: Final = STUCK_MIN
"""Seconds without a published verdict after which the loop counts as hung (liveness fails)."""
MAX_CONNECTIONS: Final = 16
"""Connections the liveness listener serves at a time. At the cap, the oldest connection that
has not sent a whole request yet is closed to make room (idle sockets cannot lock the kubelet
out); when every connection is mid-answer, the new one is closed at once."""
HARD_LIMIT: Final = 4 * MAX_CONNECTIONS
"""Threads alive at most, evicted connections still ending included."""
REQUEST_TIMEOUT: Final = 2.0
"""Seconds a connection has to send its request."""


class LoopBeat:
    """The last liveness verdict the event loop published, read by the listener's threads."""

    __slots__ = ("_last", "stale_after")

    def __init__(self, stale_after: float = STALE_AFTER) -> None:
        self.stale_after = stale_after
        self._last: tuple[float, Verdict] = (
            time.monotonic(),
            Verdict("livez", True, False, ()),
        )

    def publish(self, verdict: Verdict) -> None:
        """Called on the loop: ``verdict`` is the loop's view, as of now."""
        self._last = (time.monotonic(), verdict)  # one reference swap: no lock needed

    def verdict(self) -> Verdict:
        """The published verdict, or a failing one when the loop stopped publishing."""
        at, verdict = self._last
        silent = time.monotonic() - at
        if silent >= self.stale_after:
            note = (
                f"event loop unresponsive: nothing published for {silent:.0f}s "
                f"(liveness fails after {self.stale_after:g}s)"
            )
            return Verdict("livez", False, False, (), note)
        return verdict


class _Handler(BaseHTTPRequestHandler):
    server: LiveServer
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "probed"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def parse_request(self) -> bool:
        """Read the request; once whole, the connection can no longer be evicted."""
        parsed = super().parse_request()
        if parsed:
            self.server.started(self.connection)
        return parsed

    def _answer(self, *, body: bool) -> None:
        path, _, query = self.path.partition("?")
        if path != "/health/live":
            self._send(404, "text/plain; charset=utf-8", b"not found\n", body)
            return
        verdict = self.server.beat.verdict()
        text = "verbose" in query.split("&") or "text/plain" in self.headers.get("Accept", "")
        if text:
            payload, kind = render_text(verdict), "text/plain; charset=utf-8"
        else:
            payload, kind = render_json(verdict), HEALTH_JSON
        self._send(200 if verdict.passed else 503, kind, payload, body)

    def _send(self, status: int, kind: str, payload: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")  # one request per connection: nothing idles
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the kubelet asks every few seconds."""


class LiveServer(ThreadingHTTPServer):
    """``/health/live`` from ``beat``, on ``(host, port)``, served by daemon threads."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # socketserver's 5 drops SYNs under a burst: a 1 s client retry

    def __init__(self, host: str, port: int, beat: LoopBeat) -> None:
        self.beat = beat
        self._active = 0  # connections with a thread, evicted ones still ending included
        self._waiting: dict[
            socket.socket, None
        ] = {}  # accepted, no whole request yet; oldest first
        self._lock = threading.Lock()
        self.refused = 0
        self.evicted = 0
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread; at :data:`MAX_CONNECTIONS`, evict the oldest waiting connection
        for it (or close this one when none waits or :data:`HARD_LIMIT` threads are alive)."""
        evict = None
        with self._lock:
            if self._active >= MAX_CONNECTIONS:
                evict = next(iter(self._waiting), None)
                if evict is None or self._active >= HARD_LIMIT:
                    self.refused += 1
                    self.shutdown_request(request)
                    return
                del self._waiting[evict]
                self.evicted += 1
            self._active += 1
            self._waiting[request] = None
        if evict is not None:  # the new connection does not wait for the evicted one to end
            _close_for_eviction(evict)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._ended(request)
            raise

    def started(self, request: socket.socket) -> None:
        """``request`` sent a whole request: it is no longer evictable."""
        with self._lock:
            self._waiting.pop(request, None)

    def _ended(self, request: socket.socket) -> None:
        with self._lock:
            self._waiting.pop(request, None)
            self._active -= 1

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """The connection's thread; its slot is freed when it ends."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._ended(request)


def _close_for_eviction(sock: socket.socket) -> None:
    """Wake the thread reading ``sock`` (it sees end of file and ends, freeing its slot)."""
    with contextlib.suppress(OSError):  # already closed by its own thread
        sock.shutdown(socket.SHUT_RDWR)


def split_address(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as ``(host, port)``; no host means all IPv4."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def liveness_listener(listen: str, heartbeat: Heartbeat) -> Callable[[Any], AsyncIterator[None]]:
    """A ``cleanup_ctx`` step: bind ``listen``, serve liveness from a thread, publish verdicts
    from the loop; stop both at cleanup.

    :raises OSError: the address cannot be bound (the daemon does not start).
    """

    async def serving(_app: Any) -> AsyncIterator[None]:
        beat = LoopBeat()
        server = LiveServer(*split_address(listen), beat)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def publish() -> None:
            nonlocal handle
            beat.publish(liveness_verdict(heartbeat))
            handle = loop.call_later(PUBLISH_EVERY, publish)

        publish()
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="probed-livez",
            daemon=True,
        )
        thread.start()
        host, port = str(server.server_address[0]), int(server.server_address[1])
        log.info(
            "liveness listener on %s:%s, served off the event loop",
            host,
            port,
            extra={"event": "live_listen", "live_listen": f"{host}:{port}"},
        )
        try:
            yield
        finally:
            if handle is not None:
                handle.cancel()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.shutdown)
            server.server_close()

    return serving
