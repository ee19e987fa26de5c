"""A lean HTTP/1.1 probe client on bare asyncio, timing every phase of a fresh connection.

Why not aiohttp's client: it cannot separate the TCP connect from the TLS handshake and costs
about twice the CPU per request. Here one :class:`asyncio.Protocol` per connection feeds
``httptools``' C parser (:mod:`probed.checks._httpparse`, which bounds every part of the
response); phases are measured with ``perf_counter``:

- ``resolve``: ``getaddrinfo`` (absent for IP literals)
- ``connect``: TCP connect
- ``tls``: TLS handshake (``https`` only)
- ``processing``: request written to first response byte
- ``transfer``: first response byte to end of body

Redirects are followed on a fresh connection per hop; phases are summed across hops, as
blackbox_exporter does. A hop to another host is first judged by ``redirect_check`` (link-local
and cloud metadata addresses refused by default). While it waits, the run's phase
(:func:`probed.phase.set_phase`) says what for, so a timeout names it. The API
(:class:`HttpRequest`, :class:`ClientConfig`, :func:`fetch`, :class:`HttpResponse`,
:class:`ProbeError`) is shared with the ``json_api`` check type.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Final
from urllib.parse import urljoin, urlsplit

from probed.check import Reason
from probed.checks._http2 import H2Response, Http2Switch, request_headers
from probed.checks._http_decode import DecodingH2Response, DecodingResponseProtocol
from probed.checks._httpparse import (
    DEFAULT_MAX_HEAD,
    READING_HEAD,
    BodyTooLargeSignal,
    ResponseProtocol,
    parser_version,
)
from probed.checks._httpproxy import Proxy, ProxyConfig
from probed.checks._net import AddressCheck, ProbeError, open_connection
from probed.checks._tls import CertInfo, default_context
from probed.phase import set_phase

__all__ = [
    "BodyTooLargeError",
    "ClientConfig",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "ProbeError",
    "Redirect",
    "Url",
    "fetch",
]

USER_AGENT: Final = "probed/0.1"
REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_WITH_BODY: Final = ("POST", "PUT", "PATCH")  # methods whose request says its length, even 0


@dataclass(frozen=True, slots=True)
class Url:
    """An absolute ``http``/``https`` URL split into what a probe needs (no credentials)."""

    scheme: str
    host: str
    port: int
    target: str

    @classmethod
    def parse(cls, text: str) -> Url:
        """Parse an absolute http(s) URL; IPv6 literals go in brackets (``http://[::1]:8080/``).

        :raises ValueError: with a message saying what is wrong (never echoing credentials).
        """
        parts = urlsplit(text.strip())
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"URL scheme must be http or https, got {parts.scheme or 'none'!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "credentials in the URL are not allowed: use basic_auth with a password "
                "from ${ENV} or ${file:...}"
            )
        if not parts.hostname:
            raise ValueError("URL has no host")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError("URL port must be a number from 1 to 65535") from None
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, target)

    @property
    def authority(self) -> str:
        """``host[:port]`` as sent in the Host header (port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if _DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): credentials are only sent back to the same origin."""
        return (self.scheme, self.host, self.port)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


class Headers:
    """Response headers in arrival order, looked up case-insensitively."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name``, or ``default``."""
        lname = name.lower()
        for key, value in self._items:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in arrival order."""
        lname = name.lower()
        return [value for key, value in self._items if key.lower() == lname]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What to send. Build once per check; :func:`fetch` encodes it per hop.

    :param headers: sent to every hop.
    :param auth_headers: ``Authorization`` and other secret headers; sent only to the origin of
        ``url`` (dropped when a redirect leaves it). Never shown in messages.
    """

    url: Url
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    auth_headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def encode(
        self, url: Url, method: str, body: bytes, with_auth: bool, via: Proxy | None = None
    ) -> bytes:
        """The request head and body as bytes for one hop (absolute form through a proxy)."""
        if via is None and not self.headers and not (with_auth and self.auth_headers):
            # The usual probe (no headers of its own): the same bytes, in one piece.
            length = f"Content-Length: {len(body)}\r\n" if body or method in _WITH_BODY else ""
            return (
                f"{method} {url.target} HTTP/1.1\r\nHost: {url.authority}\r\n"
                f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\n{length}Connection: close\r\n\r\n"
            ).encode("latin-1") + body
        lines = [f"{method} {url.target} HTTP/1.1", f"Host: {url.authority}"]
        if via is not None and url.scheme == "http":
            lines[0] = f"{method} {url} HTTP/1.1"
            lines.extend(f"{name}: {value}" for name, value in via.request_headers)
        names = set()
        for name, value in self.headers:
            names.add(name.lower())
            lines.append(f"{name}: {value}")
        if with_auth:
            for name, value in self.auth_headers:
                names.add(name.lower())
                lines.append(f"{name}: {value}")
        if "user-agent" not in names:
            lines.append(f"User-Agent: {USER_AGENT}")
        if "accept" not in names:
            lines.append("Accept: */*")
        if body or method in _WITH_BODY:
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to fetch: TLS, redirects, limits, address family. Build once per check.

    :param ssl_context: used for ``https`` hops; ``None`` means the system default context.
    :param server_name: SNI/verification name for hops to the original host.
    :param max_body_size: bytes of body accepted per fetch, the bodies of redirect responses
        included (a per-run budget); more fails with ``body_size``.
    :param max_header_size: bytes of a response head accepted; more fails with ``header_size``
        (the status and header lines are capped too: :mod:`probed.checks._httpparse`).
    :param redirect_check: judges the address of a redirect hop to another host before any
        connection to it (:func:`probed.checks._net.address_policy`); ``None`` allows all.
    :param proxy: the proxies to go through (:mod:`probed.checks._httpproxy`); ``None``: none.
    :param compression: decode bodies in this content coding as they arrive, ``max_body_size``
        applying to the decoded bytes (:mod:`probed.checks._http_decode`); ``None``: as sent.
    :param http2: offer HTTP/2 on https hops (``ssl_context`` must offer ``h2`` by ALPN:
        :func:`probed.checks._http2.alpn_context`).
    """

    ssl_context: ssl.SSLContext | None = None
    server_name: str | None = None
    follow_redirects: bool = True
    max_redirects: int = 10
    max_body_size: int = 10 * 1024 * 1024
    family: int = socket.AF_UNSPEC
    max_header_size: int = DEFAULT_MAX_HEAD
    redirect_check: AddressCheck | None = None
    proxy: ProxyConfig | None = None
    compression: str | None = None
    http2: bool = False


@dataclass(frozen=True, slots=True)
class Redirect:
    """One redirect hop that was followed: its URL, status and the Location it pointed to."""

    url: Url
    status: int
    location: str


@dataclass(slots=True)
class HttpResponse:
    """The final response of a fetch, with the phases summed over every hop.

    ``body`` holds at most ``max_body_size`` bytes; ``body_size`` counts every body byte read.
    ``cert`` is the final hop's peer certificate (with its chain); ``earliest_cert_expiry`` the
    earliest ``notAfter`` of the chains of every https hop (like blackbox's
    ``probe_ssl_earliest_cert_expiry``).
    """

    url: Url
    status: int
    reason: str
    version: str
    headers: Headers
    body: bytes
    body_size: int
    phases: dict[str, float]
    cert: CertInfo | None = None
    earliest_cert_expiry: float | None = None
    redirects: tuple[Redirect, ...] = ()
    content_length: int | None = field(default=None)

    def text(self) -> str:
        """The body decoded with the Content-Type charset (UTF-8 by default, lenient)."""
        charset = "utf-8"
        ctype = self.headers.get("content-type") or ""
        for param in ctype.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")


class BodyTooLargeError(ProbeError):
    """The body exceeded ``max_body_size``; reading stopped. Carries the status line seen."""

    def __init__(self, detail: str, phases: dict[str, float], status: int, version: str) -> None:
        super().__init__(Reason.BODY_SIZE, detail, phases)
        self.status = status
        self.version = version


async def _fetch_once(
    request: HttpRequest,
    url: Url,
    method: str,
    body: bytes,
    config: ClientConfig,
    phases: dict[str, float],
    max_body: int,
) -> tuple[ResponseProtocol | H2Response, CertInfo | None]:
    loop = asyncio.get_running_loop()
    ssl_context = None
    server_name = None
    same_origin = url is request.url or url.origin() == request.url.origin()
    if url.scheme == "https":
        ssl_context = config.ssl_context or default_context()
        if url.host == request.url.host:
            server_name = config.server_name
    head_only = method == "HEAD"

    made: list[ResponseProtocol] = []

    def factory() -> ResponseProtocol:
        made_one: ResponseProtocol
        if config.compression is not None:
            made_one = DecodingResponseProtocol(
                config.compression, loop, max_body, head_only, config.max_header_size
            )
        else:
            made_one = ResponseProtocol(loop, max_body, head_only, config.max_header_size)
        made.append(made_one)
        return made_one

    make: Callable[[], ResponseProtocol | Http2Switch] = factory
    http2 = config.http2 and ssl_context is not None
    if http2:
        make = lambda: Http2Switch(factory())  # noqa: E731

    address_check = None if url.host == request.url.host else config.redirect_check
    via = None if config.proxy is None else config.proxy.route(url.scheme, url.host)
    proto: ResponseProtocol | H2Response | Http2Switch
    try:
        if via is None:
            transport, proto, cert = await open_connection(
                make,
                url.host,
                url.port,
                family=config.family,
                ssl_context=ssl_context,
                server_hostname=server_name,
                phases=phases,
                address_check=address_check,
            )
        else:
            transport, proto, cert = await via.open(
                make,
                url.scheme,
                url.host,
                url.port,
                family=config.family,
                ssl_context=ssl_context,
                server_hostname=server_name,
                phases=phases,
                address_check=address_check,
            )
    except ProbeError:
        for unused in made:  # no response will be awaited: no "exception never retrieved"
            unused.done.cancel()
        raise
    try:
        if isinstance(proto, Http2Switch):
            pairs = request.headers + request.auth_headers if same_origin else request.headers
            target = (url.scheme, url.authority, url.target)
            fields = request_headers(method, target, pairs, body, USER_AGENT)

            def h2() -> H2Response:
                if config.compression is not None:
                    return DecodingH2Response(
                        config.compression, loop, max_body, config.max_header_size, fields, body
                    )
                return H2Response(loop, max_body, config.max_header_size, fields, body)

            proto = proto.choose(transport, h2)
        if not http2 or isinstance(proto, ResponseProtocol):
            transport.write(request.encode(url, method, body, same_origin, via))
        sent = perf_counter()
        set_phase(READING_HEAD)
        try:
            await proto.done
        except ProbeError as exc:
            exc.phases = phases
            exc.cert = cert
            if (
                exc.reason == Reason.CONNECTION_RESET
                and not proto.received
                and cert is not None
                and cert.version == "TLSv1.3"
            ):
                # A TLS 1.3 server checks the client certificate after the client considers the
                # handshake done, and rejects it by closing (its alert is often lost to the RST).
                exc.reason = Reason.TLS
                exc.detail += (
                    " right after the TLS handshake: it probably rejected the client "
                    "certificate (none sent, or not trusted by the server)"
                )
            raise
        except BodyTooLargeSignal:
            _add_response_phases(phases, proto, sent)
            raise
        _add_response_phases(phases, proto, sent)
        if via is not None and url.scheme == "http":
            status = proto.parser.get_status_code()
            what = f"{method} {url}"
            via.judge_reply(status, proto.status_reason, what, phases, proto.headers)
        return proto, cert
    finally:
        transport.abort()


def _add_response_phases(
    phases: dict[str, float], proto: ResponseProtocol | H2Response, sent: float
) -> None:
    end = proto.end or perf_counter()
    first = proto.first_byte or end
    phases["processing"] = max(first - sent, 0.0)
    phases["transfer"] = max(end - first, 0.0)


def _merge(total: dict[str, float], hop: dict[str, float]) -> None:
    for key, value in hop.items():
        total[key] = total.get(key, 0.0) + value


async def fetch(request: HttpRequest, config: ClientConfig) -> HttpResponse:
    """Send ``request`` on a fresh connection (per hop) and read the whole response.

    :return: the final response (a 3xx one when redirects are not followed or the limit was
        reached; ``redirects`` then says how many were followed).
    :raises ProbeError: for DNS, connect, TLS, protocol and reset failures, and with reason
        ``body_size`` when the bodies read exceed ``config.max_body_size`` (reading stops there).
        Its ``detail`` names the hop URL when the failure happened after a redirect.
    """
    url, method, body = request.url, request.method, request.body
    phases: dict[str, float] = {}
    redirects: list[Redirect] = []
    earliest: float | None = None
    spent = 0  # body bytes of the redirect responses: the budget is per fetch
    while True:
        hop: dict[str, float] = {}
        try:
            proto, cert = await _fetch_once(
                request, url, method, body, config, hop, config.max_body_size - spent
            )
        except ProbeError as exc:
            _merge(phases, exc.phases)
            exc.phases = phases
            if redirects:
                exc.detail = f"after redirect to {url}: {exc.detail}"
            raise
        except BodyTooLargeSignal as exc:
            _merge(phases, hop)
            where = f" (after redirect to {url})" if redirects else ""
            if spent:
                where = f" (after redirect to {url}; {spent} of them in redirect responses)"
            status, version = exc.args
            raise BodyTooLargeError(
                f"response body exceeds max_body_size of {config.max_body_size} bytes{where}",
                phases,
                status,
                version,
            ) from None
        if phases:
            _merge(phases, hop)
        else:  # the first hop's phases are the sum so far
            phases = hop
        if cert is not None:
            first = cert.earliest_not_after  # of the hop's verified chain
            earliest = first if earliest is None else min(earliest, first)
        status = proto.parser.get_status_code()
        headers = Headers(proto.headers)
        if (
            config.follow_redirects
            and status in REDIRECT_CODES
            and len(redirects) < config.max_redirects
            and (location := headers.get("location"))
        ):
            try:
                next_url = Url.parse(urljoin(str(url), location))
            except ValueError as exc:
                raise ProbeError(
                    Reason.PROTOCOL,
                    f"{url} redirected ({status}) to an unusable Location: {exc}",
                    phases,
                ) from None
            redirects.append(Redirect(url, status, location))
            spent += proto.body_size
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), b""
            url = next_url
            continue
        return HttpResponse(
            url=url,
            status=status,
            reason=proto.status_reason.decode("latin-1"),
            version=parser_version(proto.parser),
            headers=headers,
            body=bytes(proto.body),
            body_size=proto.body_size,
            phases=phases,
            cert=cert,
            earliest_cert_expiry=earliest,
            redirects=tuple(redirects),
            content_length=proto.content_length,
        )
