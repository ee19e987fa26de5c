"""Timed connection set-up shared by the ``http`` and ``tcp`` probes.

:func:`open_connection` resolves (skipped for IP literals), connects and optionally wraps the
connection in TLS, recording the ``resolve``, ``connect`` and ``tls`` phases separately, and
turns every expected failure into a :class:`ProbeError` carrying a bounded reason and a sentence
for the operator.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final, Literal, TypeVar

from probed.check import Reason, Result
from probed.checks._failures import describe
from probed.checks._reasons import REDIRECT_REFUSED
from probed.checks._tls import (
    CERT_EXPIRY_METRIC,
    CertInfo,
    allow_versions,
    cert_info,
    describe_ssl_error,
)
from probed.checks._tlschain import read_chain, tls_version_label, with_chain
from probed.phase import set_phase

__all__ = [
    "METADATA_ADDRESSES",
    "AddressCheck",
    "IpVersion",
    "PreferredFamily",
    "ProbeError",
    "address_policy",
    "connect_and_close",
    "family_for",
    "is_ip_literal",
    "open_connection",
    "start_tls",
]

IpVersion = Literal["any", "ip4", "ip6"]

_FAMILIES: Final = {"any": socket.AF_UNSPEC, "ip4": socket.AF_INET, "ip6": socket.AF_INET6}

ProtoT = TypeVar("ProtoT", bound=asyncio.Protocol)

AddressCheck = Callable[[str], "str | None"]
"""Judges an IP address before a connection to it: why it is refused, or ``None``."""

METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")}
)
"""Cloud instance metadata services (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba): refused with
link-local addresses, whatever range they are in."""


class ProbeError(Exception):
    """An expected failure of a probe: bounded ``reason``, human ``detail``, partial phases.

    :param reason: a :class:`probed.check.Reason` value.
    :param detail: what went wrong, without the method/URL prefix and without secrets.
    :param phases: the phases measured before the failure.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        phases: dict[str, float] | None = None,
        cert: CertInfo | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.phases: dict[str, float] = phases if phases is not None else {}
        self.cert = cert

    def result(self, where: str) -> Result:
        """The failed :class:`Result`: ``where: detail``, the phases measured and, when a
        certificate was seen before the failure, its expiry."""
        values = {}
        if self.cert is not None:
            values[CERT_EXPIRY_METRIC.name] = self.cert.not_after
        return Result.fail(
            self.reason, f"{where}: {self.detail}", phases=self.phases, values=values
        )


class PreferredFamily(int):
    """``AF_UNSPEC`` (every family is resolved) with a family whose addresses are tried first:
    blackbox's ``preferred_ip_protocol`` with ``ip_protocol_fallback``. An ``int`` so it goes
    through every ``family=`` parameter unchanged; :func:`connect_socket` orders by it."""

    prefer: int

    def __new__(cls, prefer: int) -> PreferredFamily:
        self = super().__new__(cls, socket.AF_UNSPEC)
        self.prefer = prefer
        return self


def family_for(ip_version: str, preferred: str | None = None, fallback: bool = True) -> int:
    """The ``socket`` address family for an ``ip_version`` option value, or for
    ``preferred_ip_protocol`` (``ip4``/``ip6``) + ``ip_protocol_fallback`` when ``ip_version``
    is ``any``: the preferred family alone without fallback, else a :class:`PreferredFamily`."""
    if preferred is None or ip_version != "any":
        return int(_FAMILIES[ip_version])
    family = int(_FAMILIES[preferred])
    return PreferredFamily(family) if fallback else family


