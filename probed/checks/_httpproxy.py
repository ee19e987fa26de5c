"""Forward proxies for the ``http`` and ``json_api`` check types (blackbox's proxy options).

- :class:`ProxyOptions`: ``proxy_url``, ``proxy_from_environment``, ``no_proxy`` and
  ``proxy_connect_header``, mixed into :class:`~probed.checks._http.HttpOptions`.
- :class:`ProxyConfig`: which proxy a URL goes through (``http_proxy``/``https_proxy``/
  ``all_proxy``/``no_proxy`` from the environment, lower case first, then upper case), with
  curl's ``NO_PROXY`` rules (:class:`NoProxy`).
- :class:`Proxy`: one ``http://`` proxy. An ``http`` target is requested from it in absolute form
  (``GET http://host/path``); an ``https`` target through a ``CONNECT`` tunnel, timed as phase
  ``proxy_connect``, then TLS with the target inside it. The ``CONNECT`` reply is bounded
  (:data:`MAX_REPLY`). Reaching the proxy, a refused or failed ``CONNECT`` and a reply that is
  not HTTP fail with reason ``proxy``, a 407 with ``proxy_auth``; the message names the proxy
  (``host:port``, never its credentials) and its status.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Final, TypeVar

from pydantic import Field, SecretStr, field_validator, model_validator

from probed.check import CheckOptions
from probed.checks._db_common import SecretUrl
from probed.checks._net import (
    AddressCheck,
    ProbeError,
    connect_socket,
    format_addr,
    is_ip_literal,
    start_tls,
)
from probed.checks._reasons import PROXY, PROXY_AUTH, REDIRECT_REFUSED
from probed.checks._tls import CertInfo
from probed.phase import set_phase
from probed.redact import MASK, MIN_SECRET_LENGTH

__all__ = ["MAX_REPLY", "NoProxy", "Proxy", "ProxyConfig", "ProxyOptions", "proxy_config"]

MAX_REPLY: Final = 16 * 1024
"""Bytes of a proxy's reply to ``CONNECT`` (status line and headers) read at most."""

_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
ProtoT = TypeVar("ProtoT", bound=asyncio.Protocol)


