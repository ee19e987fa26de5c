"""A lean HTTP/1.1 probe client on bare asyncio, timing every phase of a fresh connection.

Why not aiohttp's client: it cannot separate the TCP connect from the TLS handshake and costs
about twice the CPU per request. Here one :class:`asyncio.Protocol` per connection feeds
``httptools``' C parser; phases are measured with ``perf_counter``:

- ``resolve``: ``getaddrinfo`` (absent for IP literals)
- ``connect``: TCP connect
- ``tls``: TLS handshake (``https`` only)
- ``processing``: request written to first response byte
- ``transfer``: first response byte to end of body

Redirects are followed on a fresh connection per hop; phases are summed across hops, as
blackbox_exporter does. The API (:class:`HttpRequest`, :class:`ClientConfig`, :func:`fetch`,
:class:`HttpResponse`, :class:`ProbeError`) is shared with the ``json_api`` check type.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Final
from urllib.parse import urljoin, urlsplit

import httptools

from probed.check import Reason
from probed.checks._failures import classify
from probed.checks._net import ProbeError, open_connection
from probed.checks._tls import CertInfo, default_context, describe_ssl_error

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

    def encode(self, url: Url, method: str, body: bytes, with_auth: bool) -> bytes:
        """The request head and body as bytes for one hop."""
        lines = [f"{method} {url.target} HTTP/1.1", f"Host: {url.authority}"]
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
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines.append("Connection: close")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1") + body


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to fetch: TLS, redirects, limits, address family. Build once per check.

    :param ssl_context: used for ``https`` hops; ``None`` means the system default context.
    :param server_name: SNI/verification name for hops to the original host.
    :param max_body_size: bytes of body kept and accepted; more fails with ``body_size``.
    """

    ssl_context: ssl.SSLContext | None = None
    server_name: str | None = None
    follow_redirects: bool = True
    max_redirects: int = 10
    max_body_size: int = 10 * 1024 * 1024
    family: int = socket.AF_UNSPEC


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
    ``cert`` is the final hop's peer certificate; ``earliest_cert_expiry`` the earliest
    ``notAfter`` of every https hop (like blackbox's ``probe_ssl_earliest_cert_expiry``).
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


class _BodyTooLargeSignal(Exception):  # noqa: N818 - internal signal, never escapes fetch()
    pass


class BodyTooLargeError(ProbeError):
    """The body exceeded ``max_body_size``; reading stopped. Carries the status line seen."""

    def __init__(self, detail: str, phases: dict[str, float], status: int, version: str) -> None:
        super().__init__(Reason.BODY_SIZE, detail, phases)
        self.status = status
        self.version = version


class _HttpProtocol(asyncio.Protocol):
    """Parses one response with httptools; resolves ``done`` at the end or on failure."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int, head_only: bool) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.parser = httptools.HttpResponseParser(self)
        self.max_body = max_body
        self.head_only = head_only
        self.first_byte = 0.0
        self.end = 0.0
        self.received = 0
        self.status_reason = b""
        self.headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.complete = False
        self.body = bytearray()
        self.body_size = 0
        self.content_length: int | None = None
        self.chunked = False
        self.too_large = False

    # -- asyncio callbacks
    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self.received:
            self.first_byte = perf_counter()
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()
        except httptools.HttpParserError as exc:
            if self.complete or self.too_large:
                pass  # trailing bytes after the message or after we stopped reading
            else:
                self._fail(ProbeError(Reason.PROTOCOL, _describe_parse_error(exc, data)))
                return
        if self.too_large:
            self._fail(_BodyTooLargeSignal(self.parser.get_status_code(), _version(self)))
        elif self.complete:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if self.headers_done and self.content_length is None and not self.chunked:
            self.end = perf_counter()  # body delimited by the end of the connection
            self._finish()
            return
        failure = classify(exc) if exc is not None else None
        if exc is not None and failure == Reason.TLS:
            # TLS 1.3 servers reject a client certificate after the client's handshake is done.
            self._fail(ProbeError(Reason.TLS, describe_ssl_error(exc)))
            return
        how = "reset the connection" if failure == Reason.CONNECTION_RESET else "closed"
        if not self.received:
            detail = f"server {how} without sending a response"
        elif not self.headers_done:
            detail = f"server {how} in the middle of the response headers"
        elif self.content_length is not None:
            detail = f"server {how} after {self.body_size} of {self.content_length} body bytes"
        else:
            detail = f"server {how} in the middle of the chunked body ({self.body_size} bytes)"
        self._fail(ProbeError(Reason.CONNECTION_RESET, detail))

    # -- httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.status_reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        lower = key.lower()
        if lower == "content-length" and text.isdigit():
            self.content_length = int(text)
        elif lower == "transfer-encoding" and "chunked" in text.lower():
            self.chunked = True
        self.headers.append((key, text))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.head_only:
            # httptools cannot be told a HEAD response has no body; stop here.
            self.complete = True
            self.end = perf_counter()

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        room = self.max_body - len(self.body)
        if room > 0:
            self.body += body[:room]
        if self.body_size > self.max_body:
            self.too_large = True

    def on_message_complete(self) -> None:
        self.complete = True
        self.end = perf_counter()

    # -- helpers
    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


def _describe_parse_error(exc: Exception, data: bytes) -> str:
    sample = data[:40].decode("latin-1").encode("unicode_escape").decode("ascii")
    return f"not an HTTP response ({exc}); it starts with {sample!r}"


async def _fetch_once(
    request: HttpRequest,
    url: Url,
    method: str,
    body: bytes,
    config: ClientConfig,
    phases: dict[str, float],
) -> tuple[_HttpProtocol, CertInfo | None]:
    loop = asyncio.get_running_loop()
    ssl_context = None
    server_name = None
    same_origin = url.origin() == request.url.origin()
    if url.scheme == "https":
        ssl_context = config.ssl_context or default_context()
        if url.host == request.url.host:
            server_name = config.server_name
    head_only = method == "HEAD"

    def factory() -> _HttpProtocol:
        return _HttpProtocol(loop, config.max_body_size, head_only)

    transport, proto, cert = await open_connection(
        factory,
        url.host,
        url.port,
        family=config.family,
        ssl_context=ssl_context,
        server_hostname=server_name,
        phases=phases,
    )
    try:
        transport.write(request.encode(url, method, body, same_origin))
        sent = perf_counter()
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
        except _BodyTooLargeSignal:
            _add_response_phases(phases, proto, sent)
            raise
        _add_response_phases(phases, proto, sent)
        return proto, cert
    finally:
        transport.abort()


def _add_response_phases(phases: dict[str, float], proto: _HttpProtocol, sent: float) -> None:
    end = proto.end or perf_counter()
    first = proto.first_byte or end
    phases["processing"] = max(first - sent, 0.0)
    phases["transfer"] = max(end - first, 0.0)


def _merge(total: dict[str, float], hop: dict[str, float]) -> None:
    for key, value in hop.items():
        total[key] = total.get(key, 0.0) + value


def _version(proto: _HttpProtocol) -> str:
    try:
        return str(proto.parser.get_http_version())
    except httptools.HttpParserError:
        return ""


async def fetch(request: HttpRequest, config: ClientConfig) -> HttpResponse:
    """Send ``request`` on a fresh connection (per hop) and read the whole response.

    :return: the final response (a 3xx one when redirects are not followed or the limit was
        reached; ``redirects`` then says how many were followed).
    :raises ProbeError: for DNS, connect, TLS, protocol and reset failures, and with reason
        ``body_size`` when the body exceeds ``config.max_body_size`` (reading stops there).
        Its ``detail`` names the hop URL when the failure happened after a redirect.
    """
    url, method, body = request.url, request.method, request.body
    phases: dict[str, float] = {}
    redirects: list[Redirect] = []
    earliest: float | None = None
    while True:
        hop: dict[str, float] = {}
        try:
            proto, cert = await _fetch_once(request, url, method, body, config, hop)
        except ProbeError as exc:
            _merge(phases, exc.phases)
            exc.phases = phases
            if redirects:
                exc.detail = f"after redirect to {url}: {exc.detail}"
            raise
        except _BodyTooLargeSignal as exc:
            _merge(phases, hop)
            where = f" (after redirect to {url})" if redirects else ""
            status, version = exc.args
            raise BodyTooLargeError(
                f"response body exceeds max_body_size of {config.max_body_size} bytes{where}",
                phases,
                status,
                version,
            ) from None
        _merge(phases, hop)
        if cert is not None:
            earliest = cert.not_after if earliest is None else min(earliest, cert.not_after)
        status = proto.parser.get_status_code()
        headers = Headers(proto.headers)
        location = headers.get("location")
        if (
            config.follow_redirects
            and status in REDIRECT_CODES
            and location
            and len(redirects) < config.max_redirects
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
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), b""
            url = next_url
            continue
        return HttpResponse(
            url=url,
            status=status,
            reason=proto.status_reason.decode("latin-1"),
            version=_version(proto),
            headers=headers,
            body=bytes(proto.body),
            body_size=proto.body_size,
            phases=phases,
            cert=cert,
            earliest_cert_expiry=earliest,
            redirects=tuple(redirects),
            content_length=proto.content_length,
        )
