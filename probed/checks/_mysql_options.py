"""Options of the ``mysql`` check type, and how its expected value is compared.

- :class:`MysqlOptions`: a ``dsn`` (``mysql://`` or ``mariadb://``, the password redacted
  everywhere) or ``host``/``port``/``user``/``password``/``database``; the query and its
  expectations; the role and lag limits; ``tls``; ``max_response_size``.
- :func:`matches`: ``expect_value`` against the first value, MySQL style (no boolean type:
  ``TRUE`` is 1; DECIMAL and binary strings).
"""

from __future__ import annotations

import decimal
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from probed._yaml import did_you_mean
from probed.check import CheckOptions
from probed.checks._db_common import SecretUrl
from probed.checks._tls import TlsOptions, tls_shorthand
from probed.options import Duration, Size
from probed.thresholds import check_order

__all__ = ["MysqlOptions", "as_number", "matches"]

_SCHEMES: Final = ("mysql", "mariadb")


def _check_role(value: Any) -> Any:
    """Word the error for a role that is not primary/replica/any (pydantic's is cryptic)."""
    if value is None or value in ("primary", "replica", "any"):
        return value
    shown = repr(value) if isinstance(value, str) and len(value) <= 40 else "this value"
    hint = ""
    if isinstance(value, str) and value.lower() not in ("master", "slave", "source"):
        hint = did_you_mean(value, ("primary", "replica", "any"))
    raise ValueError(
        f"{shown} is not a role{hint}; use 'primary' (master, source), 'replica' (slave) or 'any'"
    )


class MysqlOptions(CheckOptions):
    """Options of the ``mysql`` check type."""

    # Validation errors must not echo the DSN they reject: it may hold the password.
    model_config = ConfigDict(hide_input_in_errors=True)  # merged with the base's

    dsn: SecretUrl | None = Field(
        None,
        description="mysql://user[:password]@host[:port][/database] (mariadb:// too); or give "
        "host, user, password, database; the password is redacted everywhere",
    )
    host: str | None = Field(None, min_length=1, description="server host (instead of dsn)")
    port: int = Field(3306, ge=1, le=65535, description="server port (with host)")
    user: str | None = Field(None, min_length=1, description="user name (with host)")
    password: SecretStr | None = Field(
        None, description="password, if not in the DSN (use ${file:/run/secrets/...})"
    )
    database: str | None = Field(None, min_length=1, description="default database (with host)")
    query: str = Field("SELECT 1", min_length=1, description="SQL to run on every check")
    expect_value: str | int | float | bool | None = Field(
        None, description="expected value of the first column of the first row"
    )
    expect_rows: int | None = Field(None, ge=0, description="expected number of rows")
    expect_role: Annotated[
        Literal["primary", "replica", "any"] | None, BeforeValidator(_check_role)
    ] = Field(
        None,
        description="primary: fail when @@read_only is on; replica: fail unless replication "
        "is configured and running; any: only report the role and lag",
    )
    warn_replication_lag: Duration | None = Field(
        None, description="warn when a replica's lag (Seconds_Behind_Master) exceeds this"
    )
    fail_replication_lag: Duration | None = Field(
        None, description="fail when a replica's lag (Seconds_Behind_Master) exceeds this"
    )
    tls: Annotated[TlsOptions | None, BeforeValidator(tls_shorthand)] = Field(
        None,
        description="Require TLS: true, or a mapping of TLS settings (ca_file, server_name...)",
    )
    max_response_size: Size = Field(
        16 * 2**20,
        gt=0,
        description="most bytes one run may read from the server (greeting, login and "
        "results; rows are counted as they stream, only the first is kept); over it the run "
        "fails with reason protocol",
    )

    @field_validator("dsn")
    @classmethod
    def _check_dsn(cls, dsn: SecretUrl | None) -> SecretUrl | None:
        if dsn is None:
            return None
        if dsn.scheme not in _SCHEMES:
            raise ValueError(
                f"dsn must start with mysql:// or mariadb:// (got {dsn.scheme}://); "
                "example: mysql://probe@127.0.0.1:3306/app"
            )
        if dsn.query():
            raise ValueError(
                "dsn takes no ?parameters; use the options (tls: for TLS, password: for the "
                "password)"
            )
        if not dsn.host:
            raise ValueError("dsn has no host; example: mysql://probe@127.0.0.1:3306/app")
        if not dsn.username:
            raise ValueError("dsn has no user name; example: mysql://probe@127.0.0.1:3306/app")
        return dsn

    @model_validator(mode="after")
    def _check_combinations(self) -> MysqlOptions:
        if self.dsn is None and self.host is None:
            raise ValueError("give dsn (mysql://user@host:port/db) or host and user")
        if self.dsn is not None:
            both = [k for k in ("host", "user", "database") if getattr(self, k) is not None]
            if both or "port" in self.model_fields_set:
                raise ValueError(
                    f"dsn and {', '.join(both or ['port'])} both say where to connect; keep one"
                )
            if self.password is not None and self.dsn.password is not None:
                raise ValueError(
                    "the password is given twice, in dsn and in password; keep one "
                    "(prefer password: ${file:/run/secrets/...})"
                )
        elif self.user is None:
            raise ValueError("user is required with host (MySQL has no default user)")
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

    def target(self) -> tuple[str, int, str, str, str]:
        """(host, port, user, password, database) for the driver."""
        password = self.password.get_secret_value() if self.password else ""
        if self.dsn is not None:
            database = unquote(urlsplit(self.dsn.get_secret_value()).path.lstrip("/"))
            return (
                self.dsn.host,
                self.dsn.port or 3306,
                self.dsn.username or "",
                self.dsn.password or password,
                database,
            )
        return self.host or "", self.port, self.user or "", password, self.database or ""

    @property
    def endpoint(self) -> str:
        """``host:port`` for messages (no credentials)."""
        host, port = (
            (self.dsn.host, self.dsn.port or 3306) if self.dsn else (self.host or "", self.port)
        )
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def matches(actual: Any, expected: str | int | float | bool) -> bool:
    """MySQL has no boolean type (TRUE is 1) and returns DECIMAL and binary strings."""
    if isinstance(actual, bytes | bytearray):
        actual = bytes(actual).decode("utf-8", "replace")
    if isinstance(expected, bool):
        number = as_number(actual)
        return number is not None and number == float(expected)
    if isinstance(expected, int | float):
        number = as_number(actual)
        return number is not None and number == float(expected)
    return str(actual) == expected


def as_number(value: Any) -> float | None:
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    return None
