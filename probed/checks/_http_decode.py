"""The ``compression`` option of ``http`` and ``json_api``: ask for a content coding, require it
and decode the body as it arrives, the body budget applied to the DECOMPRESSED size.

- :class:`CompressionOptions`: ``compression`` (``gzip``, ``deflate``, ``br``, ``identity``, like
  blackbox_exporter), mixed into :class:`~probed.checks._http.HttpOptions`. The request carries
  ``Accept-Encoding: <compression>`` (unless ``headers`` sets one); a final response with a body
  must come with that ``Content-Encoding`` (``identity``: none), checked by
  :mod:`probed.checks._http_assert`.
- :class:`DecodingResponseProtocol` (and :class:`DecodingH2Response` for HTTP/2): the response
  protocol when ``compression`` is set. Each
  received piece of body is decoded at once with its output bounded by what is left of
  ``max_body_size``, so a decompression bomb fails with ``body_size`` after one socket read
  past the budget, never holding more than the budget. A body that does not decode, ends in the
  middle of the compressed stream or carries data after its end fails with ``protocol``.
- :func:`new_decoder`: the streaming decoders (``gzip`` with several members, ``deflate`` in the
  zlib wrapping RFC 9110 asks for or raw as some servers send it, ``br`` with the ``brotli``
  package: ``pip install 'probed[brotli]'``), usable by any body reader (HTTP/2 too).

Nothing here runs when ``compression`` is not set.
"""

from __future__ import annotations

import asyncio
import importlib.util
import zlib
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from pydantic import Field, field_validator

from probed.check import CheckOptions, Reason
from probed.checks._http2 import H2Response
from probed.checks._httpparse import ResponseProtocol
from probed.checks._net import ProbeError

__all__ = [
    "CODINGS",
    "Compression",
    "CompressionOptions",
    "DecodeError",
    "Decoder",
    "DecodingH2Response",
    "DecodingResponseProtocol",
    "coding_matches",
    "content_coding",
    "new_decoder",
]

Compression = Literal["gzip", "deflate", "br", "identity"]
CODINGS: Final = ("gzip", "deflate", "br", "identity")
_ALIASES: Final = {"x-gzip": "gzip", "": "identity"}