class ProxyOptions(CheckOptions):
    """The proxy options of ``http`` and ``json_api`` (blackbox's names)."""

    proxy_url: SecretUrl | None = Field(
        default=None,
        description="http:// proxy for every request (CONNECT for https targets); "
        "credentials in its userinfo (percent-encoded) are sent as Proxy-Authorization.",
    )
    proxy_from_environment: bool = Field(
        default=False,
        description="Use http_proxy, https_proxy, all_proxy and no_proxy from the environment "
        "(lower case first, then upper case).",
    )
    no_proxy: str | list[str] | None = Field(
        default=None,
        description="Hosts reached without proxy_url: names (with their subdomains), IP "
        "addresses, CIDR ranges, '*' for all; comma-separated or a list.",
    )
    proxy_connect_header: dict[str, SecretStr | list[SecretStr]] = Field(
        default_factory=dict,
        description="Headers sent to the proxy with CONNECT (https targets); values are secret.",
    )

    @field_validator("proxy_url")
    @classmethod
    def _proxy_url(cls, value: SecretUrl | None) -> SecretUrl | None:
        if value is not None:
            _check_proxy_url(value)
        return value

    @field_validator("no_proxy")
    @classmethod
    def _no_proxy(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None:
            NoProxy(value)
        return value

    @field_validator("proxy_connect_header")
    @classmethod
    def _connect_headers(
        cls, value: dict[str, SecretStr | list[SecretStr]]
    ) -> dict[str, SecretStr | list[SecretStr]]:
        for name, values in value.items():
            if not _TOKEN_RE.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            for item in values if isinstance(values, list) else [values]:
                text = item.get_secret_value()
                if "\r" in text or "\n" in text:
                    raise ValueError(f"header {name!r}: value must not contain line breaks")
        return value

    @model_validator(mode="after")
    def _proxy_consistent(self) -> ProxyOptions:
        if self.proxy_url is not None and self.proxy_from_environment:
            raise ValueError("set proxy_url or proxy_from_environment, not both")
        if self.no_proxy is not None and self.proxy_url is None:
            raise ValueError(
                "no_proxy needs proxy_url (with proxy_from_environment, NO_PROXY applies)"
            )
        if self.proxy_connect_header and not (self.proxy_url or self.proxy_from_environment):
            raise ValueError("proxy_connect_header needs proxy_url or proxy_from_environment")
        return self


def _check_proxy_url(url: SecretUrl) -> None:
    if url.scheme != "http":
        raise ValueError(
            f"proxy URL scheme must be http, got {url.scheme!r} "
            "(https:// and socks proxies are not supported)"
        )
    if not url.host:
        raise ValueError("proxy URL has no host")


class NoProxy:
    """curl's ``NO_PROXY`` rules: comma (or space) separated; ``*`` alone matches every host;
    a name matches itself and its subdomains (a leading dot changes nothing); an IP address
    matches itself, a CIDR range the addresses in it; no ports; case does not matter."""

    __slots__ = ("_all", "_names", "_networks")

    def __init__(self, spec: str | list[str]) -> None:
        items = spec if isinstance(spec, list) else [spec]
        entries = [e for item in items for e in re.split(r"[,\s]+", item) if e]
        self._all = "*" in entries
        self._names: list[str] = []
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            bare = entry.strip("[]").lower() if entry.startswith("[") else entry.lower()
            if "/" in bare:
                try:
                    self._networks.append(ipaddress.ip_network(bare, strict=False))
                except ValueError:
                    raise ValueError(f"no_proxy: {entry!r} is not a CIDR range") from None
            elif is_ip_literal(bare):
                self._networks.append(ipaddress.ip_network(bare))
            elif bare != "*":
                self._names.append(bare.strip("."))

    def matches(self, host: str) -> bool:
        """True when ``host`` (a name or an IP literal, no brackets) bypasses the proxy."""
        if self._all:
            return True
        if is_ip_literal(host):
            ip = ipaddress.ip_address(host)
            return any(ip in net for net in self._networks)
        name = host.lower().rstrip(".")
        return any(name == n or name.endswith("." + n) for n in self._names)


@dataclass(frozen=True, slots=True)
class Proxy:
    """One ``http://`` proxy: where it is and what it is sent (secrets never shown)."""

    host: str
    port: int
    authorization: str | None = None
    connect_headers: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()
    """Masked in whatever of the proxy's reply a message quotes (a hostile proxy may echo
    them, and a proxy from the environment is unknown to the daemon's redactor)."""

    @classmethod
    def from_url(cls, url: SecretUrl, connect_headers: tuple[tuple[str, str], ...]) -> Proxy:
        """The proxy of a validated ``proxy_url`` (Basic credentials from its userinfo)."""
        auth = None
        secrets = [value for _, value in connect_headers]
        if url.username is not None:
            plain = f"{url.username}:{url.password or ''}"
            token = base64.b64encode(plain.encode()).decode("ascii")
            auth = "Basic " + token
            secrets += [token, plain, url.password or ""]
        found = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        return cls(url.host, url.port or 80, auth, connect_headers, tuple(found))

    @property
    def endpoint(self) -> str:
        """``host:port`` for messages."""
        return format_addr(self.host, self.port)

    @property
    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers an absolute-form request through this proxy carries."""
        if self.authorization is None:
            return ()
        return (("Proxy-Authorization", self.authorization),)

    def judge_reply(
        self,
        status: int,
        reason: bytes,
        what: str,
        phases: dict[str, float],
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Fail when a reply is the proxy's own refusal: a 407; for ``CONNECT`` (``what``
        starts with it) anything but 2xx (a 401 counts as a 407); for a request in absolute
        form an error page the proxy marks as its own (``Proxy-Status`` with an ``error``,
        RFC 9209, or squid's ``X-Squid-Error``). Any other reply is the target's.

        :raises ProbeError: reason ``proxy_auth`` or ``proxy``, naming the proxy and status.
        """
        text = f"{status} {self._quote(reason)}".rstrip()
        connect = what.startswith("CONNECT")
        if status == 407 or (connect and status == 401):  # tinyproxy answers CONNECT with 401
            sent = "refused the credentials sent" if self.authorization else "asks for credentials"
            raise ProbeError(
                PROXY_AUTH,
                f"proxy {self.endpoint} {sent} ({text} to {what}); set them in proxy_url",
                phases,
            )
        if connect and not 200 <= status < 300:
            raise ProbeError(PROXY, f"proxy {self.endpoint} answered {what} with {text}", phases)
        if status >= 400 and headers:
            for name, value in headers:
                lname = name.lower()
                if lname == "x-squid-error" or (lname == "proxy-status" and "error=" in value):
                    raise ProbeError(
                        PROXY,
                        f"proxy {self.endpoint} answered {what} itself with {text} "
                        f"({name}: {self._quote(value.encode('latin-1'), 60)})",
                        phases,
                    )

    async def open(
        self,
        protocol_factory: Callable[[], ProtoT],
        scheme: str,
        host: str,
        port: int,
        *,
        family: int,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        phases: dict[str, float],
        address_check: AddressCheck | None,
    ) -> tuple[asyncio.Transport, ProtoT, CertInfo | None]:
        """Connect to the proxy for ``scheme://host:port``: a plain connection for ``http``, a
        ``CONNECT`` tunnel to ``host:port`` and TLS with the target inside it for ``https``.

        The proxy resolves the target: ``address_check`` judges IP literal targets only.
        """
        if address_check is not None and is_ip_literal(host):
            why = address_check(host)
            if why is not None:
                raise ProbeError(REDIRECT_REFUSED, f"refused to connect to {why}", phases)
        loop = asyncio.get_running_loop()
        try:
            sock, _, _ = await connect_socket(self.host, self.port, family=family, phases=phases)
        except ProbeError as exc:
            raise ProbeError(
                PROXY, f"cannot reach proxy {self.endpoint}: {exc.detail}", phases
            ) from None
        if scheme == "http":
            try:
                transport, proto = await loop.create_connection(protocol_factory, sock=sock)
            except BaseException:
                sock.close()
                raise
            return transport, proto, None
        target = format_addr(host, port)
        try:
            transport, reply = await loop.create_connection(_ConnectReply, sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            transport.write(self._connect_request(target))
            set_phase(f"waiting for proxy {self.endpoint} to CONNECT")
            t0 = perf_counter()
            try:
                await reply.done
            finally:
                phases["proxy_connect"] = perf_counter() - t0
            what = f"CONNECT {target}"
            if reply.error:
                raise ProbeError(PROXY, f"proxy {self.endpoint} {reply.error} to {what}", phases)
            self.judge_reply(reply.status, reply.reason, what, phases)
            assert ssl_context is not None  # https hops always have one
            protocol = protocol_factory()
            tls_transport, cert = await start_tls(
                transport,
                protocol,
                ssl_context,
                server_hostname or host,
                (host, port),
                0,
                phases,
                proxy=self.endpoint,
            )
        except BaseException:
            transport.abort()
            raise
        return tls_transport, protocol, cert

    def _quote(self, data: bytes, limit: int = 80) -> str:
        """Part of the proxy's reply for a message: printable, bounded, secrets masked."""
        text = data.decode("latin-1")
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return _printable(text.encode("latin-1", "replace"), limit)

    def _connect_request(self, target: str) -> bytes:
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if self.authorization is not None:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        lines += [f"{name}: {value}" for name, value in self.connect_headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _printable(data: bytes, limit: int = 80) -> str:
    text = data[:limit].decode("latin-1").encode("unicode_escape").decode("ascii")
    return text + ("…" if len(data) > limit else "")


class _ConnectReply(asyncio.Protocol):
    """Reads a proxy's reply to ``CONNECT`` up to the blank line, at most :data:`MAX_REPLY`."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = bytearray()
        self.status = 0
        self.reason = b""
        self.error = ""

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            if self.status and not self.error:  # the target spoke before the TLS ClientHello
                self.error = "sent data after its reply"
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_REPLY:
                self._finish(f"sent a reply over {MAX_REPLY} bytes without an end of headers")
            return
        status_line = bytes(self.buffer[: self.buffer.find(b"\r\n")])
        match = re.fullmatch(rb"HTTP/1\.[01] (\d{3})(?: (.*))?", status_line)
        if match is None:
            self._finish(f"sent a reply that is not HTTP ({_printable(status_line, 40)!r})")
            return
        self.status = int(match.group(1))
        self.reason = match.group(2) or b""
        if 200 <= self.status < 300 and end + 4 < len(self.buffer):
            self._finish("sent data after its reply")
            return
        self._finish("")

    def connection_lost(self, exc: Exception | None) -> None:
        how = "reset the connection" if exc is not None else "closed the connection"
        self._finish(f"{how} without a complete reply" if not self.status else "")

    def _finish(self, error: str) -> None:
        if not self.done.done():
            self.error = error
            self.done.set_result(None)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Which proxy each request goes through; built once per check by :func:`proxy_config`.

    :param error: why the environment's proxy settings cannot be used (reported on each run).
    """

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: NoProxy | None = None
    error: str = ""

    def route(self, scheme: str, host: str) -> Proxy | None:
        """The proxy for a request to ``scheme://host``, or ``None`` to connect directly.

        :raises ProbeError: reason ``proxy`` when the environment's proxy is unusable.
        """
        if self.error:
            raise ProbeError(PROXY, self.error)
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or (self.no_proxy is not None and self.no_proxy.matches(host)):
            return None
        return proxy


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name) or environ.get(name.upper()) or ""


def _env_proxy(
    environ: Mapping[str, str], name: str, headers: tuple[tuple[str, str], ...]
) -> Proxy | None:
    value = _env(environ, name) or _env(environ, "all_proxy")
    if not value:
        return None
    url = SecretUrl(value if "://" in value else f"http://{value}")
    try:
        _check_proxy_url(url)
    except ValueError as exc:
        raise ValueError(f"{name} ({url}) from the environment: {exc}") from None
    return Proxy.from_url(url, headers)


def proxy_config(
    options: ProxyOptions, environ: Mapping[str, str] | None = None
) -> ProxyConfig | None:
    """The :class:`ProxyConfig` of a check, or ``None`` when it uses no proxy.

    :param environ: the environment (``os.environ`` by default) for ``proxy_from_environment``.
    """
    headers = tuple(
        (name, item.get_secret_value())
        for name, values in options.proxy_connect_header.items()
        for item in (values if isinstance(values, list) else [values])
    )
    if options.proxy_url is not None:
        proxy = Proxy.from_url(options.proxy_url, headers)
        no_proxy = NoProxy(options.no_proxy) if options.no_proxy is not None else None
        return ProxyConfig(proxy, proxy, no_proxy)
    if not options.proxy_from_environment:
        return None
    env = os.environ if environ is None else environ
    try:
        http, https = (
            _env_proxy(env, "http_proxy", headers),
            _env_proxy(env, "https_proxy", headers),
        )
        spec = _env(env, "no_proxy")
        no_proxy = NoProxy(spec) if spec else None
    except ValueError as exc:
        return ProxyConfig(error=f"proxy_from_environment: {exc}")
    if http is None and https is None:
        return None
    return ProxyConfig(http, https, no_proxy)
