"""Real grpcio servers with the standard health servicer, for the ``grpc`` check type.

Fixture:

- ``grpc_servers``: session-wide :class:`GrpcServers`: one plaintext server and four TLS
  servers (certificates from the ``tls_files`` trustme CA: valid for 127.0.0.1/localhost,
  expired, issued for another host, and one requiring a client certificate of that CA), all
  on random loopback ports, all serving :func:`health_servicer`. Also ``down``: a port where
  nothing listens.

Services of the health servicer (``grpc_health.v1.health.HealthServicer``, subclassed only to
make faults on demand):

- ``""`` (the server) and :data:`SERVING`: ``SERVING``; :data:`NOT_SERVING`: ``NOT_SERVING``;
  any other name: ``NOT_FOUND`` (the standard servicer's answer for an unknown service).
- :data:`STALL`: never answers; the call ends at the client's deadline (``DEADLINE_EXCEEDED``).
- :data:`UNAVAILABLE`: the call fails with ``UNAVAILABLE`` (a server draining for a restart).
- :data:`HUGE`: ``SERVING`` padded with an unknown field of :data:`HUGE_SIZE` bytes.
- :data:`AUTH`: ``SERVING`` only with metadata ``authorization: Bearer`` :data:`TOKEN`; any
  other value is refused with ``PERMISSION_DENIED`` whose details *echo the value sent* (so a
  test can prove probed redacts it); none: ``UNAUTHENTICATED``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.servers._util import free_port

if TYPE_CHECKING:  # imported at run time only by pytest: it must rewrite tests.servers.tls first
    from tests.servers.tls import TlsFiles

SERVING: Final = "probed.test.Serving"
NOT_SERVING: Final = "probed.test.NotServing"
STALL: Final = "probed.test.Stall"
HUGE: Final = "probed.test.Huge"
AUTH: Final = "probed.test.Auth"
UNAVAILABLE: Final = "probed.test.Unavailable"
TOKEN: Final = "grpc-T0ken-s3cret-value"
HUGE_SIZE: Final = 256 * 1024


def health_servicer() -> Any:
    """The standard health servicer with this module's services and faults."""

    class FaultyHealth(health.HealthServicer):
        def Check(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
            if request.service == STALL:
                done = threading.Event()
                context.add_callback(done.set)  # the call ended: deadline or cancel
                done.wait(30)
                return health_pb2.HealthCheckResponse()
            if request.service == HUGE:
                padding = b"\x7a" + _varint(HUGE_SIZE) + b"x" * HUGE_SIZE  # field 15, bytes
                raw = health_pb2.HealthCheckResponse(status=1).SerializeToString() + padding
                return health_pb2.HealthCheckResponse.FromString(raw)
            if request.service == UNAVAILABLE:
                context.abort(grpc.StatusCode.UNAVAILABLE, "draining for a restart")
            if request.service == AUTH:
                sent = dict(context.invocation_metadata()).get("authorization")
                if sent is None:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "no authorization metadata")
                if sent != f"Bearer {TOKEN}":
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, f"bad credentials {sent}")
                return health_pb2.HealthCheckResponse(status=1)
            return super().Check(request, context)

    servicer = FaultyHealth()
    servicer.set(SERVING, health_pb2.HealthCheckResponse.SERVING)
    servicer.set(NOT_SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
    for name in (STALL, HUGE, AUTH, UNAVAILABLE):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def start_server(credentials: Any = None, host: str = "127.0.0.1") -> tuple[Any, int]:
    """A started grpcio server with :func:`health_servicer` on a random port of ``host``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer(), server)
    where = f"[{host}]:0" if ":" in host else f"{host}:0"
    if credentials is None:
        port = server.add_insecure_port(where)
    else:
        port = server.add_secure_port(where, credentials)
    server.start()
    return server, int(port)


@dataclass(frozen=True)
class GrpcServers:
    """Ports of the session's gRPC servers (all on 127.0.0.1) and the CA that signed them."""

    plain: int
    tls: int
    expired: int
    wrong_host: int
    mtls: int
    down: int
    ca_file: str
    client_cert: tuple[str, str]
    """(cert_file, key_file) of a client certificate the ``mtls`` server accepts."""


def _credentials(
    tls_files: TlsFiles, *hosts: str, client_auth: bool = False, **validity: dt.datetime
) -> Any:
    leaf = tls_files.ca.issue_cert(*hosts, **validity)
    chain = b"".join(pem.bytes() for pem in leaf.cert_chain_pems)
    if not client_auth:
        return grpc.ssl_server_credentials([(leaf.private_key_pem.bytes(), chain)])
    return grpc.ssl_server_credentials(
        [(leaf.private_key_pem.bytes(), chain)],
        root_certificates=tls_files.ca.cert_pem.bytes(),
        require_client_auth=True,
    )


@pytest.fixture(scope="session")
def grpc_servers(tls_files: TlsFiles) -> Iterator[GrpcServers]:
    """Plaintext and TLS (valid, expired, wrong host) gRPC servers with the health servicer."""
    now = dt.datetime.now(dt.UTC)
    started = [
        start_server(),
        start_server(_credentials(tls_files, "127.0.0.1", "localhost")),
        start_server(
            _credentials(
                tls_files,
                "127.0.0.1",
                "localhost",
                not_before=now - dt.timedelta(days=30),
                not_after=now - dt.timedelta(days=1),
            )
        ),
        start_server(_credentials(tls_files, "other.probed.test")),
        start_server(_credentials(tls_files, "127.0.0.1", client_auth=True)),
    ]
    ports = (port for _, port in started)
    try:
        yield GrpcServers(
            *ports, free_port(), tls_files.ca_file, tls_files.client_cert_files("probe.grpc.test")
        )
    finally:
        for server, _ in started:
            server.stop(None)
