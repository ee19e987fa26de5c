"""HTTP/2 for the ``http`` and ``json_api`` check types: ``enable_http2``, ``valid_http_versions``.

HTTP/2 is negotiated like blackbox_exporter's Go client does it: over TLS, with ALPN offering
``h2`` then ``http/1.1`` (no cleartext h2c). It runs on probed's own connection, so the
``resolve``, ``connect``, ``tls``, ``processing`` and ``transfer`` phases stay as for HTTP/1.1:

- :class:`Http2Switch` is the connection's protocol during the TLS handshake when
  ``enable_http2`` is on; it holds what arrives until :meth:`Http2Switch.choose` hands the
  connection to the HTTP/1.1 parser or to an :class:`H2Response` after the handshake.
- :class:`H2Response` sends one request on stream 1 with the ``h2`` sans-IO library
  (``pip install probed[http2]``) and reads its response. It exposes what
  :mod:`probed.checks._httpclient` reads of an HTTP/1.1 response, and is bounded the same way:
  frames at most 16 KiB (HTTP/2's default ``SETTINGS_MAX_FRAME_SIZE``), the header list at
  most ``max_header_size`` (sent as ``SETTINGS_MAX_HEADER_LIST_SIZE``) and at most
  :data:`~probed.checks._httpparse.MAX_HEADERS` fields, the body at most ``max_body_size``,
  everything received at most what HTTP/1.1 allows, server push disabled.

With ``enable_http2`` off nothing here runs: the HTTP/1.1 path does no extra work.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import Field, field_validator, model_validator

from probed.check import CheckOptions, Reason
from probed.checks._failures import classify
from probed.checks._httpparse import (
    MAX_HEADERS,
    MAX_LINE,
    READING_BODY,
    BodyTooLargeSignal,
)
from probed.checks._net import ProbeError
from probed.checks._reasons import HEADER_SIZE
from probed.checks._tls import describe_ssl_error
from probed.options import format_size
from probed.phase import set_phase

if TYPE_CHECKING:
    from h2.connection import H2Connection

    from probed.checks._httpparse import ResponseProtocol

__all__ = [
    "HTTP_VERSIONS",
    "H2Response",
    "Http2Options",
    "Http2Switch",
    "alpn_context",
    "version_problem",
]

HTTP_VERSIONS: Final = ("HTTP/1.0", "HTTP/1.1", "HTTP/2.0")
"""``valid_http_versions`` values, spelled as blackbox_exporter (Go's ``Response.Proto``)."""

_ALPN: Final = ["h2", "http/1.1"]
_WINDOW: Final = 1024 * 1024  # receive window of the stream and the connection
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}
)
_MISSING_H2: Final = "enable_http2 needs the h2 package: pip install 'probed[http2]'"