@functools.lru_cache(maxsize=8192)  # called on every run; hosts repeat
def is_ip_literal(host: str) -> bool:
    """True when ``host`` is an IPv4 or IPv6 address (no resolution needed)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.cache  # four policies in all: one function each, shared by every check
def address_policy(allow_link_local: bool, allow_private: bool) -> AddressCheck | None:
    """An :data:`AddressCheck` refusing link-local and metadata addresses (unless
    ``allow_link_local``) and private ones (unless ``allow_private``: RFC 1918, loopback,
    unique local, CGNAT, as :attr:`ipaddress.IPv4Address.is_private` plus ``100.64.0.0/10``);
    ``None`` when both are allowed. IPv4-mapped, 6to4 and NAT64 (``64:ff9b::/96``) IPv6
    addresses are judged by the IPv4 address they embed."""
    if allow_link_local and allow_private:
        return None

    def check(host: str) -> str | None:
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            ip = _embedded_ipv4(ip) or ip
        if not allow_link_local:
            if ip in METADATA_ADDRESSES:
                return f"{ip}, a cloud metadata address (follow_redirects_to_link_local is off)"
            if ip.is_link_local:
                return f"{ip}, a link-local address (follow_redirects_to_link_local is off)"
        if not allow_private and (ip.is_private or ip in _SHARED):
            return f"{ip}, a private address (follow_redirects_to_private is off)"
        return None

    return check


_SHARED: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches: IPv4-mapped, 6to4 or NAT64 (well-known prefix)."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


def _refused(host: str, why: str, phases: dict[str, float]) -> ProbeError:
    where = why if is_ip_literal(host) else f"{host} at {why}"
    return ProbeError(REDIRECT_REFUSED, f"refused to connect to {where}", phases)


def _family_name(family: int) -> str:
    if family == socket.AF_INET:
        return " IPv4"
    return " IPv6" if family == socket.AF_INET6 else ""


async def _resolve(
    loop: asyncio.AbstractEventLoop, host: str, port: int, family: int
) -> list[tuple[int, tuple[Any, ...]]]:
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeError(
            Reason.DNS, f"cannot resolve{_family_name(family)} address of {host}: {exc.strerror}"
        ) from None
    # Keep the whole sockaddr: IPv6 link-local addresses need their scope id.
    addrs = [(int(info[0]), tuple(info[4])) for info in infos]
    if not addrs:
        raise ProbeError(Reason.DNS, f"no{_family_name(family)} address for {host}")
    return addrs


def _connect_error(exc: OSError, where: str) -> ProbeError:
    found = describe(exc, where)
    if found is None:
        return ProbeError(Reason.UNREACHABLE, f"cannot connect to {where}: {exc.strerror or exc}")
    return ProbeError(*found)


def format_addr(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _fetch_unverified_cert(
    loop: asyncio.AbstractEventLoop,
    addr: tuple[Any, ...],
    family: int,
    server_hostname: str,
    every_version: bool = False,
) -> CertInfo | None:
    """Handshake once more without verification to say *when* a certificate expired (or,
    ``every_version``, which TLS version the server speaks)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if every_version:
        allow_versions(ctx, ssl.TLSVersion.TLSv1)
    transport: asyncio.Transport | None = None
    try:
        transport, _ = await loop.create_connection(
            asyncio.Protocol,
            addr[0],
            addr[1],
            family=family,
            ssl=ctx,
            server_hostname=server_hostname or None,
        )
        return cert_info(transport.get_extra_info("ssl_object"))
    except (OSError, ssl.SSLError):
        return None
    finally:
        if transport is not None:
            transport.abort()


async def _addresses(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    family: int,
    phases: dict[str, float],
    address_check: AddressCheck | None,
) -> list[tuple[int, tuple[Any, ...]]]:
    """The (family, sockaddr) pairs to try for ``host``, in order; phase ``resolve`` filled
    when ``host`` is a name. Raises :class:`ProbeError` (with ``phases``) when there is none."""
    addrs: list[tuple[int, tuple[Any, ...]]]
    if is_ip_literal(host):
        fam: int = socket.AF_INET6 if ":" in host else socket.AF_INET
        if family not in (socket.AF_UNSPEC, fam):
            raise ProbeError(
                Reason.DNS,
                f"{host} is an IPv{6 if fam == socket.AF_INET6 else 4} address "
                f"but ip_version asks for IPv{6 if family == socket.AF_INET6 else 4}",
                phases,
            )
        addrs = [(int(fam), (host, port))]
    else:
        set_phase(f"resolving {host}")
        t0 = perf_counter()
        try:
            addrs = await _resolve(loop, host, port, family)
        except ProbeError as exc:
            phases["resolve"] = perf_counter() - t0
            exc.phases = phases
            raise
        phases["resolve"] = perf_counter() - t0
    prefer = getattr(family, "prefer", None)
    if prefer is not None:  # the preferred family first, the other one as the fallback
        addrs = sorted(addrs, key=lambda item: item[0] != prefer)
    if address_check is not None:
        judged = [(fam, addr, address_check(addr[0])) for fam, addr in addrs]
        addrs = [(fam, addr) for fam, addr, why in judged if why is None]
        if not addrs:
            raise _refused(host, str(judged[0][2]), phases)
    return addrs


