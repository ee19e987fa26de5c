"""Throwaway MariaDB servers for tests: real ``mariadbd`` processes on random loopback ports.

``mariadb-install-db`` runs once per session (it takes seconds on a busy machine) into a
template with the users and a database; every instance copies it and starts in about half a
second. Instances run as the ``mysql`` user when the tests run as root (``mariadbd`` refuses
root). TLS is on (a ``trustme`` certificate for 127.0.0.1) but not required, so one server
serves plain and TLS clients. Users: ``root`` without a password (the tests' admin
connection) and ``probe`` / :data:`MYSQL_PASSWORD` with the rights a monitoring user has
(``PROCESS``, ``SLAVE MONITOR``); a database ``app``.

Fixtures:

- ``mariadb_server``: one server for the whole session; tests must not stop it or leave global
  settings changed.
- ``mariadb_factory``: function-scoped servers with extra ``mariadbd`` options
  (``mariadb_factory(max_connections="10")``) that a test may stop and start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import pymysql
import pytest

from tests.servers._util import free_port, require_binary, wait_until

if TYPE_CHECKING:  # imported at run time, this module would load before the tls fixtures
    from tests.servers.tls import TlsFiles

MYSQL_USER: Final = "probe"
MYSQL_PASSWORD: Final = "My-s3cret_Pw!"  # distinctive, so "not in the output" tests mean something
_START_TIMEOUT: Final = 30.0
# Throwaway data: no durability, a small redo log (a 26 MB data directory instead of 114 MB).
_FAST: Final = (
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-log-file-size=8M",
)


def _binaries() -> tuple[str, str]:
    hint = "apt-get install -y mariadb-server"
    return (
        require_binary("/usr/sbin/mariadbd", hint),
        require_binary("mariadb-install-db", hint),
    )


class MariadbServer:
    """One MariaDB instance: a data directory, a port, start/stop and an admin connection."""

    def __init__(
        self, root: Path, tls: TlsFiles, settings: dict[str, str], template: Path | None
    ) -> None:
        self.mariadbd, install_db = _binaries()
        self.root = root
        self.data = root / "data"
        self.host = "127.0.0.1"
        self.port = free_port()
        self.user = MYSQL_USER
        self.password = MYSQL_PASSWORD
        self.ca_file = tls.ca_file
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        leaf = tls.ca.issue_cert("127.0.0.1", "localhost")
        (root / "server.crt").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(root / "server.key"))
        if template is not None:  # a copy of a ready data directory: no install, no users
            subprocess.run(["cp", "-a", str(template), str(self.data)], check=True, timeout=60)
        else:
            self.data.mkdir()
        if os.geteuid() == 0:
            for path in (root, self.data, root / "server.crt", root / "server.key"):
                shutil.chown(path, "mysql", "mysql")
        if template is None:
            subprocess.run(
                [install_db, *self._as_user(), f"--datadir={self.data}", "--skip-test-db",
                 "--auth-root-authentication-method=normal", *_FAST],
                check=True, capture_output=True, timeout=_START_TIMEOUT,
            )  # fmt: skip

    @staticmethod
    def _as_user() -> list[str]:
        return ["--user=mysql"] if os.geteuid() == 0 else []

    def dsn(
        self, database: str = "", *, user: str | None = None, password: str | None = None
    ) -> str:
        """A ``mysql://`` URL for this server (user ``probe``, the right password by default)."""
        pw = quote(self.password if password is None else password, safe="")
        return f"mysql://{user or self.user}:{pw}@{self.host}:{self.port}/{database}"

    def start(self) -> None:
        """Start ``mariadbd`` and wait until it answers a query."""
        args = [
            self.mariadbd, "--no-defaults", f"--datadir={self.data}", f"--port={self.port}",
            f"--bind-address={self.host}", f"--socket={self.root / 'mysqld.sock'}",
            f"--pid-file={self.root / 'mysqld.pid'}", f"--log-error={self.root / 'error.log'}",
            "--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--skip-log-bin", *_FAST,
            f"--ssl-cert={self.root / 'server.crt'}", f"--ssl-key={self.root / 'server.key'}",
            *(f"--{k.replace('_', '-')}={v}" for k, v in self.settings.items()),
        ]  # fmt: skip
        user: Any = "mysql" if os.geteuid() == 0 else None
        self.process = subprocess.Popen(
            args, user=user, group=user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(self._ready, _START_TIMEOUT, f"MariaDB on port {self.port}")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; log:\n{self.log_tail()}") from exc

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"mariadbd exited ({self.process.returncode}):\n{self.log_tail()}")
        try:
            with contextlib.closing(self.admin()):
                return True
        except pymysql.err.OperationalError:
            return False

    def admin(self) -> pymysql.connections.Connection[Any]:
        """A blocking root connection for test setup (not for use on the event loop)."""
        return pymysql.connect(
            host=self.host, port=self.port, user="root", password="", connect_timeout=2,
            autocommit=True,
        )  # fmt: skip

    def execute(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements as root; the rows of the last one."""
        with contextlib.closing(self.admin()) as conn, conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
            return list(cur.fetchall())

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the error log, for failure messages."""
        log = self.root / "error.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    def destroy(self) -> None:
        """Stop and delete everything."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="probed-mariadb-"))
    root.chmod(0o755)
    return root


def _make(tls: TlsFiles, settings: dict[str, str], template: Path) -> MariadbServer:
    server = MariadbServer(_root(), tls, settings, template)
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session")
def _mariadb_template(tls_files: TlsFiles) -> Iterator[Path]:
    """A data directory with the ``probe`` user and the ``app`` database, made once."""
    server = MariadbServer(_root(), tls_files, {}, None)
    try:
        server.start()
        server.execute(
            "CREATE DATABASE app",
            f"CREATE USER '{MYSQL_USER}'@'%' IDENTIFIED BY '{MYSQL_PASSWORD}'",
            f"GRANT SELECT, PROCESS, SLAVE MONITOR ON *.* TO '{MYSQL_USER}'@'%'",
        )
        server.stop()
        yield server.data
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def mariadb_server(tls_files: TlsFiles, _mariadb_template: Path) -> Iterator[MariadbServer]:
    """A running MariaDB shared by the session. Do not stop it; use ``mariadb_factory``."""
    server = _make(tls_files, {}, _mariadb_template)
    yield server
    server.destroy()


@pytest.fixture
def mariadb_factory(
    tls_files: TlsFiles, _mariadb_template: Path
) -> Iterator[Callable[..., MariadbServer]]:
    """Make started, function-scoped servers: ``mariadb_factory(max_connections="10")``."""
    made: list[MariadbServer] = []

    def make(**settings: str) -> MariadbServer:
        server = _make(tls_files, settings, _mariadb_template)
        made.append(server)
        return server

    yield make
    for server in reversed(made):
        server.destroy()
