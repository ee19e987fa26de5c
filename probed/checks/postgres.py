"""The ``postgres`` check type: connect to PostgreSQL with asyncpg and run one query.

Every run opens a fresh connection (connection time is part of what is measured), runs the
query (default ``SELECT 1``), optionally compares the first value or the row count, optionally
asks the server for its role (``pg_is_in_recovery()``) and replication lag, and closes the
connection: gracefully after a normal run, by aborting the socket after a failure or when the
daemon cancels the run at its timeout.

The password (in the DSN or the ``password`` option) never reaches a message: driver errors
are passed through a :class:`~probed.redact.Redactor` first.

Under the default ``sslmode=prefer`` a server without TLS (or anyone in between who answers the
TLS request with "no") gets the login in plain text and may ask for the password itself in
clear text. When a password is configured and a TCP connection came up, or was refused at the
login, without TLS, the check logs one warning per check (never the password): set
``sslmode=verify-full`` (with ``sslrootcert``) in the dsn, or ``sslmode=disable`` to say plain
text is intended.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import importlib
import logging
import os
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from probed import hookimpl
from probed._yaml import did_you_mean
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Status
from probed.checks._db_common import SecretUrl, format_ms, short, timed
from probed.checks._failures import network_failure
from probed.checks._pg_bounded import BoundedLoop, Budget
from probed.checks._reasons import (
    DATABASE_MISSING,
    QUERY,
    ROLE,
    TOO_MANY_CONNECTIONS,
    UNAVAILABLE,
)
from probed.options import Duration, Size, format_duration, format_size
from probed.phase import set_phase
from probed.redact import Redactor
from probed.threads import run_blocking
from probed.thresholds import Limit, WarnFail, check_order

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["PostgresCheck", "PostgresOptions"]

log = logging.getLogger("probed.checks.postgres")

_SCHEMES: Final = ("postgresql", "postgres")
_SSLMODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Time kept back from the driver's deadlines for cancelling a query and closing (see run()).
_MIN_RESERVE: Final = 0.05
_MAX_RESERVE: Final = 0.5
_DOING: Final = {
    "connect": "connecting",
    "query": "running the query",
    "role": "reading the role",
}

# Role and lag in one round trip. Lag is 0 when everything received has been replayed (an idle
# primary does not make a healthy replica look late); otherwise the age of the last replayed
# transaction.
_ROLE_QUERY: Final = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE
         WHEN NOT pg_is_in_recovery() THEN NULL
         WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
         ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8 AS lag
"""

_ROLE_WORDS: Final = {"master": "primary", "standby": "replica", "slave": "replica"}


def _check_role(value: Any) -> Any:
    """Word the error for a role that is not ``primary``/``replica`` (pydantic's is cryptic)."""
    if value is None or value in ("primary", "replica"):
        return value
    shown = repr(value) if isinstance(value, str) and len(value) <= 40 else "this value"
    hint = ""
    if isinstance(value, str) and value.lower() not in _ROLE_WORDS:
        hint = did_you_mean(value, ("primary", "replica"))
    raise ValueError(f"{shown} is not a role{hint}; use 'primary' (master) or 'replica' (standby)")


