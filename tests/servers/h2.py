"""Real HTTP/2 servers: hypercorn over TLS on loopback, in a child process.

Fixture:

- ``h2_servers``: a session-wide factory. ``h2_servers(mode)`` starts (once per mode) a hypercorn
  serving :func:`app` over TLS with a certificate of the session's trustme CA (``tls_files``)
  and returns its base URL (``https://127.0.0.1:PORT``). Modes:

  - ``"alpn"``: ALPN offers ``h2`` and ``http/1.1`` (hypercorn's default): h2 when the client
    offers it, HTTP/1.1 otherwise;
  - ``"h2-only"``: ALPN offers ``h2`` only and every connection speaks HTTP/2, whatever the
    client offered (an HTTP/1.1 request gets the server's SETTINGS and a GOAWAY);
  - ``"h1-only"``: ALPN offers ``http/1.1`` only.

Run directly: ``python -m tests.servers.h2 PORT CERT KEY MODE``.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from tests._require import unavailable
from tests.servers._util import free_port, port_open, stop_process, wait_until

if TYPE_CHECKING:  # imported at run time only by pytest: it must rewrite tests.servers.tls first
    from tests.servers.tls import TlsFiles

__all__ = ["MODES", "app"]

MODES: Final = ("alpn", "h2-only", "h1-only")
_ROOT: Final = Path(__file__).resolve().parents[2]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app: ``/`` (says the HTTP version), ``/status/N``, ``/redirect`` (302 to ``/``),
    ``/to?url=U`` (302 to U), ``/big`` (200 000 bytes), ``/many-headers`` (3000 header fields),
    ``/huge-header`` (one 100 000-byte header), ``/json`` (``{"proto": "2", "ok": true}``),
    ``/echo`` (method, body and request headers), ``/gzip`` (a gzip body), ``/gzip-bomb`` (gzip
    members of 128 MiB in all)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    status, headers, payload = 200, [(b"content-type", b"text/plain")], b""
    if path == "/":
        payload = f"hello over HTTP/{scope['http_version']}".encode()
        headers.append((b"x-probe", b"h2-yes"))
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
    elif path == "/redirect":
        status, headers = 302, [(b"location", b"/")]
    elif path == "/to":
        status = 302
        headers = [(b"location", scope["query_string"].decode().removeprefix("url=").encode())]
    elif path == "/big":
        payload = b"x" * 200_000
    elif path == "/many-headers":
        headers += [(f"x-h{i}".encode(), b"v") for i in range(3000)]
    elif path == "/huge-header":
        headers.append((b"x-huge", b"y" * 100_000))
    elif path == "/json":
        headers = [(b"content-type", b"application/json")]
        payload = b'{"proto": "%s", "ok": true}' % scope["http_version"].encode()
    elif path in ("/gzip", "/gzip-bomb"):  # compression (tests/checks/test_http_compression.py)
        headers.append((b"content-encoding", b"gzip"))
        one = gzip.compress(bytes(16 << 20) if path == "/gzip-bomb" else b"h2 gzip hello " * 100)
        payload = one * (8 if path == "/gzip-bomb" else 1)  # the bomb: 128 MiB in 128 KiB
    elif path == "/echo":
        seen = b"; ".join(name + b"=" + value for name, value in scope["headers"])
        payload = scope["method"].encode() + b" " + body + b" | " + seen
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main(port: int, certfile: str, keyfile: str, mode: str) -> None:
    """Serve :func:`app` on 127.0.0.1:``port`` in ``mode`` until killed."""
    import hypercorn.protocol
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from hypercorn.protocol.h2 import H2Protocol

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = certfile
    config.keyfile = keyfile
    config.accesslog = None
    config.h2_max_inbound_frame_size = 16384
    if mode == "h2-only":
        config.alpn_protocols = ["h2"]
        setattr(hypercorn.protocol, "H11Protocol", H2Protocol)  # noqa: B010 - every connection h2
    elif mode == "h1-only":
        config.alpn_protocols = ["http/1.1"]
    asyncio.run(serve(app, config, mode="asgi"))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def h2_servers(tls_files: TlsFiles) -> Iterator[Callable[[str], str]]:
    """``h2_servers(mode)`` -> base URL of a hypercorn in that mode (see the module doc)."""
    try:
        import hypercorn  # noqa: F401 - the server runs it in a child process
    except ImportError:
        unavailable("hypercorn is not installed (pip install -e '.[test]')")
    leaf = tls_files.ca.issue_cert("127.0.0.1", "localhost")
    cert = tls_files.directory / "h2-server.pem"
    key = tls_files.directory / "h2-server.key"
    cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    started: dict[str, tuple[subprocess.Popen[bytes], str]] = {}

    def start(mode: str) -> str:
        assert mode in MODES, mode
        if mode in started:
            return started[mode][1]
        port = free_port()
        argv = [sys.executable, "-m", "tests.servers.h2", str(port), str(cert), str(key), mode]
        process = subprocess.Popen(argv, cwd=_ROOT)
        started[mode] = (process, f"https://127.0.0.1:{port}")

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"hypercorn ({mode}) exited with {process.returncode}")
            return port_open("127.0.0.1", port)

        wait_until(up, timeout=20, what=f"hypercorn ({mode}) on port {port}")
        return started[mode][1]

    try:
        yield start
    finally:
        for process, _ in started.values():
            stop_process(process)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