async def connect_socket(
    host: str,
    port: int,
    *,
    family: int = socket.AF_UNSPEC,
    phases: dict[str, float],
    address_check: AddressCheck | None = None,
) -> tuple[socket.socket, int, tuple[Any, ...]]:
    """Resolve and connect a non-blocking TCP socket; fill ``phases`` (resolve, connect).

    :param address_check: addresses it refuses are not connected to (checked after
        resolution, so the address judged is the address connected to).
    :return: the connected socket (the caller closes it), its family and peer address.
    :raises ProbeError: for DNS and connect failures, with ``phases`` attached; with reason
        ``redirect_refused`` when ``address_check`` refuses every address of ``host``.
    """
    loop = asyncio.get_running_loop()
    addrs = await _addresses(loop, host, port, family, phases, address_check)
    t0 = perf_counter()
    last: ProbeError | None = None
    for fam, addr in addrs:
        set_phase(f"connecting to {format_addr(addr[0], addr[1])}")
        sock = socket.socket(fam, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            last = _connect_error(exc, format_addr(addr[0], addr[1]))
            continue
        except BaseException:
            sock.close()
            raise
        phases["connect"] = perf_counter() - t0
        return sock, fam, addr
    phases["connect"] = perf_counter() - t0
    assert last is not None
    last.phases = phases
    raise last


async def connect_and_close(
    host: str, port: int, *, family: int = socket.AF_UNSPEC, phases: dict[str, float]
) -> None:
    """Connect to ``host:port`` and close at once (a plain TCP probe), the cheapest way on the
    running loop: a bare socket on asyncio's own loop, a transport on uvloop (whose
    ``sock_connect`` costs several times its ``create_connection``). Fills ``phases`` like
    :func:`connect_socket`; raises its :class:`ProbeError`.
    """
    if isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
        sock, _, _ = await connect_socket(host, port, family=family, phases=phases)
        sock.close()
        return
    transport, _, _ = await open_connection(
        asyncio.Protocol, host, port, family=family, phases=phases
    )
    transport.abort()


async def _connect_transport(
    loop: asyncio.AbstractEventLoop,
    protocol_factory: Callable[[], ProtoT],
    fam: int,
    addr: tuple[Any, ...],
) -> tuple[asyncio.Transport, ProtoT]:
    """A TCP connection to the resolved ``addr`` with its transport and protocol.

    The loop connects and builds the transport in one call: with uvloop that is libuv's own
    connect, several times cheaper than ``sock_connect`` followed by
    ``create_connection(sock=...)``; with asyncio the two cost about the same. An address
    with an IPv6 scope id (link-local) keeps the socket path, which carries the whole sockaddr.
    """
    if len(addr) > 2 and addr[3]:
        sock = socket.socket(fam, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
            transport, protocol = await loop.create_connection(protocol_factory, sock=sock)
        except BaseException:
            sock.close()
            raise
    else:
        transport, protocol = await loop.create_connection(
            protocol_factory, addr[0], addr[1], family=fam
        )
    return transport, protocol


async def open_connection(
    protocol_factory: Callable[[], ProtoT],
    host: str,
    port: int,
    *,
    family: int = socket.AF_UNSPEC,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    phases: dict[str, float],
    address_check: AddressCheck | None = None,
) -> tuple[asyncio.Transport, ProtoT, CertInfo | None]:
    """Resolve, connect and (with ``ssl_context``) handshake; fill ``phases`` as it goes.

    The protocol is connected to the raw TCP transport first and keeps receiving data through
    the TLS transport after ``start_tls``: one protocol object per connection, no streams.
    ``protocol_factory`` may be called once per address tried (uvloop makes the protocol before
    connecting): only the returned protocol is connected.

    :param server_hostname: SNI and verification name (defaults to ``host``).
    :param phases: dict updated with ``resolve`` (when ``host`` is a name), ``connect``, ``tls``.
    :param address_check: see :func:`connect_socket`.
    :return: (transport to use, protocol, peer certificate info or None).
    :raises ProbeError: for DNS, connect and TLS failures, with ``phases`` attached.
    """
    loop = asyncio.get_running_loop()
    addrs = await _addresses(loop, host, port, family, phases, address_check)
    t0 = perf_counter()
    last: ProbeError | None = None
    for fam, addr in addrs:
        set_phase(f"connecting to {format_addr(addr[0], addr[1])}")
        try:
            if len(addr) > 2 and addr[3]:
                transport, protocol = await _connect_transport(loop, protocol_factory, fam, addr)
            else:  # _connect_transport's own path, without a coroutine of its own per run
                transport, protocol = await loop.create_connection(
                    protocol_factory, addr[0], addr[1], family=fam
                )
        except OSError as exc:
            last = _connect_error(exc, format_addr(addr[0], addr[1]))
            continue
        phases["connect"] = perf_counter() - t0
        break
    else:
        phases["connect"] = perf_counter() - t0
        assert last is not None
        last.phases = phases
        raise last
    if ssl_context is None:
        return transport, protocol, None
    tls_transport, cert = await start_tls(
        transport, protocol, ssl_context, server_hostname or host, addr, fam, phases
    )
    return tls_transport, protocol, cert


async def start_tls(
    transport: asyncio.Transport,
    protocol: asyncio.Protocol,
    ssl_context: ssl.SSLContext,
    name: str,
    addr: tuple[Any, ...],
    family: int,
    phases: dict[str, float],
    *,
    proxy: str = "",
) -> tuple[asyncio.Transport, CertInfo | None]:
    """The TLS handshake on a connected ``transport`` (to ``addr``), timed as phase ``tls``.

    :param name: SNI and verification name.
    :param proxy: the proxy the transport tunnels through (``addr`` is then the target's host
        and port); an expired certificate is then not fetched again to say when it expired.
    :return: the TLS transport and the peer certificate info.
    :raises ProbeError: reason ``tls`` (the transport is aborted), with ``phases`` attached.
    """
    loop = asyncio.get_running_loop()
    through = f" through proxy {proxy}" if proxy else ""
    set_phase(f"in the TLS handshake with {format_addr(addr[0], addr[1])}{through}")
    t0 = perf_counter()
    try:
        tls_transport = await loop.start_tls(transport, protocol, ssl_context, server_hostname=name)
    except (ssl.SSLError, OSError, EOFError) as exc:
        phases["tls"] = perf_counter() - t0
        transport.abort()
        cert = None
        verify_error = isinstance(exc, ssl.SSLCertVerificationError)
        expired = isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_code in (9, 10)
        if expired and not proxy:
            cert = await _fetch_unverified_cert(loop, addr, family, name)
        lowest = ssl_context.minimum_version
        if not verify_error and not proxy and lowest > ssl.TLSVersion.TLSv1_2:
            # min_version 1.3: say which version the server speaks, as the tls type does.
            spoken = await _fetch_unverified_cert(loop, addr, family, name, every_version=True)
            if spoken is not None and spoken.version in _BELOW_1_3:
                raise ProbeError(
                    Reason.TLS,
                    f"TLS handshake failed: the server negotiates "
                    f"{tls_version_label(spoken.version)}, below min_version 1.3",
                    phases,
                ) from None
        raise ProbeError(Reason.TLS, describe_ssl_error(exc, cert), phases, cert) from None
    except BaseException:
        transport.abort()
        raise
    phases["tls"] = perf_counter() - t0
    if tls_transport is None:  # start_tls returns None only if the transport was closed
        transport.abort()
        raise ProbeError(Reason.TLS, "TLS handshake failed: connection closed", phases)
    sslobj = tls_transport.get_extra_info("ssl_object")
    cert = cert_info(sslobj)
    if cert is not None:  # the whole chain: its earliest expiry is the one reported
        cert = with_chain(
            cert, read_chain(sslobj, verified=ssl_context.verify_mode != ssl.CERT_NONE)
        )
    return tls_transport, cert


_BELOW_1_3: Final = frozenset({"TLSv1", "TLSv1.1", "TLSv1.2", "SSLv3"})