class CompressionOptions(CheckOptions):
    """The ``compression`` option (blackbox's name and values)."""

    compression: Compression | None = Field(
        default=None,
        description="Send Accept-Encoding with this coding, require it as the response's "
        "Content-Encoding and decode the body (gzip, deflate, br, identity); max_body_size "
        "applies to the decompressed body.",
    )

    @field_validator("compression", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("compression")
    @classmethod
    def _available(cls, value: str | None) -> str | None:
        if value == "br" and importlib.util.find_spec("brotli") is None:
            raise ValueError(
                "compression br needs the brotli package: pip install 'probed[brotli]'"
            )
        return value


class DecodeError(Exception):
    """The body does not decode; the message says how (no body bytes in it)."""


class Decoder(Protocol):
    """A streaming decoder of one content coding."""

    def feed(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; returns at most about ``limit + 1`` bytes (more than ``limit``
        means the budget is exceeded and the caller stops). :raises DecodeError:"""

    def finish(self) -> None:
        """The body ended: :raises DecodeError: when the compressed stream did not."""


class _ZlibDecoder:
    """gzip (members one after another) or deflate (zlib-wrapped or raw, told by the header)."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self.wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else 0
        self.obj: Any = None
        self.ended = False

    def _start(self, data: bytes) -> None:
        if self.coding == "deflate" and self.wbits == 0:
            # RFC 9110's deflate is the zlib format; some servers send raw deflate.
            zlib_header = (
                len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            )
            self.wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
        self.obj = zlib.decompressobj(self.wbits)
        self.ended = False

    def feed(self, data: bytes, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while data and size <= limit:
            if self.obj is None or self.ended:
                if self.obj is not None and self.coding != "gzip":
                    raise DecodeError(f"{len(data)} byte(s) after the end of the deflate stream")
                self._start(data)
            try:
                out = self.obj.decompress(data, limit + 1 - size)
            except zlib.error as exc:
                raise DecodeError(f"the {self.coding} stream is invalid ({exc})") from None
            size += len(out)
            chunks.append(out)
            if self.obj.eof:
                self.ended = True
                data = self.obj.unused_data
            else:
                data = self.obj.unconsumed_tail
        return b"".join(chunks)

    def finish(self) -> None:
        if self.obj is not None and not self.ended:
            raise DecodeError(f"the body ends in the middle of the {self.coding} stream")


class _BrotliDecoder:
    def __init__(self) -> None:
        import brotli  # optional: only with compression br

        self.error: type[Exception] = brotli.error
        self.obj: Any = brotli.Decompressor()
        self.fed = False

    def feed(self, data: bytes, limit: int) -> bytes:
        self.fed = True
        chunks: list[bytes] = []
        size = 0
        try:
            if self.obj.is_finished() and data:
                raise DecodeError(f"{len(data)} byte(s) after the end of the br stream")
            out = self.obj.process(data, output_buffer_limit=limit + 1)
            size += len(out)
            chunks.append(out)
            while size <= limit and not self.obj.can_accept_more_data():
                out = self.obj.process(b"", output_buffer_limit=limit + 1 - size)
                size += len(out)
                chunks.append(out)
        except self.error as exc:
            raise DecodeError(f"the br stream is invalid ({exc})") from None
        return b"".join(chunks)

    def finish(self) -> None:
        if self.fed and not self.obj.is_finished():
            raise DecodeError("the body ends in the middle of the br stream")


def new_decoder(coding: str) -> Decoder | None:
    """A fresh decoder for ``coding`` (``None`` for identity)."""
    if coding == "identity":
        return None
    if coding == "br":
        return _BrotliDecoder()
    return _ZlibDecoder(coding)


def content_coding(value: str | None) -> str:
    """The normalized Content-Encoding of a response (``identity`` when absent)."""
    text = (value or "").strip().lower()
    return _ALIASES.get(text, text)


def coding_matches(wanted: str, value: str | None) -> bool:
    """Whether a response's ``Content-Encoding`` header value is the coding asked for."""
    return content_coding(value) == wanted


class _Decoding:
    """What both decoding protocols add: a decoder chosen by the response's Content-Encoding,
    decoded output handed to the protocol's own body handling (so its budget applies)."""

    coding: str = "identity"
    decoder: Decoder | None = None
    raw_size: int = 0
    max_body: int
    body_size: int
    too_large: bool = False
    done: asyncio.Future[None]

    if TYPE_CHECKING:

        def _fail(self, exc: BaseException) -> None: ...

    def _choose_decoder(self, headers: list[tuple[str, str]]) -> None:
        value = next((v for n, v in headers if n.lower() == "content-encoding"), None)
        if coding_matches(self.coding, value):
            self.decoder = new_decoder(self.coding)

    def _decode(self, decoder: Decoder, data: bytes) -> bytes | None:
        """``data`` decoded within the room left, or None when the run already failed."""
        self.raw_size += len(data)
        if self.too_large or self.done.done():
            return None
        try:
            return decoder.feed(data, self.max_body - self.body_size)
        except DecodeError as exc:
            self._decode_failed(exc)
            return None

    def _finish_decoding(self) -> bool:
        """Whether the compressed stream ended properly (else the run failed)."""
        if self.decoder is None or self.too_large or not self.raw_size:
            return True
        try:
            self.decoder.finish()
        except DecodeError as exc:
            self._decode_failed(exc)
            return False
        return True

    def _decode_failed(self, exc: DecodeError) -> None:
        self._fail(
            ProbeError(
                Reason.PROTOCOL,
                f"the {self.coding} body does not decode: {exc} "
                f"({self.raw_size} bytes received, {self.body_size} decoded)",
            )
        )


class DecodingResponseProtocol(ResponseProtocol, _Decoding):
    """A :class:`ResponseProtocol` decoding a body in ``coding`` as it arrives.

    ``body_size`` counts decoded bytes (the budget ``max_body`` applies to them);
    ``raw_size`` the bytes received. A response in another coding is kept as it came (the
    check fails it: :mod:`probed.checks._http_assert`). The other arguments are
    :class:`ResponseProtocol`'s.
    """

    def __init__(self, coding: str, *args: Any) -> None:
        super().__init__(*args)
        self.coding = coding

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._choose_decoder(self.headers)

    def on_body(self, body: bytes) -> None:
        if self.decoder is None:
            super().on_body(body)
            return
        out = self._decode(self.decoder, body)
        if out is not None:
            super().on_body(out)

    def on_message_complete(self) -> None:
        if self._finish_decoding():
            super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if (
            exc is None
            and self.headers_done
            and self.content_length is None
            and not self.chunked
            and not self._finish_decoding()
        ):
            return
        super().connection_lost(exc)


class DecodingH2Response(H2Response, _Decoding):
    """An :class:`~probed.checks._http2.H2Response` decoding its body in ``coding`` as DATA
    frames arrive (same rules as :class:`DecodingResponseProtocol`; the other arguments are
    :class:`~probed.checks._http2.H2Response`'s)."""

    def __init__(self, coding: str, *args: Any) -> None:
        super().__init__(*args)
        self.coding = coding

    def _on_headers(self, raw: list[tuple[bytes, bytes]]) -> None:
        super()._on_headers(raw)
        if self.headers_done:
            self._choose_decoder(self.headers)

    def _on_data(self, data: bytes, flow_controlled: int) -> None:
        if self.decoder is None:
            super()._on_data(data, flow_controlled)
            return
        out = self._decode(self.decoder, data)
        if out is not None:
            super()._on_data(out, flow_controlled)  # flow control counts the bytes received

    def _event(self, event: Any) -> None:
        ended = getattr(event, "stream_id", None) == self.STREAM and (
            type(event).__name__ == "StreamEnded"
        )
        if ended and not self._finish_decoding():
            return
        super()._event(event)
