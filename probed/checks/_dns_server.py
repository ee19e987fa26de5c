"""Where the ``dns`` check sends its query: ``server:`` parsing and the system resolver.

``server`` is ``host``, ``host:port``, a bare IPv6 address or ``[v6]:port``; without it the
check asks the first ``nameserver`` of ``/etc/resolv.conf`` (read with dnspython's parser).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

__all__ = ["DnsServer", "NoNameserverError", "parse_server", "system_nameserver"]

DEFAULT_PORT: Final = 53
RESOLV_CONF: Final = "/etc/resolv.conf"


class NoNameserverError(Exception):
    """The system resolver configuration names no usable nameserver."""


@dataclass(frozen=True, slots=True)
class DnsServer:
    """A DNS server address: host (IP literal or name) and port."""

    host: str
    port: int = DEFAULT_PORT

    @property
    def is_ip(self) -> bool:
        """True when ``host`` is an IP literal (no lookup needed)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def display(self) -> str:
        """``host:port`` with IPv6 in brackets, for messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port in server {value!r}: expected 1-65535")
    return int(text)


def parse_server(value: str) -> DnsServer:
    """Parse ``host``, ``host:port``, ``v6addr`` or ``[v6addr]:port``.

    :raises ValueError: with a message showing the accepted forms.
    """
    text = value.strip()
    if not text:
        raise ValueError("server must not be empty; use host, host:port or [v6]:port")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid server {value!r}: use [v6addr] or [v6addr]:port")
        port = _port(rest[1:], value) if rest else DEFAULT_PORT
    elif text.count(":") > 1:
        host, port = text, DEFAULT_PORT  # a bare IPv6 address
    elif ":" in text:
        host, _, port_text = text.partition(":")
        port = _port(port_text, value)
    else:
        host, port = text, DEFAULT_PORT
    if not host:
        raise ValueError(f"invalid server {value!r}: the host is missing")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r} in server {value!r}") from None
    return DnsServer(host, port)


def system_nameserver(filename: str = RESOLV_CONF) -> DnsServer:
    """The first nameserver of ``filename`` (blocking: call it through :func:`probed.run_blocking`).

    :raises NoNameserverError: if the file is missing or lists no nameserver.
    """
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver(filename=filename)
    except dns.resolver.NoResolverConfiguration as exc:
        detail = str(exc) or "no nameserver lines"
        raise NoNameserverError(
            f"no system resolver: {filename}: {detail}; set server: host[:port] on the check"
        ) from None
    nameserver = resolver.nameservers[0]
    return DnsServer(str(nameserver), int(resolver.port))