class PostgresOptions(CheckOptions):
    """Options of the ``postgres`` check type."""

    # Validation errors must not echo the DSN they reject: it may hold the password.
    model_config = ConfigDict(hide_input_in_errors=True)  # merged with the base's

    dsn: SecretUrl = Field(
        description="postgresql://user[:password]@host:port/database[?sslmode=...]; "
        "the password is redacted everywhere"
    )
    password: SecretStr | None = Field(
        None, description="password, if not in the DSN (use ${file:/run/secrets/...})"
    )
    query: str = Field("SELECT 1", min_length=1, description="SQL to run on every check")
    expect_value: str | int | float | bool | None = Field(
        None, description="expected value of the first column of the first row"
    )
    expect_rows: int | None = Field(None, ge=0, description="expected number of rows")
    expect_role: Annotated[Literal["primary", "replica"] | None, BeforeValidator(_check_role)] = (
        Field(None, description="fail unless the server has this role (pg_is_in_recovery())")
    )
    warn_replication_lag: Duration | None = Field(
        None, description="warn when a replica's replay lag exceeds this"
    )
    max_response_size: Size = Field(
        16 * 2**20,
        gt=0,
        description="most bytes one run may receive from the server (handshake and results); "
        "over it the run fails with reason protocol (a server announcing a huge message "
        "cannot make probed buffer it)",
    )
    fail_replication_lag: Duration | None = Field(
        None, description="fail when a replica's replay lag exceeds this"
    )

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, dsn: SecretUrl) -> SecretUrl:
        if dsn.scheme not in _SCHEMES:
            raise ValueError(
                f"dsn must start with postgresql:// (got {dsn.scheme}://); "
                "example: postgresql://probe@127.0.0.1:5432/postgres"
            )
        sslmode = dsn.query().get("sslmode")
        if sslmode is not None and sslmode not in _SSLMODES:
            raise ValueError(f"sslmode={sslmode!r} in dsn is not one of {', '.join(_SSLMODES)}")
        return dsn

    @model_validator(mode="after")
    def _check_combinations(self) -> PostgresOptions:
        if self.password is not None and self.dsn.password is not None:
            raise ValueError(
                "the password is given twice, in dsn and in password; keep one "
                "(prefer password: ${file:/run/secrets/...})"
            )
        check_order(self, "replication_lag")
        return self

    @property
    def wants_role(self) -> bool:
        """Whether a run asks the server for its role and lag."""
        return (
            self.expect_role is not None
            or self.warn_replication_lag is not None
            or self.fail_replication_lag is not None
        )


def _matches(actual: Any, expected: str | int | float | bool) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(actual, bool) and actual is expected
    if isinstance(expected, int | float) and isinstance(actual, int | float | decimal.Decimal):
        return float(actual) == float(expected)
    return str(actual) == str(expected)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    return None


async def _close(conn: Any, timeout: float) -> None:
    """Close gracefully, even after a timeout or cancellation, within ``timeout`` seconds.

    A graceful close first lets asyncpg deliver the cancel request of an interrupted query, so
    the server stops it instead of running it to the end for a client that has gone. If that
    does not finish in time (or the run is cancelled again), asyncpg aborts the socket.
    """
    with contextlib.suppress(Exception):
        await conn.close(timeout=timeout)