class Http2Options(CheckOptions):
    """The HTTP/2 options of ``http`` and ``json_api`` (blackbox's names)."""

    enable_http2: bool = Field(
        default=False,
        description="Offer HTTP/2 (ALPN h2, then http/1.1) on https connections; on by "
        "default when valid_http_versions lists HTTP/2.0. Needs probed[http2].",
    )
    valid_http_versions: list[str] = Field(
        default_factory=list,
        description="Accepted HTTP versions of the final response: HTTP/1.0, HTTP/1.1, "
        "HTTP/2.0; empty accepts any.",
    )

    @field_validator("valid_http_versions")
    @classmethod
    def _versions(cls, value: list[str]) -> list[str]:
        for version in value:
            if version not in HTTP_VERSIONS:
                hint = " (HTTP/2 is spelled HTTP/2.0)" if version.upper() == "HTTP/2" else ""
                raise ValueError(
                    f"invalid HTTP version {version!r}{hint}: use {', '.join(HTTP_VERSIONS)}"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _http2_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "enable_http2" not in data:
            versions = data.get("valid_http_versions")
            if isinstance(versions, list) and "HTTP/2.0" in versions:
                return {**data, "enable_http2": True}
        return data

    @model_validator(mode="after")
    def _http2(self) -> Http2Options:
        if self.valid_http_versions == ["HTTP/2.0"] and not self.enable_http2:
            raise ValueError(
                "valid_http_versions accepts only HTTP/2.0 but enable_http2 is false: "
                "no response could pass"
            )
        if self.enable_http2:
            try:
                import h2  # noqa: F401 - optional dependency, checked at load time
            except ImportError:
                raise ValueError(_MISSING_H2) from None
        return self


def alpn_context(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """``ctx`` offering ``h2`` then ``http/1.1`` by ALPN (a check's own context: changed)."""
    ctx.set_alpn_protocols(_ALPN)
    return ctx


def version_problem(
    versions: tuple[str, ...], version: str, enable_http2: bool
) -> tuple[str, str] | None:
    """Why a final response of HTTP ``version`` (``"1.1"``) fails ``valid_http_versions``."""
    got = f"HTTP/{version}"
    if not versions or got in versions:
        return None
    detail = f"response is {got}, valid_http_versions is {', '.join(versions)}"
    if "HTTP/2.0" in versions and version != "2.0":
        if enable_http2:
            detail += " (the server did not choose h2 in the TLS handshake (ALPN)"
            detail += "; HTTP/2 is offered over https only)"
        else:
            detail += " (enable_http2 is false)"
    return Reason.PROTOCOL, detail


class Http2Switch(asyncio.Protocol):
    """The protocol of a connection offering h2, until the TLS handshake says which one to use.

    What arrives before :meth:`choose` is held and handed on, so a server that speaks first
    (HTTP/2 servers send their SETTINGS at once) loses nothing.
    """

    __slots__ = ("_closed", "_h1", "_held", "_lost")

    def __init__(self, h1: ResponseProtocol) -> None:
        self._h1 = h1
        self._held: list[bytes] = []
        self._lost: Exception | None = None
        self._closed = False

    def data_received(self, data: bytes) -> None:
        self._held.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._lost = exc

    def choose(
        self, transport: asyncio.Transport, make_h2: Callable[[], H2Response]
    ) -> ResponseProtocol | H2Response:
        """The HTTP/1.1 parser, or an :class:`H2Response` that has sent its request when the
        server chose ``h2``; from now on it receives the connection's data."""
        sslobj = transport.get_extra_info("ssl_object")
        chosen = sslobj.selected_alpn_protocol() if sslobj is not None else None
        proto: ResponseProtocol | H2Response = make_h2() if chosen == "h2" else self._h1
        transport.set_protocol(proto)
        if isinstance(proto, H2Response):
            proto.start(transport)
        for data in self._held:
            proto.data_received(data)
        self._held.clear()
        if self._closed:
            proto.connection_lost(self._lost)
        return proto


class _Status:
    """What :mod:`probed.checks._httpclient` asks an HTTP/1.1 parser, for an HTTP/2 response."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0

    def get_status_code(self) -> int:
        return self.status

    def get_http_version(self) -> str:
        return "2.0"


def request_headers(
    method: str,
    url: tuple[str, str, str],
    pairs: Iterable[tuple[str, str]],
    body: bytes,
    user_agent: str,
) -> list[tuple[str, str]]:
    """The HTTP/2 header list of one hop to ``url`` (scheme, authority, target): pseudo-headers,
    then ``pairs`` (lower case, connection-specific ones left out) and the defaults."""
    scheme, authority, target = url
    fields: list[tuple[str, str]] = []
    names = set()
    for name, value in pairs:
        lname = name.lower()
        if lname == "host":
            authority = value
        if lname in _HOP_BY_HOP or (lname == "te" and value.lower() != "trailers"):
            continue
        names.add(lname)
        fields.append((lname, value))
    head = [(":method", method), (":scheme", scheme), (":authority", authority)]
    head.append((":path", target))
    if "user-agent" not in names:
        fields.append(("user-agent", user_agent))
    if "accept" not in names:
        fields.append(("accept", "*/*"))
    if body or method in ("POST", "PUT", "PATCH"):
        fields.append(("content-length", str(len(body))))
    return head + fields


class H2Response(asyncio.Protocol):
    """One request on stream 1 of a fresh HTTP/2 connection and its bounded response.

    Has the attributes :mod:`probed.checks._httpclient` reads of an HTTP/1.1
    :class:`~probed.checks._httpparse.ResponseProtocol` (``done``, ``parser``, ``headers``,
    ``body``, ``first_byte``, ...); ``first_byte`` is when the response headers arrived.
    """

    STREAM: ClassVar[int] = 1

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_body: int,
        max_head: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.parser = _Status()
        self.max_body = max_body
        self.max_head = max_head
        self.first_byte = 0.0
        self.end = 0.0
        self.received = 0
        self.status_reason = b""
        self.headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.body = bytearray()
        self.body_size = 0
        self.content_length: int | None = None
        self.max_total = max_head + max_body + max_body // 4 + 2 * MAX_LINE
        self._request = headers
        self._body = body
        self._transport: asyncio.Transport | None = None
        self._conn: H2Connection | None = None

    def start(self, transport: asyncio.Transport) -> None:
        """Send the connection preface, SETTINGS and the request on ``transport``."""
        from h2.config import H2Configuration  # optional dependency: imported on first use
        from h2.connection import H2Connection
        from h2.exceptions import H2Error
        from h2.settings import SettingCodes, Settings

        self._transport = transport
        conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        conn.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.MAX_CONCURRENT_STREAMS: 1,
                SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: self.max_head,
            },
        )
        # Enforced at once, not only after the server acknowledged our SETTINGS.
        conn.decoder.max_header_list_size = self.max_head
        self._conn = conn
        conn.initiate_connection()
        conn.increment_flow_control_window(_WINDOW - 65535)
        try:
            conn.send_headers(self.STREAM, self._request, end_stream=not self._body)
        except H2Error as exc:  # its text may quote a header value: a secret, perhaps
            self._fail(
                ProbeError(
                    Reason.PROTOCOL,
                    f"cannot send the request over HTTP/2: h2 refused a request header "
                    f"({type(exc).__name__})",
                )
            )
            return
        self._send_body()
        transport.write(conn.data_to_send())

    def _send_body(self) -> None:
        conn = self._conn
        assert conn is not None
        while self._body:
            room = min(conn.local_flow_control_window(self.STREAM), conn.max_outbound_frame_size)
            if room <= 0:
                return  # the rest goes when the server opens its window (WindowUpdated)
            chunk, self._body = self._body[:room], self._body[room:]
            conn.send_data(self.STREAM, chunk, end_stream=not self._body)

    # -- asyncio callbacks
    def data_received(self, data: bytes) -> None:
        if self.done.done() or self._conn is None:
            return
        self.received += len(data)
        if self.received > self.max_total:
            self._fail(
                ProbeError(
                    Reason.BODY_SIZE,
                    f"HTTP/2 response is over {format_size(self.max_total)} in total without "
                    f"ending ({self.body_size} body bytes; the rest frames of other kinds)",
                )
            )
            return
        if not self.headers_done and self.received > self.max_head + 2 * MAX_LINE:
            self._fail(
                ProbeError(
                    HEADER_SIZE,
                    f"HTTP/2 response headers exceed max_header_size of "
                    f"{format_size(self.max_head)} ({self.received} bytes received, no "
                    "complete response headers yet)",
                )
            )
            return
        from h2.exceptions import DenialOfServiceError, ProtocolError

        try:
            events = self._conn.receive_data(data)
            for event in events:
                self._event(event)
                if self.done.done():
                    return
        except DenialOfServiceError as exc:
            self._fail(
                ProbeError(
                    HEADER_SIZE,
                    f"HTTP/2 response headers exceed max_header_size of "
                    f"{format_size(self.max_head)} ({exc})",
                )
            )
            return
        except ProtocolError as exc:
            self._fail(ProbeError(Reason.PROTOCOL, f"HTTP/2 protocol error: {exc}"))
            return
        if self._transport is not None and not self.done.done():
            pending = self._conn.data_to_send()
            if pending:
                self._transport.write(pending)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        failure = classify(exc) if exc is not None else None
        if exc is not None and failure == Reason.TLS:
            self._fail(ProbeError(Reason.TLS, describe_ssl_error(exc)))
            return
        how = "reset" if failure == Reason.CONNECTION_RESET else "closed"
        if not self.headers_done:
            detail = f"server {how} the HTTP/2 connection without sending a response"
        else:
            detail = f"server {how} the HTTP/2 connection in the middle of the body"
            detail += f" ({self.body_size} bytes)"
        self._fail(ProbeError(Reason.CONNECTION_RESET, detail))

    # -- h2 events
    def _event(self, event: Any) -> None:
        from h2 import events

        if isinstance(event, events.ResponseReceived) and event.stream_id == self.STREAM:
            self._on_headers(event.headers)
        elif isinstance(event, events.DataReceived) and event.stream_id == self.STREAM:
            self._on_data(event.data, event.flow_controlled_length)
        elif isinstance(event, events.StreamEnded) and event.stream_id == self.STREAM:
            self.end = perf_counter()
            self.done.set_result(None)
        elif isinstance(event, events.StreamReset) and event.stream_id == self.STREAM:
            code = _error_name(event.error_code)
            when = "after the response headers" if self.headers_done else "before responding"
            self._fail(
                ProbeError(Reason.PROTOCOL, f"server reset the HTTP/2 stream {when} ({code})")
            )
        elif isinstance(event, events.ConnectionTerminated):
            code = _error_name(event.error_code)
            extra = event.additional_data or b""
            said = f": {extra[:80].decode('latin-1')!r}" if extra else ""
            reason = Reason.CONNECTION_RESET if code == "NO_ERROR" else Reason.PROTOCOL
            self._fail(
                ProbeError(reason, f"server ended the HTTP/2 connection (GOAWAY {code}{said})")
            )
        elif isinstance(event, events.WindowUpdated) and self._body:
            self._send_body()

    def _on_headers(self, raw: list[tuple[bytes, bytes]]) -> None:
        if len(raw) > MAX_HEADERS:
            self._fail(
                ProbeError(HEADER_SIZE, f"the response sends more than {MAX_HEADERS} header fields")
            )
            return
        for name, value in raw:
            if len(name) + len(value) > MAX_LINE:
                self._fail(
                    ProbeError(
                        HEADER_SIZE,
                        f"response header {name[:40]!r} is longer than {format_size(MAX_LINE)}",
                    )
                )
                return
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            if key == ":status":
                self.parser.status = int(text)
            elif not key.startswith(":"):
                if key == "content-length" and text.isdigit():
                    self.content_length = int(text)
                self.headers.append((key, text))
        self.headers_done = True
        self.first_byte = perf_counter()
        set_phase(READING_BODY)

    def _on_data(self, data: bytes, flow_controlled: int) -> None:
        assert self._conn is not None
        self.body_size += len(data)
        room = self.max_body - len(self.body)
        if room > 0:
            self.body += data[:room]
        if self.body_size > self.max_body:
            self._fail(BodyTooLargeSignal(self.parser.status, "2.0"))
            return
        self._conn.acknowledge_received_data(flow_controlled, self.STREAM)

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.end = self.end or perf_counter()
            self.done.set_exception(exc)


def _error_name(code: Any) -> str:
    return str(getattr(code, "name", code))
