"""Throwaway Redis servers for tests: real ``redis-server`` processes on random loopback ports.

Fixtures:

- ``redis_server``: session-wide, ``--requirepass`` :data:`REDIS_PASSWORD`, plus an ACL user
  ``probe`` / :data:`REDIS_ACL_PASSWORD` allowed to run everything. Do not stop it.
- ``redis_replica``: session-wide replica of ``redis_server`` (``--replicaof``), no password.
- ``redis_tls_server``: session-wide TLS-only server with certificates from ``trustme``;
  yields ``(server, ca_file)``. Skips if the build has no TLS (fails under
  ``PROBED_REQUIRE_SERVICES=1``).
- ``redis_factory``: function-scoped servers with extra arguments that a test may stop and start.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final
from urllib.parse import quote

import pytest
import trustme

from tests._require import unavailable
from tests.servers._util import (
    free_port,
    require_binary,
    wait_for_port_or_exit,
)

REDIS_PASSWORD: Final = "r3dis-Secret!pw"
REDIS_ACL_USER: Final = "probe"
REDIS_ACL_PASSWORD: Final = "Acl-pr0be-pw"
_START_TIMEOUT: Final = 15.0


class RedisServer:
    """One ``redis-server`` process on a fixed port; can be stopped and started again."""

    def __init__(self, root: Path, *args: str, password: str | None = None, tls: bool = False):
        self.binary = require_binary("redis-server", "apt-get install -y redis-server")
        self.root = root
        self.host = "127.0.0.1"
        self.port = free_port()
        self.password = password
        self.tls = tls
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def url(
        self, *, password: str | None = None, user: str = "", db: int = 0, scheme: str = ""
    ) -> str:
        """A ``redis://`` (or ``rediss://`` for TLS) URL; password defaults to the right one."""
        pw = self.password if password is None else password
        scheme = scheme or ("rediss" if self.tls else "redis")
        auth = f"{quote(user, safe='')}:{quote(pw, safe='')}@" if pw else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/{db}"

    def start(self) -> None:
        """Start the server and wait until its port accepts connections."""
        port_args = (
            ["--port", "0", "--tls-port", str(self.port)]
            if self.tls
            else ["--port", str(self.port)]
        )
        cmd = [
            self.binary, *port_args, "--bind", self.host, "--save", "", "--appendonly", "no",
            "--dir", str(self.root), "--logfile", str(self.root / "redis.log"),
            *(["--requirepass", self.password] if self.password else []), *self.args,
        ]  # fmt: skip
        # Config errors go to stderr before the log file opens: keep them for the message.
        with open(self.root / "stderr.log", "wb") as stderr:
            process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
        self.process = process
        try:
            listening = wait_for_port_or_exit(
                process, self.host, self.port, _START_TIMEOUT, f"redis-server on port {self.port}"
            )
        except TimeoutError:
            self.stop()
            raise
        if not listening:
            self.process = None
            logs = [self.root / "stderr.log", self.root / "redis.log"]
            text = "".join(p.read_text(errors="replace") for p in logs if p.exists())
            raise RuntimeError(f"redis-server exited at start: {text[-2000:]}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def destroy(self) -> None:
        """Stop and delete the working directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _make(*args: str, password: str | None = None, tls: bool = False) -> RedisServer:
    return RedisServer(
        Path(tempfile.mkdtemp(prefix="probed-redis-")), *args, password=password, tls=tls
    )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A password-protected Redis with an extra ACL user; shared, do not stop it."""
    import redis

    server = _make(password=REDIS_PASSWORD)
    server.start()
    with redis.Redis(host=server.host, port=server.port, password=REDIS_PASSWORD) as client:
        client.acl_setuser(
            REDIS_ACL_USER,
            enabled=True,
            passwords=[f"+{REDIS_ACL_PASSWORD}"],
            keys=["*"],
            commands=["+@all"],
        )
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_replica(redis_server: RedisServer) -> Iterator[RedisServer]:
    """A replica of ``redis_server`` without a password of its own; shared, do not stop it."""
    server = _make(
        "--replicaof", redis_server.host, str(redis_server.port),
        "--masterauth", REDIS_PASSWORD,
    )  # fmt: skip
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_tls_server() -> Iterator[tuple[RedisServer, Path]]:
    """A TLS-only Redis (trustme certificates for 127.0.0.1) and the CA file to trust."""
    server = _make(password=REDIS_PASSWORD, tls=True)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = server.root / "cert.pem", server.root / "key.pem", server.root / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    server.args = (
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no",
    )  # fmt: skip
    try:
        server.start()
    except RuntimeError as exc:
        server.destroy()
        if "TLS" in str(exc) or "tls" in str(exc):
            unavailable(f"this redis-server build has no TLS support: {exc}")
        raise
    yield server, ca_file
    server.destroy()


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Make started, function-scoped servers: ``redis_factory("--maxclients", "2")``."""
    made: list[RedisServer] = []

    def make(*args: str, password: str | None = None) -> RedisServer:
        server = _make(*args, password=password)
        made.append(server)
        server.start()
        return server

    yield make
    for server in reversed(made):
        server.destroy()
