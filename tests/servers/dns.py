"""DNS servers for tests: real dnsmasq, and a dnspython responder that misbehaves on demand.

- ``dnsmasq`` (Debian's ``dnsmasq-base``) on a random loopback port, UDP and TCP, authoritative
  for ``probed.test``: ``ok.probed.test A 127.0.0.1``, ``multi.probed.test A 127.0.0.2 127.0.0.3``,
  ``txt.probed.test TXT "hello world"``; any other name there is NXDOMAIN. It can be stopped and
  started again on the same port to test recovery.
- ``fake_dns``: a threaded UDP + TCP responder written here with dnspython, whose ``mode``
  selects the behaviour: ``answer`` (from ``records``), ``servfail``, ``empty`` (NOERROR, no
  answer), ``truncate`` (UDP answers carry the TC bit and no records; TCP answers in full),
  ``garbage`` (bytes that are not DNS) and ``silent`` (reads every query, never answers).
  Like a real server it truncates UDP answers that do not fit 512 bytes (``many.fake.test``).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.servers._util import free_port, port_open, require_binary, wait_until

Mode = Literal["answer", "servfail", "empty", "truncate", "garbage", "silent"]

GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"

DEFAULT_RECORDS: dict[tuple[str, str], list[str]] = {
    ("ok.fake.test.", "A"): ["127.0.0.1"],
    ("many.fake.test.", "A"): [f"127.0.1.{i}" for i in range(1, 41)],
    ("mail.fake.test.", "MX"): ["10 mx1.fake.test.", "20 mx2.fake.test."],
}


@dataclass
class FakeDnsServer:
    """A DNS responder on ``host:port`` (UDP and TCP) whose behaviour ``mode`` selects."""

    host: str = "127.0.0.1"
    port: int = 0
    mode: Mode = "answer"
    records: dict[tuple[str, str], list[str]] = field(default_factory=lambda: dict(DEFAULT_RECORDS))
    queries: int = 0
    _thread: threading.Thread | None = None
    _wake: tuple[socket.socket, socket.socket] | None = None
    _socks: list[socket.socket] = field(default_factory=list)
    _received: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Bind UDP and TCP on the same port (a random free one the first time) and serve."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _attempt in range(20):
            port = self.port or free_port(self.host)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                tcp.bind((self.host, port))
                udp.bind((self.host, port))
            except OSError:
                tcp.close()
                udp.close()
                if self.port:
                    raise
                continue
            break
        else:  # pragma: no cover - the machine would have to be out of ports
            raise RuntimeError("no free port for the fake DNS server")
        tcp.listen(16)
        self.port = port
        self._socks = [udp, tcp]
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="fake-dns", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every socket; the port stays remembered for ``start``."""
        if self._thread is None or self._wake is None:
            return
        self._wake[1].send(b"x")
        self._thread.join(timeout=10)
        for sock in (*self._socks, *self._wake):
            sock.close()
        self._thread, self._wake, self._socks = None, None, []

    def wait_for_query(self, timeout: float = 10.0) -> bool:
        """Block until the server has received a query (in any mode)."""
        return self._received.wait(timeout)

    # -- serving -------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._wake is not None
        udp, tcp = self._socks
        with selectors.DefaultSelector() as selector:
            selector.register(udp, selectors.EVENT_READ, "udp")
            selector.register(tcp, selectors.EVENT_READ, "tcp")
            selector.register(self._wake[0], selectors.EVENT_READ, "stop")
            while True:
                for key, _ in selector.select():
                    if key.data == "stop":
                        return
                    if key.data == "udp":
                        self._serve_udp(udp)
                    else:
                        conn, _ = tcp.accept()
                        threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()

    def _serve_udp(self, udp: socket.socket) -> None:
        wire, peer = udp.recvfrom(65535)
        reply = self._reply(wire, tcp=False)
        if reply is not None:
            udp.sendto(reply, peer)

    def _serve_tcp(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                length = int.from_bytes(_recv_exactly(conn, 2), "big")
                reply = self._reply(_recv_exactly(conn, length), tcp=True)
                if reply is None:
                    # Silent: hold the connection open until the client gives up.
                    with contextlib.suppress(OSError):
                        conn.recv(1)
                    return
                if self.mode == "garbage":
                    conn.sendall(reply)
                else:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
            except (OSError, EOFError):
                return

    def _reply(self, wire: bytes, *, tcp: bool) -> bytes | None:
        self.queries += 1
        self._received.set()
        mode = self.mode
        if mode == "silent":
            return None
        if mode == "garbage":
            return GARBAGE
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        if mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif mode == "truncate" and not tcp:
            response.flags |= dns.flags.TC
        elif mode == "answer" or mode == "truncate":
            question = query.question[0]
            name = question.name.to_text().lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            known = {key[0] for key in self.records}
            values = self.records.get((name, rdtype))
            if values:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values)
                )
            elif name not in known:
                response.set_rcode(dns.rcode.NXDOMAIN)
        # mode "empty": NOERROR with an empty answer section (NODATA).
        wire_reply = response.to_wire()
        limit = query.payload if query.edns >= 0 else 512
        if not tcp and len(wire_reply) > limit:
            # What a real server does with an answer too big for UDP: TC bit, no records.
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            wire_reply = response.to_wire()
        return wire_reply


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


@pytest.fixture
def fake_dns() -> Iterator[FakeDnsServer]:
    """A started :class:`FakeDnsServer` on 127.0.0.1 (mode ``answer``), stopped afterwards."""
    server = FakeDnsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Dnsmasq:
    """A running dnsmasq on 127.0.0.1:``port`` that tests may stop and start again."""

    binary: str
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        """The ``server:`` option value pointing at this dnsmasq."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start dnsmasq in the foreground and wait until it accepts TCP connections."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--keep-in-foreground",
                f"--port={self.port}",
                f"--listen-address={self.host}",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                "--user=root",
                "--local=/probed.test/",
                "--address=/ok.probed.test/127.0.0.1",
                "--host-record=multi.probed.test,127.0.0.2",
                "--host-record=multi.probed.test,127.0.0.3",
                "--txt-record=txt.probed.test,hello world",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                _, err = process.communicate()
                raise RuntimeError(f"dnsmasq exited: {err.decode(errors='replace')}")
            return port_open(self.host, self.port)

        wait_until(ready, what=f"dnsmasq on {self.server}")

    def stop(self) -> None:
        """Terminate dnsmasq and wait for it to exit (its ports are then closed)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - dnsmasq exits on SIGTERM
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    """A real dnsmasq serving ``probed.test`` on a random loopback port, stopped afterwards."""
    binary = require_binary("dnsmasq", "apt-get install -y dnsmasq-base")
    server = Dnsmasq(binary, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
