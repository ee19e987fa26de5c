"""Reading one HTTP/1.1 response off a connection, with every part of it bounded.

:class:`ResponseProtocol` is the :class:`asyncio.Protocol` of one probe connection: it feeds
``httptools``' C parser and resolves ``done`` at the end of the response or on failure. A
hostile target cannot make it buffer without limit:

- the status line and each header line: at most :data:`MAX_LINE` bytes;
- the number of header fields: at most :data:`MAX_HEADERS`;
- the whole head (status line and headers): at most ``max_head`` bytes (the ``max_header_size``
  option, 1 MiB by default);
- the body: at most ``max_body`` bytes (``max_body_size``); more stops reading;
- everything: at most ``max_head + max_body`` plus a quarter of ``max_body`` and 128 KiB for
  chunk framing, so chunk extensions or trailers that never end are cut too (``body_size``).

Going over a head cap fails with reason ``header_size`` as soon as the cap is exceeded (at
most one socket read past it, 256 KiB); going over the body cap fails with ``body_size``.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any, Final, NoReturn, Protocol

import httptools

from probed.check import Reason
from probed.checks._failures import classify
from probed.checks._net import ProbeError
from probed.checks._reasons import HEADER_SIZE
from probed.checks._tls import describe_ssl_error
from probed.options import format_size
from probed.phase import set_phase

__all__ = [
    "DEFAULT_MAX_HEAD",
    "MAX_HEADERS",
    "MAX_LINE",
    "BodyTooLargeSignal",
    "ResponseProtocol",
    "parser_version",
]

MAX_LINE: Final = 64 * 1024
"""Bytes of the status line or of one header line (name and value) a response may send."""
MAX_HEADERS: Final = 2000
"""Header fields a response may send (Node's client keeps as many; real services send < 50)."""
DEFAULT_MAX_HEAD: Final = 1024 * 1024
"""Default bytes of the whole response head (Go's ``DefaultMaxHeaderBytes``)."""

READING_HEAD: Final = "waiting for the response headers"
READING_BODY: Final = "reading the response body"


class BodyTooLargeSignal(Exception):  # noqa: N818 - internal signal, never escapes fetch()
    """Raised out of ``done`` when the body went over ``max_body``; args: (status, version)."""


class _HeadTooLarge(Exception):  # noqa: N818 - raised in a parser callback to stop parsing
    pass


class _Versioned(Protocol):
    def get_http_version(self) -> str: ...


def parser_version(parser: _Versioned) -> str:
    """The HTTP version the parser saw (``"1.1"``), or ``""`` before the status line."""
    try:
        return str(parser.get_http_version())
    except httptools.HttpParserError:
        return ""


def _describe_parse_error(exc: Exception, data: bytes) -> str:
    if len(data) >= 9 and data[0] == 0 and data[3] in (4, 7) and data[5:9] == bytes(4):
        # A SETTINGS or GOAWAY frame on stream 0: what an HTTP/2-only server sends.
        return (
            "the server answered in HTTP/2 (it sent an HTTP/2 frame, not an HTTP/1.1 "
            "response): it speaks HTTP/2 only; set enable_http2: true (HTTP/2 over https)"
        )
    sample = data[:40].decode("latin-1").encode("unicode_escape").decode("ascii")
    return f"not an HTTP response ({exc}); it starts with {sample!r}"


class _Parsed:
    """What the client asks of a parser once the response is settled: its status and version.

    httptools' parser holds the protocol's bound callbacks and the protocol holds the parser: a
    reference cycle per probe, left to the garbage collector. Swapping the parser for this
    snapshot when ``done`` resolves lets reference counting free both at once.
    """

    __slots__ = ("status", "version")

    def __init__(self, parser: Any) -> None:
        self.status: int = parser.get_status_code()
        self.version = parser_version(parser)

    def get_status_code(self) -> int:
        return self.status

    def get_http_version(self) -> str:
        return self.version


class ResponseProtocol(asyncio.Protocol):
    """Parses one response with httptools; resolves ``done`` at the end or on failure.

    Once ``done`` is resolved, ``parser`` only answers ``get_status_code()`` and
    ``get_http_version()`` (the parser itself is released).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_body: int,
        head_only: bool,
        max_head: int = DEFAULT_MAX_HEAD,
    ) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        # httptools' parser until ``done`` resolves, then a _Parsed snapshot of it
        self.parser: httptools.HttpResponseParser | _Parsed = httptools.HttpResponseParser(self)
        self.max_body = max_body
        self.max_head = max_head
        self.head_only = head_only
        self.first_byte = 0.0
        self.end = 0.0
        self.received = 0
        self.status_reason = b""
        self.headers: list[tuple[str, str]] = []
        self.head_size = 0  # bytes of the status line and the headers handed over so far
        self.partial_line = 0  # bytes of the head line still being received
        self.headers_done = False
        self.complete = False
        self.body = bytearray()
        self.body_size = 0
        self.content_length: int | None = None
        self.chunked = False
        self.too_large = False
        self.max_total = max_head + max_body + max_body // 4 + 2 * MAX_LINE

    # -- asyncio callbacks
    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self.received:
            self.first_byte = perf_counter()
        self.received += len(data)
        parser = self.parser
        assert isinstance(parser, httptools.HttpResponseParser)  # done is not resolved yet
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._fail(ProbeError(HEADER_SIZE, str(exc.__context__)))
                return
            if self.complete or self.too_large:
                pass  # trailing bytes after the message or after we stopped reading
            else:
                self._fail(ProbeError(Reason.PROTOCOL, _describe_parse_error(exc, data)))
                return
        if not self.headers_done:
            self._check_pending_head(data)
        elif self.too_large:
            self._fail(
                BodyTooLargeSignal(self.parser.get_status_code(), parser_version(self.parser))
            )
        elif self.complete:
            self._finish()
        elif self.received > self.max_total:
            self._fail(
                ProbeError(
                    Reason.BODY_SIZE,
                    f"response is over {format_size(self.max_total)} in total without ending "
                    f"({self.body_size} body bytes; the rest chunk framing or trailers)",
                )
            )

    def _check_pending_head(self, data: bytes) -> None:
        """The head is not complete yet: bound what the parser holds of it."""
        newline = data.rfind(b"\n")
        if newline < 0:
            self.partial_line += len(data)
        else:
            self.partial_line = len(data) - newline - 1
        if self.received > self.max_head:
            self._fail(
                ProbeError(
                    HEADER_SIZE,
                    f"response headers exceed max_header_size of {format_size(self.max_head)} "
                    f"({self.received} bytes received, {len(self.headers)} header(s), "
                    "no end of the headers yet)",
                )
            )
        elif self.partial_line > MAX_LINE:
            what = "header line" if self.headers or self.status_reason else "head line"
            self._fail(
                ProbeError(
                    HEADER_SIZE,
                    f"a response {what} is longer than {format_size(MAX_LINE)} "
                    f"({self.partial_line} bytes without a line end)",
                )
            )

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
        if len(self.status_reason) > MAX_LINE:
            raise _HeadTooLarge(f"the response status line is longer than {format_size(MAX_LINE)}")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        head_size = self.head_size = self.head_size + size + 4
        headers = self.headers
        if size > MAX_LINE or len(headers) >= MAX_HEADERS or head_size > self.max_head:
            self._head_too_large(name, size)
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        n = len(key)  # only two names matter here: look at the rest no further
        if n == 14 and key.lower() == "content-length":
            if text.isdigit():
                self.content_length = int(text)
        elif n == 17 and key.lower() == "transfer-encoding" and "chunked" in text.lower():
            self.chunked = True
        headers.append((key, text))

    def _head_too_large(self, name: bytes, size: int) -> NoReturn:
        """Stop parsing: the header ``name`` (of ``size`` bytes) is past one of the caps."""
        if size > MAX_LINE:
            raise _HeadTooLarge(
                f"response header {_name(name)} is longer than {format_size(MAX_LINE)} "
                f"({size} bytes)"
            )
        if len(self.headers) >= MAX_HEADERS:
            raise _HeadTooLarge(f"the response sends more than {MAX_HEADERS} header fields")
        raise _HeadTooLarge(
            f"response headers exceed max_header_size of {format_size(self.max_head)} "
            f"({len(self.headers)} header(s) so far)"
        )

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.head_only:
            # httptools cannot be told a HEAD response has no body; stop here.
            self.complete = True
            self.end = perf_counter()
        else:
            set_phase(READING_BODY)

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        room = self.max_body - len(self.body)
        if room >= len(body):
            self.body += body
        elif room > 0:
            self.body += body[:room]
        if self.body_size > self.max_body:
            self.too_large = True

    def on_message_complete(self) -> None:
        self.complete = True
        self.end = perf_counter()

    # -- helpers
    def _finish(self) -> None:
        if not self.done.done():
            self.parser = _Parsed(self.parser)
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.parser = _Parsed(self.parser)
            self.done.set_exception(exc)


def _name(name: bytes) -> str:
    text = name[:40].decode("latin-1").encode("unicode_escape").decode("ascii")
    return repr(text + ("…" if len(name) > 40 else ""))
