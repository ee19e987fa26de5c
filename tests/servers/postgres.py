"""Throwaway PostgreSQL servers for tests: real ``postgres`` processes on random loopback ports.

``initdb`` runs once per session (as the ``postgres`` user, since it refuses root) into a template
directory; every server copies the template, so a new instance costs one server start (~1 s).
Authentication over TCP is ``scram-sha-256`` with :data:`PG_PASSWORD`; the socket lives in the
instance's temporary directory.

Fixtures:

- ``postgres_server``: one primary for the whole session; tests must not stop it.
- ``postgres_factory``: makes function-scoped instances (extra ``-c`` settings, replicas) that a
  test may stop, start and restart; all are stopped and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final
from urllib.parse import quote

import pytest

from tests.servers._util import free_port, require_binary, wait_until

PG_USER: Final = "postgres"
PG_PASSWORD: Final = (
    "s3cret-Pg_pw!"  # a distinctive string so "not in message" tests mean something
)
_START_TIMEOUT: Final = 30.0


def _pg_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    directory = candidates[-1] if candidates else "/usr/lib/postgresql/15/bin"
    require_binary(
        os.path.join(directory, "postgres"), "install postgresql (Debian: postgresql-15)"
    )
    return Path(directory)


def _as_postgres(*args: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a PostgreSQL tool as the ``postgres`` user (it refuses to run as root)."""
    cmd = [str(a) for a in args]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=_START_TIMEOUT, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _private_dir() -> Path:
    # Not pytest's tmp_path: it lives under a root-only directory the postgres user cannot enter.
    path = Path(tempfile.mkdtemp(prefix="probed-pg-"))
    if os.geteuid() == 0:
        shutil.chown(path, "postgres")
    path.chmod(0o700)
    return path


class PostgresServer:
    """One PostgreSQL instance: a data directory, a port, and start/stop/restart."""

    def __init__(self, bin_dir: Path, root: Path, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = PG_USER
        self.password = PG_PASSWORD
        self.settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(root),
            "fsync": "off",  # throwaway data: faster start and checkpoints
            **(settings or {}),
        }

    def dsn(
        self, database: str = "postgres", *, user: str | None = None, password: str | None = None
    ) -> str:
        """A ``postgresql://`` URL for this server (password defaults to the right one)."""
        pw = quote(self.password if password is None else password, safe="")
        return f"postgresql://{user or self.user}:{pw}@{self.host}:{self.port}/{database}"

    def dsn_without_password(self, database: str = "postgres") -> str:
        """A URL without userinfo password, for tests of the separate ``password`` option."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def _ready(self) -> bool:
        proc = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            check=False,
            timeout=5,
        )
        return proc.returncode == 0

    def start(self) -> None:
        """Start the server and wait until ``pg_isready`` says it accepts connections."""
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        options += f" -p {self.port}"
        _as_postgres(
            self.bin_dir / "pg_ctl", "start", "-W", "-D", self.data,
            "-l", self.root / "server.log", "-o", options,
        )  # fmt: skip
        try:
            wait_until(self._ready, _START_TIMEOUT, f"PostgreSQL on port {self.port}")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; log:\n{self.log_tail()}") from exc

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` disconnects clients; ``immediate`` is a crash)."""
        _as_postgres(self.bin_dir / "pg_ctl", "stop", "-w", "-m", mode, "-D", self.data)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        """True while the postmaster's pid file exists."""
        return (self.data / "postmaster.pid").exists()

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the server log, for failure messages."""
        log = self.root / "server.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    def make_replica(self) -> PostgresServer:
        """A streaming replica of this server, made with ``pg_basebackup -R`` (not started)."""
        replica = PostgresServer(self.bin_dir, _private_dir(), {"hot_standby": "on"})
        env = {**os.environ, "PGPASSWORD": self.password}
        _as_postgres(
            self.bin_dir / "pg_basebackup", "-h", self.host, "-p", str(self.port), "-U", self.user,
            "-D", replica.data, "-R", "-X", "stream", "-c", "fast", env=env,
        )  # fmt: skip
        return replica

    def destroy(self) -> None:
        """Stop (if running) and delete everything."""
        if self.running:
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[tuple[Path, Path]]:
    bin_dir = _pg_bin()
    root = _private_dir()
    pwfile = root / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres")
    _as_postgres(
        bin_dir / "initdb", "-D", root / "data", "-U", PG_USER, "--auth-local=trust",
        "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8",
    )  # fmt: skip
    yield bin_dir, root / "data"
    shutil.rmtree(root, ignore_errors=True)


def _instance(template: tuple[Path, Path], settings: dict[str, str] | None) -> PostgresServer:
    bin_dir, data = template
    server = PostgresServer(bin_dir, _private_dir(), settings)
    _as_postgres("cp", "-a", data, server.data)
    return server


@pytest.fixture(scope="session")
def postgres_server(_postgres_template: tuple[Path, Path]) -> Iterator[PostgresServer]:
    """A running PostgreSQL shared by the session. Do not stop it; use ``postgres_factory``."""
    server = _instance(_postgres_template, None)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def postgres_factory(
    _postgres_template: tuple[Path, Path],
) -> Iterator[Callable[..., PostgresServer]]:
    """Make started, function-scoped instances: ``postgres_factory(max_connections="3")``."""
    made: list[PostgresServer] = []

    def make(**settings: str) -> PostgresServer:
        server = _instance(_postgres_template, settings)
        made.append(server)
        server.start()
        return server

    yield make
    for server in reversed(made):
        server.destroy()


@pytest.fixture
def postgres_replica(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A running streaming replica of ``postgres_server`` (function-scoped)."""
    replica = postgres_server.make_replica()
    try:
        replica.start()
        yield replica
    finally:
        replica.destroy()
