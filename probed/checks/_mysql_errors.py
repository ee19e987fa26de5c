"""How the ``mysql`` check names a failure: driver errors and error numbers to reasons.

MySQL and MariaDB share their error numbers (``ER_*`` from the server, ``CR_*`` from the
client library that PyMySQL mirrors); a few get a reason of their own, the rest of the server's
are ``query``. Network failures wrapped by the driver (``CR_CONN_HOST_ERROR`` around an
``OSError``) are named by :func:`probed.checks._failures.network_failure`.
"""

from __future__ import annotations

import ssl
from typing import Final

from probed.check import Reason
from probed.checks import _mysql_conn as mc
from probed.checks._db_common import short
from probed.checks._failures import network_failure
from probed.checks._reasons import (
    DATABASE_MISSING,
    PERMISSION,
    QUERY,
    TOO_MANY_CONNECTIONS,
    UNAVAILABLE,
)
from probed.checks._tls import describe_ssl_error

__all__ = ["classify"]

# MySQL/MariaDB error numbers (ER_* / CR_*) with a reason of their own.
_AUTH_ERRORS: Final = {1044, 1045, 1130, 1251, 1698, 2059}
_TOO_MANY: Final = {1040, 1203}  # ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS
_INTERRUPTED: Final = {1317, 1969, 3024}  # killed, max_statement_time, max_execution_time
_GONE: Final = {1927, 2006, 2013}  # connection killed, server gone away, lost during query
_UNAVAILABLE: Final = {1053, 1129, 1152, 1184}  # shutdown, host blocked, aborted connection


def classify(exc: Exception, where: str, doing: str) -> tuple[str, str]:
    """(reason, message) for an exception of a run; the message is not redacted yet."""
    import pymysql

    if isinstance(exc, mc.TlsRefusedError):
        return Reason.TLS, (
            f"{where} does not offer TLS, and tls is configured: nothing was sent "
            "(enable TLS on the server: ssl_cert/ssl_key, or remove tls:)"
        )
    if isinstance(exc, mc.ClearTextRefusedError):
        return Reason.AUTH, (
            f"{where} asked for the password in clear text ({exc.plugin}) on a connection "
            "without TLS: probed refused to send it (configure tls:, or another "
            "authentication plugin for the user)"
        )
    if isinstance(exc, mc.RoleUnreadableError):
        return PERMISSION, (
            f"{where}: cannot read the role: {short(str(exc))} (grant the check's user "
            "SLAVE MONITOR on MariaDB >= 10.5, or REPLICATION CLIENT on MySQL)"
        )
    tls_error = next((e for e in _chain(exc) if isinstance(e, ssl.SSLError)), None)
    if tls_error is not None:
        return Reason.TLS, f"{where}: {describe_ssl_error(tls_error)}"
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
        detail = short(str(exc.args[1]) if len(exc.args) > 1 else str(exc))
        found = _classify_code(code, detail, where, doing)
        if found is not None:
            return found
    if any(isinstance(e, TimeoutError) for e in _chain(exc)):
        return Reason.TIMEOUT, f"no answer from {where} while {doing} (the driver gave up)"
    network = network_failure(exc, where)
    if network is not None:
        return network
    detail = short(str(exc)) or type(exc).__name__
    if isinstance(exc, pymysql.err.MySQLError):
        hint = " (is it MySQL on that port?)" if doing in ("connecting", "logging in") else ""
        return Reason.PROTOCOL, f"{where}: protocol error while {doing}: {detail}{hint}"
    if isinstance(exc, OSError):
        return Reason.CONNECTION_RESET, f"{where}: network error while {doing}: {detail}"
    return Reason.EXCEPTION, f"{where}: unexpected {type(exc).__name__} while {doing}: {detail}"


def _classify_code(code: int, detail: str, where: str, doing: str) -> tuple[str, str] | None:
    said = f"{detail} (error {code})"
    if code in _AUTH_ERRORS:
        return Reason.AUTH, f"{where} rejected the login: {said} (check user and password)"
    if code == 1049:  # ER_BAD_DB_ERROR
        return DATABASE_MISSING, f"{where}: {said} (check the database name)"
    if code in _TOO_MANY:
        return TOO_MANY_CONNECTIONS, (
            f"{where} refused a new connection: {said} (max_connections or "
            "max_user_connections reached; look for a connection leak or an exhausted pool)"
        )
    if code in _INTERRUPTED:
        return Reason.TIMEOUT, f"{where}: the server interrupted the query: {said}"
    if code in _GONE:
        return Reason.CONNECTION_RESET, (
            f"{where} closed the connection while {doing}: {said} (connection killed, "
            "or the server restarted or crashed)"
        )
    if code in _UNAVAILABLE:
        hint = " (run FLUSH HOSTS on the server)" if code == 1129 else ""
        return UNAVAILABLE, f"{where} is not serving: {said}{hint}"
    if code == 2003:  # CR_CONN_HOST_ERROR wraps the OSError: let the network rules speak
        return None
    if 1000 <= code < 2000 or code >= 3000:
        return QUERY, f"{where}: query failed: {said}"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