class PostgresCheck(Check[PostgresOptions]):
    """Connect to PostgreSQL, run a query and check its answer, the role and the lag."""

    type_name: ClassVar[str] = "postgres"
    options_model: ClassVar[type[CheckOptions]] = PostgresOptions
    requires: ClassVar[tuple[str, ...]] = ("asyncpg",)
    extra: ClassVar[str | None] = "postgres"
    description: ClassVar[str] = "PostgreSQL: connect, run a query, check value, role and lag"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_postgres_rows", "Rows returned by the check's query"),
        MetricDef(
            "probed_postgres_query_value",
            "First column of the first row of the check's query, when it is a number",
        ),
        MetricDef(
            "probed_postgres_in_recovery",
            "1 if the server is a replica (pg_is_in_recovery()), 0 if a primary",
        ),
        MetricDef(
            "probed_postgres_replication_lag_seconds",
            "Replay lag of a replica in seconds (0 when all received WAL is replayed)",
        ),
    )

    _plaintext_warned = False  # the no-TLS password warning is logged once per check

    async def setup(self) -> None:
        """Import the driver once, in a thread: it takes long enough to stall the loop and
        would otherwise count against the first run's timeout."""
        for module in ("asyncpg",):
            await run_blocking(importlib.import_module, module)

    def _secrets(self) -> tuple[str, ...]:
        extra = (self.options.password.get_secret_value(),) if self.options.password else ()
        return self.options.dsn.secrets() + extra

    async def run(self) -> Result:
        """Connect, query, check, close; every expected failure becomes a failed result."""
        import asyncpg

        opts = self.options
        loop = asyncio.get_running_loop()
        # The driver's deadlines end a little before the daemon's, leaving time to cancel a
        # running query on the server and say goodbye; its errors also name the phase.
        reserve = min(_MAX_RESERVE, max(_MIN_RESERVE, self.spec.timeout * 0.1))
        deadline = loop.time() + self.spec.timeout - reserve

        def remaining() -> float:
            return max(deadline - loop.time(), 0.001)

        phases: dict[str, float] = {}
        phase = "connect"
        conn: Any = None
        budget = Budget(opts.max_response_size)
        bounded = BoundedLoop(loop, budget)
        try:
            set_phase(_DOING["connect"])
            with timed(phases, "connect"):
                conn = await asyncpg.connect(
                    dsn=opts.dsn.get_secret_value(),
                    password=opts.password.get_secret_value() if opts.password else None,
                    timeout=remaining(),
                    server_settings={"application_name": "probed"},
                    # Every byte received counts against the budget (see _pg_bounded).
                    loop=bounded,
                )
            self._warn_plaintext(bounded)
            phase = "query"
            set_phase(_DOING["query"])
            with timed(phases, "query"):
                rows = await conn.fetch(opts.query, timeout=remaining())
            role: tuple[bool, float | None] | None = None
            if opts.wants_role:
                phase = "role"
                set_phase(_DOING["role"])
                with timed(phases, "role"):
                    record = await conn.fetchrow(_ROLE_QUERY, timeout=remaining())
                role = (bool(record["in_recovery"]), record["lag"])
            return self._evaluate(rows, role, phases)
        except Exception as exc:
            if budget.exceeded:
                return self._too_much(phase, phases)
            if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
                self._warn_plaintext(bounded)  # the server asked for the password: it was sent
            return self._failure(exc, phase, phases)
        finally:
            if conn is not None:
                await _close(conn, reserve)

    def _warn_plaintext(self, connection: BoundedLoop) -> None:
        """Log once per check when the password went to a TCP peer without TLS."""
        if self._plaintext_warned or not self._secrets():
            return
        if not connection.tcp or connection.tls:  # a unix socket, or TLS: nothing in the clear
            return
        sslmode = self.options.dsn.query().get("sslmode") or os.environ.get("PGSSLMODE")
        if (sslmode or "prefer") == "disable":  # plain text chosen explicitly
            return
        self._plaintext_warned = True
        log.warning(
            "check %s: the PostgreSQL password was offered to %s without TLS (sslmode=%s and "
            "the server did not start TLS): that server, or anyone on the path, can ask for it "
            "in clear text; set sslmode=verify-full (with sslrootcert) in the dsn, or "
            "sslmode=disable if plain text is intended",
            self.spec.name,
            self.options.dsn.endpoint,
            sslmode or "prefer (the default)",
        )

    def _evaluate(
        self,
        rows: Sequence[Any],
        role: tuple[bool, float | None] | None,
        phases: dict[str, float],
    ) -> Result:
        opts = self.options
        values: dict[str, float] = {"probed_postgres_rows": float(len(rows))}
        first = rows[0][0] if rows and len(rows[0]) else None
        number = _as_number(first)
        if number is not None:
            values["probed_postgres_query_value"] = number
        summary = (
            f"{self.options.dsn.endpoint}: connected in {format_ms(phases['connect'])}, "
            f"query returned {len(rows)} row{'s' if len(rows) != 1 else ''} "
            f"in {format_ms(phases['query'])}"
        )
        if role is not None:
            in_recovery, lag = role
            values["probed_postgres_in_recovery"] = 1.0 if in_recovery else 0.0
            if lag is not None:
                values["probed_postgres_replication_lag_seconds"] = float(lag)
        kw: dict[str, Any] = {"phases": phases, "values": values}

        if opts.expect_rows is not None and len(rows) != opts.expect_rows:
            return Result.fail(
                Reason.ASSERTION,
                f"{summary}, expected {opts.expect_rows} (query: {short(opts.query, 80)})",
                **kw,
            )
        if opts.expect_value is not None:
            if not rows:
                return Result.fail(
                    Reason.ASSERTION,
                    f"{summary}, expected a first value of {opts.expect_value!r} "
                    f"(query: {short(opts.query, 80)})",
                    **kw,
                )
            if not _matches(first, opts.expect_value):
                return Result.fail(
                    Reason.ASSERTION,
                    f"{self.options.dsn.endpoint}: query returned {short(repr(first), 80)}, "
                    f"expected {opts.expect_value!r} (query: {short(opts.query, 80)})",
                    **kw,
                )
        if role is None:
            return Result.ok(summary, **kw)
        return self._evaluate_role(role, summary, kw)

    def _evaluate_role(
        self, role: tuple[bool, float | None], summary: str, kw: dict[str, Any]
    ) -> Result:
        opts = self.options
        in_recovery, lag = role
        actual = "replica" if in_recovery else "primary"
        if opts.expect_role is not None and actual != opts.expect_role:
            hint = (
                "a failover or promotion happened, or the DSN points at the wrong server"
                if opts.expect_role == "replica"
                else "writes will fail; check for a failover or the wrong server in the DSN"
            )
            return Result.fail(
                ROLE,
                f"{opts.dsn.endpoint} is a {actual}, expected a {opts.expect_role}: {hint}",
                **kw,
            )
        if lag is None:
            # A primary has no replay lag: the lag limits do not apply (use expect_role to
            # require a replica).
            note = ", replication lag not applicable" if opts.wants_role else ""
            return Result.ok(f"{summary}; {actual}{note}", **kw)
        text = f"{summary}; replica, replication lag {format_duration(lag) if lag else '0s'}"
        limit = Limit(
            text,
            lag,
            WarnFail(opts.warn_replication_lag, opts.fail_replication_lag),
            format_duration,
        )
        status = limit.status()
        if status is Status.OK:
            return Result.ok(text, **kw)
        return Result(status, limit.reason, limit.message(), **kw)

    def _too_much(self, phase: str, phases: dict[str, float]) -> Result:
        limit = format_size(self.options.max_response_size)
        return Result.fail(
            Reason.PROTOCOL,
            f"{self.options.dsn.endpoint} sent more than {limit} (max_response_size) while "
            f"{_DOING.get(phase, phase)}; probed stopped reading there (is it PostgreSQL on "
            "that port, or does the query return that much?)",
            phases=phases,
        )

    def _failure(self, exc: Exception, phase: str, phases: dict[str, float]) -> Result:
        reason, text = self._classify(exc, phase)
        status = Status.FAIL
        return Result(status, reason, Redactor(self._secrets())(text), phases=phases)

    def _classify(self, exc: Exception, phase: str) -> tuple[str, str]:
        import asyncpg

        where = self.options.dsn.endpoint
        detail = short(str(exc)) or type(exc).__name__
        doing = _DOING.get(phase, phase)
        if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
            return Reason.AUTH, f"{where} rejected the login: {detail} (check user and password)"
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return DATABASE_MISSING, f"{where}: {detail} (check the database name in the dsn)"
        if isinstance(exc, asyncpg.TooManyConnectionsError):
            return TOO_MANY_CONNECTIONS, (
                f"{where} refused a new connection: {detail} (max_connections reached; "
                "look for a connection leak or an exhausted pool)"
            )
        if isinstance(exc, asyncpg.CannotConnectNowError):
            return UNAVAILABLE, f"{where} is not accepting connections yet: {detail}"
        if isinstance(exc, asyncpg.QueryCanceledError):
            return Reason.TIMEOUT, f"{where}: query cancelled by the server: {detail}"
        if isinstance(
            exc,
            asyncpg.PostgresConnectionError
            | asyncpg.AdminShutdownError
            | asyncpg.CrashShutdownError
            | asyncpg.ConnectionDoesNotExistError,
        ):
            return Reason.CONNECTION_RESET, (
                f"{where} closed the connection while {doing}: {detail} "
                "(backend terminated, or the server restarted or crashed)"
            )
        if isinstance(exc, asyncpg.PostgresError):
            sqlstate = getattr(exc, "sqlstate", None) or "?"
            return QUERY, f"{where}: query failed with SQLSTATE {sqlstate}: {detail}"
        if isinstance(exc, TimeoutError):
            return Reason.TIMEOUT, (
                f"no answer from {where} while {doing} within the timeout of "
                f"{format_duration(self.spec.timeout)} (server hung, overloaded, or not PostgreSQL)"
            )
        network = network_failure(exc, where)
        if network is not None:
            return network
        if isinstance(exc, ConnectionError) and "SSL upgrade" in str(exc):
            return Reason.PROTOCOL, (
                f"{where} did not answer the PostgreSQL handshake: is it PostgreSQL on that port?"
            )
        if isinstance(exc, asyncpg.ClientConfigurationError):
            return Reason.EXCEPTION, f"{where}: the dsn or options are not usable: {detail}"
        if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
            return Reason.CONNECTION_RESET, f"{where}: connection lost while {doing}: {detail}"
        if isinstance(exc, asyncpg.InterfaceError | asyncpg.InternalClientError):
            return Reason.PROTOCOL, f"{where}: protocol error while {doing}: {detail}"
        if isinstance(exc, OSError):
            return Reason.CONNECTION_RESET, f"{where}: network error while {doing}: {detail}"
        return Reason.EXCEPTION, f"{where}: unexpected {type(exc).__name__} while {doing}: {detail}"


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``postgres`` check type."""
    return [PostgresCheck]
