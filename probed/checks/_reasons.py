"""Reasons of the built-in check types beyond the well-known :class:`~probed.check.Reason` set.

Defined once here, so two check types that see the same thing (a database refusing clients
over its limit, a replica where a primary was expected) report the same ``reason`` label.
The section of each check type in docs/check-types.md lists the reasons it may report.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CONFIG",
    "DATABASE_MISSING",
    "EXIT_CODE",
    "HEADER_SIZE",
    "HOST_KEY",
    "LOADING",
    "NOT_FOUND",
    "PACKET_LOSS",
    "PERMISSION",
    "PLUGIN",
    "PROXY",
    "PROXY_AUTH",
    "QUERY",
    "RCODE",
    "REDIRECT_REFUSED",
    "REPLICATION",
    "ROLE",
    "SIGNAL",
    "TOO_MANY_CONNECTIONS",
    "TRUNCATED",
    "UNAVAILABLE",
    "UNHEALTHY",
    "UNSUPPORTED",
]

CONFIG: Final = "config"
"""The options cannot work with the check's timeout (a window, a number of packets)."""

PERMISSION: Final = "permission"
"""The process may not do what the check needs (open an ICMP socket, read a path)."""

NOT_FOUND: Final = "not_found"
"""The path to look at does not exist."""

UNSUPPORTED: Final = "unsupported"
"""This host offers no way to measure it (no /proc, no statvfs, no psutil)."""

ROLE: Final = "role"
"""A database server has the other role (primary vs replica) than ``expect_role``."""

DATABASE_MISSING: Final = "database_missing"
"""The database named in the URL or DSN does not exist."""

TOO_MANY_CONNECTIONS: Final = "too_many_connections"
"""The server refused a new client: its connection limit is reached."""

UNAVAILABLE: Final = "unavailable"
"""The server is up but not serving yet (starting, recovering, primary down)."""

QUERY: Final = "query"
"""PostgreSQL, MySQL: the check's query failed (SQLSTATE or error number in the message)."""

REPLICATION: Final = "replication"
"""MySQL: a replica's replication threads (IO, SQL) are not running."""

LOADING: Final = "loading"
"""Redis: the dataset is still being loaded into memory."""

PACKET_LOSS: Final = "packet_loss"
"""ICMP: more echo requests went unanswered than the loss threshold allows."""

TRUNCATED: Final = "truncated"
"""DNS: the UDP answer had the TC bit set and ``fallback_tcp`` is off."""

RCODE: Final = "rcode"
"""DNS: the response code is not one of ``valid_rcodes``."""

UNHEALTHY: Final = "unhealthy"
"""json_api: the service's own health document says warn or fail (DOWN, fail, degraded...)."""

HEADER_SIZE: Final = "header_size"
"""http, json_api: the response head is over a cap (status or header line, header count,
``max_header_size``); reading stopped there."""

REDIRECT_REFUSED: Final = "redirect_refused"
"""http, json_api: a redirect led to an address the check may not follow to (link-local or a
cloud metadata address by default; private ranges when ``follow_redirects_to_private`` is off)."""

HOST_KEY: Final = "host_key"
"""ssh: the server's host key is not the one pinned in ``host_key_fingerprint``."""

EXIT_CODE: Final = "exit_code"
"""ssh: the remote command ended with another exit code than expected (or by a signal); exec:
the command exited with a code outside the Nagios range 0-3."""

PLUGIN: Final = "plugin"
"""exec: the command's own verdict, exit 1 (warn), 2 (fail) or 3 (unknown)."""

SIGNAL: Final = "signal"
"""exec: the command was killed by a signal probed did not send."""

PROXY: Final = "proxy"
"""http, json_api: the proxy failed or refused, not the target: it could not be reached, refused
or failed the ``CONNECT`` (its status in the message), or sent a reply that is not HTTP."""

PROXY_AUTH: Final = "proxy_auth"
"""http, json_api: the proxy asked for credentials or refused the ones sent (407)."""
