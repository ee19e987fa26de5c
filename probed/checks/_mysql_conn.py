"""The ``mysql`` check's connection: aiomysql's, with a byte budget, phases and safer login.

:func:`connection_class` builds (once, after aiomysql is imported) a subclass of
``aiomysql.Connection`` that:

- counts every byte it reads against a :class:`~probed.checks._pg_bounded.Budget` *before*
  reading it (aiomysql trusts packet lengths and joins 16 MiB packets without end), so a
  hostile server cannot make probed buffer more than ``max_response_size``;
- notes when the server greeting arrived (the end of the ``connect`` phase; ``auth``, with
  TLS if configured, follows) and declares the run's phase;
- refuses to log in without TLS when the ``tls`` map is set and the server does not offer TLS
  (aiomysql would silently carry on in plain text);
- never sends the password in clear text (``mysql_clear_password``) or as the broken
  pre-4.1 hash (``mysql_old_password``) over a connection without TLS, whether the greeting
  or an auth-switch request asks for it: a rogue server (or anyone in between) could
  otherwise collect it.

It also reads the role of the server (``@@read_only`` and ``SHOW REPLICA STATUS``, falling
back to ``SHOW SLAVE STATUS`` on servers older than MariaDB 10.5 / MySQL 8.0.22) and kills a
query left running at the timeout (``KILL QUERY`` from a second connection: the server does
not notice a client that has gone away while it runs a query).

aiomysql has no type hints; the subclass uses its private methods (pinned by the tests).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Final

from probed.checks._pg_bounded import Budget
from probed.phase import set_phase

__all__ = [
    "ClearTextRefusedError",
    "Role",
    "RoleUnreadableError",
    "TlsRefusedError",
    "connection_class",
    "kill_query",
    "read_role",
]

_CLEAR_PLUGINS: Final = frozenset({"mysql_clear_password", "mysql_old_password", "dialog"})
_MAX_ERROR_TEXT: Final = 200  # Last_IO_Error / Last_SQL_Error in a message


class TlsRefusedError(Exception):
    """TLS is configured but the server does not offer it (nothing was sent yet)."""


class ClearTextRefusedError(Exception):
    """The server asked for the password in clear text over a connection without TLS."""

    def __init__(self, plugin: str) -> None:
        super().__init__(plugin)
        self.plugin = plugin


class RoleUnreadableError(Exception):
    """The role query failed (typically a missing privilege); carries the driver's error."""


@dataclass(frozen=True, slots=True)
class Role:
    """What the server says about its role."""

    read_only: bool
    replica: bool
    """A replication source is configured (``SHOW REPLICA STATUS`` has a row)."""
    io_running: str = ""
    sql_running: str = ""
    lag: float | None = None
    """``Seconds_Behind_Master``/``_Source``; None when the SQL thread is not running."""
    error: str = ""
    """``Last_IO_Error`` / ``Last_SQL_Error``, shortened."""

    @property
    def replicating(self) -> bool:
        """Both replication threads run."""
        return self.io_running == "Yes" and self.sql_running == "Yes"


@functools.cache
def connection_class() -> type[Any]:
    """The ``aiomysql.Connection`` subclass described in the module docstring."""
    import aiomysql
    from pymysql.constants import CLIENT

    class BoundedConnection(aiomysql.Connection):  # type: ignore[misc]
        budget: Budget
        greeted: float | None = None
        require_tls: bool = False
        server_name: str | None = None  # TLS name to verify, when not the host

        async def _read_bytes(self, num_bytes: int) -> bytes:
            self.budget.take(num_bytes)  # before reading: never buffer past the budget
            data: bytes = await super()._read_bytes(num_bytes)
            return data

        async def _get_server_information(self) -> None:
            await super()._get_server_information()
            self.greeted = time.perf_counter()
            set_phase("logging in")

        async def _request_authentication(self) -> None:
            if self.require_tls and not self.server_capabilities & CLIENT.SSL:
                raise TlsRefusedError
            tls = bool(self._ssl_context and self.server_capabilities & CLIENT.SSL)
            if not tls and self._server_auth_plugin in _CLEAR_PLUGINS and self._password:
                raise ClearTextRefusedError(self._server_auth_plugin)
            if tls and self.server_name:
                self._host = self.server_name  # aiomysql verifies and sends SNI for _host
            await super()._request_authentication()

        async def _process_auth(self, plugin_name: bytes, auth_packet: Any) -> Any:
            plugin = plugin_name.decode("ascii", "replace")
            if plugin in _CLEAR_PLUGINS and not self._secure and self._password:
                raise ClearTextRefusedError(plugin)
            return await super()._process_auth(plugin_name, auth_packet)

    return BoundedConnection


async def _rows(conn: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    async with conn.cursor() as cur:
        await cur.execute(sql)
        names = [d[0] for d in cur.description or ()]
        return names, list(await cur.fetchall())


def _pick(row: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in row:
            return row[name]
    return None


async def read_role(conn: Any) -> Role:
    """``@@read_only`` and the replica status of the server behind ``conn``.

    :raises RoleUnreadableError: the server refused (``SLAVE MONITOR`` / ``REPLICATION
        CLIENT`` privilege missing); the driver's error is its cause.
    """
    import pymysql

    try:
        _, rows = await _rows(conn, "SELECT @@global.read_only")
        read_only = bool(int(rows[0][0]))
        try:
            names, rows = await _rows(conn, "SHOW REPLICA STATUS")
        except pymysql.err.ProgrammingError as exc:
            if exc.args[0] != 1064:  # ER_PARSE_ERROR: a server older than the word "replica"
                raise
            names, rows = await _rows(conn, "SHOW SLAVE STATUS")
    except pymysql.err.MySQLError as exc:
        raise RoleUnreadableError(str(exc)) from exc
    if not rows:
        return Role(read_only=read_only, replica=False)
    status = dict(zip(names, rows[0], strict=False))
    lag = _pick(status, "Seconds_Behind_Source", "Seconds_Behind_Master")
    error = _pick(status, "Last_IO_Error") or _pick(status, "Last_SQL_Error") or ""
    return Role(
        read_only=read_only,
        replica=True,
        io_running=str(_pick(status, "Replica_IO_Running", "Slave_IO_Running") or ""),
        sql_running=str(_pick(status, "Replica_SQL_Running", "Slave_SQL_Running") or ""),
        lag=None if lag is None else float(lag),
        error=" ".join(str(error).split())[:_MAX_ERROR_TEXT],
    )


async def kill_query(connect: Any, thread_id: int) -> None:
    """``KILL QUERY thread_id`` on a new connection made by ``connect()``, then close it.

    A user may kill its own threads without extra privileges.
    """
    conn = await connect()
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"KILL QUERY {int(thread_id)}")
    finally:
        conn.close()
