"""The ``mysql`` check type: connect to MySQL or MariaDB with aiomysql and run one query.

Every run opens a fresh connection (connect and login time are part of what is measured), runs
the query (default ``SELECT 1``), optionally compares the first value or the row count,
optionally reads the server's role (``@@read_only``, ``SHOW REPLICA STATUS``) and replication
lag, and closes the connection. Phases: ``connect`` (TCP and the server greeting), ``auth``
(TLS when configured, and the login), ``query``, ``role``.

A query still running at the timeout is killed on the server (``KILL QUERY`` from a second
connection): MySQL and MariaDB go on running a query whose client has gone, so only closing
the socket would leave a slow query to pile up on every run. Rows are streamed (only the first
is kept) and every byte read counts against ``max_response_size``.

The password (in the DSN or the ``password`` option) never reaches a message: driver errors
are passed through a :class:`~probed.redact.Redactor` first. It is never sent in clear text
over a connection without TLS (see :mod:`probed.checks._mysql_conn`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ssl
import time
from typing import Any, ClassVar, Final

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Status
from probed.checks import _mysql_conn as mc
from probed.checks._db_common import format_ms, short
from probed.checks._mysql_errors import classify
from probed.checks._mysql_options import MysqlOptions, as_number, matches
from probed.checks._pg_bounded import Budget
from probed.checks._reasons import REPLICATION, ROLE
from probed.checks._tls import (
    CERT_EXPIRY_METRIC,
    CertInfo,
    build_context,
    cert_info,
    expiry_verdict,
)
from probed.options import format_duration, format_size
from probed.phase import set_phase
from probed.redact import Redactor
from probed.threads import run_blocking
from probed.thresholds import Limit, WarnFail

__all__ = ["MysqlCheck", "MysqlOptions"]

# Time kept back from the run's timeout to kill a running query on a second connection.
_MIN_RESERVE: Final = 0.1
_MAX_RESERVE: Final = 1.0
_KILL_BUDGET: Final = 1 << 20
_FETCH_BATCH: Final = 256
_DOING: Final = {
    "connect": "connecting",
    "auth": "logging in",
    "query": "running the query",
    "role": "reading the role",
}


class MysqlCheck(Check[MysqlOptions]):
    """Connect to MySQL/MariaDB, run a query and check its answer, the role and the lag."""

    type_name: ClassVar[str] = "mysql"
    options_model: ClassVar[type[CheckOptions]] = MysqlOptions
    requires: ClassVar[tuple[str, ...]] = ("aiomysql",)
    extra: ClassVar[str | None] = "mysql"
    description: ClassVar[str] = "MySQL/MariaDB: connect, run a query, check value, role and lag"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_mysql_rows", "Rows returned by the check's query"),
        MetricDef(
            "probed_mysql_query_value",
            "First column of the first row of the check's query, when it is a number",
        ),
        MetricDef("probed_mysql_read_only", "1 if the server has @@read_only on, else 0"),
        MetricDef(
            "probed_mysql_replica",
            "1 if replication from a source is configured (SHOW REPLICA STATUS has a row)",
        ),
        MetricDef(
            "probed_mysql_replication_running",
            "1 if both replication threads (IO and SQL) of a replica run, else 0",
        ),
        MetricDef(
            "probed_mysql_replication_lag_seconds",
            "Seconds_Behind_Master (Seconds_Behind_Source) of a replica",
        ),
        CERT_EXPIRY_METRIC,
    )

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.ssl_context: ssl.SSLContext | None = None
        self._tls_error: str | None = None
        self._ready = False
        self._kills: set[asyncio.Task[None]] = set()
        self._cert: CertInfo | None = None  # of the last run's TLS connection

    async def setup(self) -> None:
        """Import the driver and build the SSL context once, in a thread (both block)."""
        await run_blocking(importlib.import_module, "aiomysql")
        await run_blocking(mc.connection_class)
        if self.options.tls is not None:
            try:
                self.ssl_context = await run_blocking(build_context, self.options.tls)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self._tls_error = f"cannot load the TLS configuration: {exc}"
        self._ready = True

    async def close(self) -> None:
        """Wait (briefly) for kills of queries left running by cancelled runs."""
        if self._kills:
            await asyncio.wait(self._kills, timeout=2.0)

    def _secrets(self) -> tuple[str, ...]:
        extra = (self.options.password.get_secret_value(),) if self.options.password else ()
        return (self.options.dsn.secrets() if self.options.dsn else ()) + extra

    def _new_connection(self, budget: Budget, timeout: float) -> Any:
        host, port, user, password, database = self.options.target()
        conn = mc.connection_class()(
            host=host,
            port=port,
            user=user,
            password=password,
            db=database or None,
            connect_timeout=max(timeout, 0.001),
            ssl=self.ssl_context,
            program_name="probed",
            local_infile=False,
        )
        conn.budget = budget
        conn.require_tls = self.options.tls is not None
        conn.server_name = self.options.tls.server_name if self.options.tls else None
        return conn

    async def _connect(self, budget: Budget, timeout: float) -> Any:
        conn = self._new_connection(budget, timeout)
        try:
            await conn._connect()
        except BaseException:  # cancelled or failed mid-handshake: nobody else can close it
            conn.close()
            raise
        return conn

    async def run(self) -> Result:
        """Connect, query, check, close; every expected failure becomes a failed result."""
        if not self._ready:
            await self.setup()
        opts = self.options
        if self._tls_error:
            return Result.fail(Reason.TLS, f"{opts.endpoint}: {self._tls_error}")
        reserve = min(_MAX_RESERVE, max(_MIN_RESERVE, self.spec.timeout * 0.2))
        budget = Budget(opts.max_response_size)
        phases: dict[str, float] = {}
        phase = "connect"
        conn: Any = None
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.spec.timeout - reserve) as deadline:
                set_phase(_DOING["connect"])
                # The driver's own connect timeout is longer: the run's deadline speaks first.
                conn = self._new_connection(budget, self.spec.timeout)
                try:
                    await conn._connect()
                finally:
                    phase = self._login_phases(conn, start, phases)
                phase = "query"
                set_phase(_DOING["query"])
                rows, first = await self._query(conn, phases)
                role: mc.Role | None = None
                if opts.wants_role:
                    phase = "role"
                    set_phase(_DOING["role"])
                    role_start = time.perf_counter()
                    try:
                        role = await mc.read_role(conn)
                    finally:
                        phases["role"] = time.perf_counter() - role_start
            return self._evaluate(rows, first, role, phases, self._cert_values(conn))
        except TimeoutError as exc:
            if not deadline.expired():  # not ours: the driver's (classified as a timeout)
                return self._failure(exc, phase, phases)
            return await self._timed_out(conn, phase, phases, reserve)
        except asyncio.CancelledError:
            if phase in ("query", "role") and conn is not None:
                self._kill_later(conn)
            raise
        except Exception as exc:
            if budget.exceeded:
                return self._too_much(phase, phases)
            return self._failure(exc, phase, phases)
        finally:
            if conn is not None:
                conn.close()

    def _login_phases(self, conn: Any, start: float, phases: dict[str, float]) -> str:
        """Split connect/auth at the server greeting; the phase a failure belongs to."""
        now = time.perf_counter()
        if conn.greeted is None:
            phases["connect"] = now - start
            return "connect"
        phases["connect"] = conn.greeted - start
        phases["auth"] = now - conn.greeted
        return "auth"

    async def _query(self, conn: Any, phases: dict[str, float]) -> tuple[int, tuple[Any, ...]]:
        """Run the query, streaming rows: only the first is kept, the rest are counted."""
        import aiomysql

        started = time.perf_counter()
        try:
            cur = await conn.cursor(aiomysql.SSCursor)
            await cur.execute(self.options.query)
            count, first = 0, ()
            while batch := await cur.fetchmany(_FETCH_BATCH):
                if not count:
                    first = tuple(batch[0])
                count += len(batch)
            await cur.close()
            return count, first
        finally:
            phases["query"] = time.perf_counter() - started

    def _cert_values(self, conn: Any) -> dict[str, float]:
        transport = conn._writer.transport if conn._writer is not None else None
        cert = cert_info(transport.get_extra_info("ssl_object")) if transport else None
        self._cert = cert
        return {"probed_tls_cert_expiry_timestamp_seconds": cert.not_after} if cert else {}

    async def _timed_out(
        self, conn: Any, phase: str, phases: dict[str, float], reserve: float
    ) -> Result:
        doing = _DOING.get(phase, phase)
        text = (
            f"no answer from {self.options.endpoint} while {doing} within the timeout of "
            f"{format_duration(self.spec.timeout)}"
        )
        if phase in ("connect", "auth"):
            text += " (server hung or overloaded, or not MySQL on that port)"
        elif conn is not None:
            thread_id = int(conn.server_thread_id[0])
            conn.close()
            try:
                async with asyncio.timeout(reserve * 0.8):
                    await mc.kill_query(
                        lambda: self._connect(Budget(_KILL_BUDGET), reserve), thread_id
                    )
                text += f"; the query was killed on the server (KILL QUERY {thread_id})"
            except Exception as exc:
                detail = short(str(exc)) or type(exc).__name__
                text += (
                    f"; killing it on the server failed ({detail}): it may still be running "
                    f"there (thread {thread_id})"
                )
        return Result.fail(Reason.TIMEOUT, Redactor(self._secrets())(text), phases=phases)

    def _kill_later(self, conn: Any) -> None:
        """The run was cancelled mid-query: kill the query in the background (bounded)."""
        thread_id = int(conn.server_thread_id[0])

        async def kill() -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await mc.kill_query(lambda: self._connect(Budget(_KILL_BUDGET), 2.0), thread_id)

        task = asyncio.get_running_loop().create_task(kill())
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)

    def _evaluate(
        self,
        rows: int,
        first: tuple[Any, ...],
        role: mc.Role | None,
        phases: dict[str, float],
        values: dict[str, float],
    ) -> Result:
        opts = self.options
        values["probed_mysql_rows"] = float(rows)
        value = first[0] if first else None
        number = as_number(value)
        if number is not None:
            values["probed_mysql_query_value"] = number
        login = format_ms(phases["connect"] + phases.get("auth", 0.0))
        how = "TLS " if "probed_tls_cert_expiry_timestamp_seconds" in values else ""
        summary = (
            f"{opts.endpoint}: {how}connected in {login}, query returned {rows} "
            f"row{'s' if rows != 1 else ''} in {format_ms(phases['query'])}"
        )
        kw: dict[str, Any] = {"phases": phases, "values": values}
        query = short(opts.query, 80)
        if opts.expect_rows is not None and rows != opts.expect_rows:
            return Result.fail(
                Reason.ASSERTION, f"{summary}, expected {opts.expect_rows} (query: {query})", **kw
            )
        if opts.expect_value is not None:
            if not rows:
                return Result.fail(
                    Reason.ASSERTION,
                    f"{summary}, expected a first value of {opts.expect_value!r} (query: {query})",
                    **kw,
                )
            if not matches(value, opts.expect_value):
                return Result.fail(
                    Reason.ASSERTION,
                    f"{opts.endpoint}: query returned {short(repr(value), 80)}, expected "
                    f"{opts.expect_value!r} (query: {query})",
                    **kw,
                )
        if role is not None:
            values["probed_mysql_read_only"] = float(role.read_only)
            values["probed_mysql_replica"] = float(role.replica)
            if role.replica:
                values["probed_mysql_replication_running"] = float(role.replicating)
            if role.lag is not None:
                values["probed_mysql_replication_lag_seconds"] = role.lag
            problem = self._role_problem(role, summary, kw)
            if problem is not None:
                return problem
            summary += "; " + _describe(role)
        if self._cert is not None and opts.tls is not None:
            verdict = expiry_verdict(self._cert.not_after, opts.tls, time.time())
            if verdict is not None:
                status, reason, detail = verdict
                return Result(status, reason, f"{opts.endpoint}: {detail}", **kw)
        return Result.ok(summary, **kw)

    def _role_problem(self, role: mc.Role, summary: str, kw: dict[str, Any]) -> Result | None:
        opts = self.options
        where = opts.endpoint
        if opts.expect_role == "primary" and role.read_only:
            return Result.fail(
                ROLE,
                f"{where} is read-only (@@read_only=ON), expected a writable primary: writes "
                "will fail; check for a failover, or the wrong server in the options",
                **kw,
            )
        if opts.expect_role == "replica" and not role.replica:
            return Result.fail(
                ROLE,
                f"{where} has no replication configured (SHOW REPLICA STATUS is empty), "
                "expected a replica: a promoted replica, or the wrong server in the options",
                **kw,
            )
        if role.replica and not role.replicating and opts.expect_role == "replica":
            error = f": {role.error}" if role.error else ""
            return Result.fail(
                REPLICATION,
                f"{where}: replication is not running (IO thread: {role.io_running or '?'}, "
                f"SQL thread: {role.sql_running or '?'}){error}",
                **kw,
            )
        if role.lag is None or (
            opts.warn_replication_lag is None and opts.fail_replication_lag is None
        ):
            return None
        text = f"{summary}; replica, replication lag {format_duration(role.lag) or '0s'}"
        limit = Limit(
            text,
            role.lag,
            WarnFail(opts.warn_replication_lag, opts.fail_replication_lag),
            format_duration,
        )
        status = limit.status()
        if status is Status.OK:
            return None
        return Result(status, limit.reason, limit.message(), **kw)

    def _too_much(self, phase: str, phases: dict[str, float]) -> Result:
        limit = format_size(self.options.max_response_size)
        return Result.fail(
            Reason.PROTOCOL,
            f"{self.options.endpoint} sent more than {limit} (max_response_size) while "
            f"{_DOING.get(phase, phase)}; probed stopped reading there (is it MySQL on that "
            "port, or does the query return that much?)",
            phases=phases,
        )

    def _failure(self, exc: Exception, phase: str, phases: dict[str, float]) -> Result:
        reason, text = classify(exc, self.options.endpoint, _DOING.get(phase, phase))
        return Result.fail(reason, Redactor(self._secrets())(text), phases=phases)


def _describe(role: mc.Role) -> str:
    mode = "read-only" if role.read_only else "writable"
    if not role.replica:
        return f"{mode}, no replication configured"
    lag = "" if role.lag is None else f", replication lag {format_duration(role.lag) or '0s'}"
    state = "running" if role.replicating else "not running"
    return f"{mode} replica, replication {state}{lag}"


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``mysql`` check type."""
    return [MysqlCheck]
