"""The ``websocket`` check type: open a WebSocket (ws/wss), optionally exchange a message, close.

aiohttp's client (``ClientSession.ws_connect``) on a fresh connection per run. Phases:

- ``resolve``: DNS (host names only); ``connect``: TCP; ``tls``: the handshake (``wss`` only)
- ``upgrade``: the HTTP upgrade request until ``101 Switching Protocols``
- ``exchange``: from sending ``send`` until a message matched ``expect``
- ``close``: our close frame until the server's close frame

aiohttp times the connection as one step; the TLS handshake's start is taken from the SSL
context's ``sslobject_class`` (a documented hook), whose first ``do_handshake`` call is the
moment the TCP connection is up. Every message read is bounded (``max_message_size``, at most
``max_messages``); permessage-deflate is never offered, so no reply can inflate.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from contextvars import ContextVar
from time import perf_counter
from typing import Any, ClassVar, Final

import aiohttp

from probed import hookimpl
from probed.check import Check, CheckOptions, MetricDef, Reason, Result, Status
from probed.checks._failures import describe
from probed.checks._net import family_for
from probed.checks._tls import (
    CERT_EXPIRY_METRIC,
    describe_ssl_error,
    expiry_verdict,
    load_context,
)
from probed.checks._tlschain import read_chain
from probed.checks._websocket_options import WebSocketOptions, close_name
from probed.options import format_size
from probed.phase import format_elapsed, set_phase
from probed.redact import Redactor, option_secrets, redact_url

__all__ = ["WebSocketCheck", "WebSocketOptions", "close_name"]

_NORMAL_CLOSE: Final = frozenset({1000, 1001})
STATUS_METRIC: Final = MetricDef(
    "probed_websocket_status_code",
    "HTTP status of the upgrade response (101 when the server switched protocols).",
)
CLOSE_CODE_METRIC: Final = MetricDef(
    "probed_websocket_close_code",
    "Close code of the server's close frame (1006: the connection ended without one).",
)

_TLS_START: ContextVar[list[float] | None] = ContextVar("probed_ws_tls_start", default=None)


class _TimedSSLObject(ssl.SSLObject):
    """Notes when the TLS handshake starts: asyncio's first ``do_handshake`` call, made as soon
    as the TCP connection is up (in the run's context, so the run's list gets the mark)."""

    def do_handshake(self) -> None:
        marks = _TLS_START.get()
        if marks is not None and not marks:
            marks.append(perf_counter())
        super().do_handshake()


def _excerpt(text: str, limit: int = 80) -> str:
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _oneline(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut at ``limit`` characters (aiohttp quotes what it could not read)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


class _WsError(Exception):
    """An expected failure inside a run: reason and sentence (without the URL prefix)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Timing:
    """Phase marks of one run, filled by aiohttp's trace signals and the SSL object."""

    def __init__(self) -> None:
        self.dns_start = 0.0
        self.dns_end = 0.0
        self.create_start = 0.0
        self.create_end = 0.0
        self.tls_start: list[float] = []

    def phases(self, phases: dict[str, float], now: float) -> None:
        """Fill resolve/connect/tls from the marks (those of an unfinished step end ``now``)."""
        if self.dns_start:
            phases["resolve"] = (self.dns_end or now) - self.dns_start
        if not self.create_start:
            return
        start = self.dns_end or self.create_start
        end = self.create_end or now
        if self.tls_start:
            phases["connect"] = max(self.tls_start[0] - start, 0.0)
            phases["tls"] = max(end - self.tls_start[0], 0.0)
        else:
            phases["connect"] = max(end - start, 0.0)


def _trace_config(timing: _Timing) -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()

    async def dns_start(*_: Any) -> None:
        timing.dns_start = perf_counter()

    async def dns_end(*_: Any) -> None:
        timing.dns_end = perf_counter()

    async def create_start(*_: Any) -> None:
        timing.create_start = perf_counter()

    async def create_end(*_: Any) -> None:
        timing.create_end = perf_counter()

    config.on_dns_resolvehost_start.append(dns_start)
    config.on_dns_resolvehost_end.append(dns_end)
    config.on_connection_create_start.append(create_start)
    config.on_connection_create_end.append(create_end)
    return config


class WebSocketCheck(Check[WebSocketOptions]):
    """Upgrade to a WebSocket, optionally send/expect, then close with a close handshake."""

    type_name: ClassVar[str] = "websocket"
    options_model: ClassVar[type[CheckOptions]] = WebSocketOptions
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        STATUS_METRIC,
        CLOSE_CODE_METRIC,
        CERT_EXPIRY_METRIC,
    )
    description: ClassVar[str] = "WebSocket upgrade, optional send/expect, close handshake"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        options = self.options
        self.where = redact_url(options.url)
        self.secure = options.url.lower().startswith("wss:")
        self.expect = re.compile(options.expect) if options.expect is not None else None
        headers = dict(options.headers)
        headers.update((k, v.get_secret_value()) for k, v in options.secret_headers.items())
        self.headers = headers
        # Replies may echo what was sent (a token header): failure messages quote replies.
        self.redact = Redactor(option_secrets(options))
        self.ssl_context: ssl.SSLContext | None = None
        self._ready = False
        self._tls_error: str | None = None

    async def setup(self) -> None:
        """Build the SSL context once (reading CA/cert files in a thread)."""
        context, self._tls_error = await load_context(self.options.tls if self.secure else None)
        if context is not None:
            context.sslobject_class = _TimedSSLObject
            self.ssl_context = context
        self._ready = True

    async def run(self) -> Result:
        """Connect and upgrade, exchange if configured, close; judge the certificate."""
        if not self._ready:
            await self.setup()
        if self._tls_error:
            return Result.fail(Reason.TLS, f"{self.where}: {self._tls_error}")
        phases: dict[str, float] = {}
        values: dict[str, float] = {}
        timing = _Timing()
        # Give up a little before the daemon's timeout, so the result names the phase and
        # keeps the phases measured so far.
        budget = self.spec.timeout * 0.9
        token = _TLS_START.set(timing.tls_start)
        connector = aiohttp.TCPConnector(
            family=socket.AddressFamily(family_for(self.options.ip_version)),
            use_dns_cache=False,
            force_close=True,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            trace_configs=[_trace_config(timing)],
            timeout=aiohttp.ClientTimeout(total=None),
        )
        step = "upgrade"
        try:
            async with asyncio.timeout(budget):
                ws = await self._upgrade(session, timing, phases, values)
                step = "exchange"
                matched = await self._exchange(ws, phases)
                step = "close"
                await self._close(ws, phases, values)
        except TimeoutError:
            if step == "upgrade":
                timing.phases(phases, perf_counter())
            return Result.fail(
                Reason.TIMEOUT,
                f"{self.where}: {self._timeout_detail(step, timing)} within "
                f"{format_elapsed(budget)}",
                phases=phases,
                values=values,
            )
        except _WsError as exc:
            return Result.fail(
                exc.reason, self.redact(f"{self.where}: {exc.detail}"), phases=phases, values=values
            )
        finally:
            _TLS_START.reset(token)
            await session.close()
        return self._verdict(matched, phases, values)

    def _timeout_detail(self, step: str, timing: _Timing) -> str:
        if step == "exchange":
            return f"no message matching /{self.options.expect}/"
        if step == "close":
            return "no close frame in answer to ours"
        if not timing.create_end:
            if timing.dns_start and not timing.dns_end:
                return "no DNS answer"
            if timing.tls_start:
                return "TLS handshake not finished"
            return "TCP connection not established"
        return "no answer to the upgrade request"

    async def _upgrade(
        self,
        session: aiohttp.ClientSession,
        timing: _Timing,
        phases: dict[str, float],
        values: dict[str, float],
    ) -> aiohttp.ClientWebSocketResponse:
        opts = self.options
        set_phase("connecting")
        try:
            ws = await session.ws_connect(
                opts.url,
                protocols=(opts.subprotocol,) if opts.subprotocol else (),
                headers=self.headers,
                ssl=self.ssl_context if self.ssl_context is not None else True,
                server_hostname=opts.tls.server_name if self.secure else None,
                max_msg_size=opts.max_message_size,
                autoclose=True,
                autoping=True,
                # The run's own deadline (asyncio.timeout around it all) bounds the close.
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.spec.timeout),
            )
        except aiohttp.WSServerHandshakeError as exc:
            self._after_upgrade(timing, phases)
            values[STATUS_METRIC.name] = float(exc.status)
            if exc.status != 101:
                raise _WsError(
                    Reason.STATUS,
                    f"upgrade refused: HTTP {exc.status} {exc.message}"
                    if exc.message != "Invalid response status"
                    else f"upgrade refused: the server answered HTTP {exc.status} "
                    "instead of 101 Switching Protocols",
                ) from None
            raise _WsError(Reason.PROTOCOL, f"bad upgrade response: {exc.message}") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            timing.phases(phases, perf_counter())
            raise _WsError(Reason.TLS, describe_ssl_error(exc.certificate_error)) from None
        except aiohttp.ClientSSLError as exc:
            timing.phases(phases, perf_counter())
            error = getattr(exc, "os_error", None) or exc.__cause__ or exc
            raise _WsError(Reason.TLS, describe_ssl_error(error)) from None
        except aiohttp.ClientConnectorError as exc:
            timing.phases(phases, perf_counter())
            where = f"{exc.host}:{exc.port}"
            found = describe(exc.os_error, where)
            if found is None:
                raise _WsError(
                    Reason.UNREACHABLE, f"cannot connect to {where}: {exc.os_error}"
                ) from None
            raise _WsError(*found) from None
        except aiohttp.ServerDisconnectedError:
            self._after_upgrade(timing, phases)
            raise _WsError(
                Reason.PROTOCOL, "the server closed the connection without answering the upgrade"
            ) from None
        except aiohttp.ClientOSError as exc:
            self._after_upgrade(timing, phases)
            found = describe(exc, "the server")
            raise _WsError(*(found or (Reason.PROTOCOL, f"upgrade failed: {exc}"))) from None
        except aiohttp.ClientResponseError as exc:
            self._after_upgrade(timing, phases)
            detail = _oneline(str(exc.message or exc))
            raise _WsError(Reason.PROTOCOL, f"bad upgrade response: {detail}") from None
        except aiohttp.ClientError as exc:  # anything else aiohttp says went wrong
            self._after_upgrade(timing, phases)
            detail = _oneline(str(exc) or type(exc).__name__)
            raise _WsError(Reason.PROTOCOL, f"upgrade failed: {detail}") from None
        self._after_upgrade(timing, phases)
        values[STATUS_METRIC.name] = 101.0
        chain = read_chain(ws.get_extra_info("ssl_object"), verified=opts.tls.verify)
        if chain is not None and chain.earliest_not_after is not None:
            # The earliest of the verified chain, as for every type that speaks TLS.
            values[CERT_EXPIRY_METRIC.name] = chain.earliest_not_after
        if opts.subprotocol and ws.protocol != opts.subprotocol:
            await ws.close()
            raise _WsError(
                Reason.PROTOCOL,
                f"the server did not select subprotocol {opts.subprotocol!r} "
                "(no Sec-WebSocket-Protocol in its upgrade response)",
            )
        return ws

    @staticmethod
    def _after_upgrade(timing: _Timing, phases: dict[str, float]) -> None:
        now = perf_counter()
        timing.phases(phases, now)
        if timing.create_end:
            phases["upgrade"] = now - timing.create_end

    async def _exchange(
        self, ws: aiohttp.ClientWebSocketResponse, phases: dict[str, float]
    ) -> bool:
        """Send, then read until a message matches ``expect``; True when one did."""
        opts = self.options
        if opts.send is None and self.expect is None:
            return False
        start = perf_counter()
        try:
            if opts.send is not None:
                set_phase("sending the message")
                await ws.send_str(opts.send)
            if self.expect is None:
                return False
            set_phase(f"waiting for a message matching /{self.expect.pattern}/")
            last = ""
            for _ in range(opts.max_messages):
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    last = msg.data
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    last = bytes(msg.data).decode("utf-8", "replace")
                else:
                    raise self._ended(ws, msg, last)
                if self.expect.search(last):
                    return True
            raise _WsError(
                Reason.ASSERTION,
                f"none of the {opts.max_messages} messages read (max_messages) matched "
                f"/{self.expect.pattern}/; the last was {_excerpt(last)}",
            )
        finally:
            phases["exchange"] = perf_counter() - start

    def _ended(
        self, ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage, last: str
    ) -> _WsError:
        """The failure for a close or error where a message was expected."""
        got = f" (the last message was {_excerpt(last)})" if last else ""
        wanted = f"before a message matched /{self.options.expect}/{got}"
        if msg.type is aiohttp.WSMsgType.ERROR:
            error = msg.data
            code = getattr(error, "code", None)
            if code == 1009:
                return _WsError(
                    Reason.BODY_SIZE,
                    "the server sent a message larger than max_message_size "
                    f"({format_size(self.options.max_message_size)})",
                )
            found = describe(error, "the server") if isinstance(error, BaseException) else None
            if found is not None:
                return _WsError(found[0], f"{found[1]} {wanted}")
            return _WsError(Reason.PROTOCOL, f"WebSocket error {wanted}: {error}")
        code = ws.close_code
        if msg.type is aiohttp.WSMsgType.CLOSE and isinstance(msg.data, int):
            code = msg.data
        if code is None or code == 1006:
            return _WsError(
                Reason.PROTOCOL, f"the server dropped the connection without a close frame {wanted}"
            )
        extra = f": {msg.extra!r}" if isinstance(msg.extra, str) and msg.extra else ""
        return _WsError(
            Reason.PROTOCOL, f"the server closed with code {close_name(code)}{extra} {wanted}"
        )

    async def _close(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        phases: dict[str, float],
        values: dict[str, float],
    ) -> None:
        """Send our close frame, wait for the server's; check its code."""
        set_phase("waiting for the server's close frame")
        start = perf_counter()
        try:
            await ws.close()
        finally:
            phases["close"] = perf_counter() - start
        code = ws.close_code
        if code is None:
            code = 1006
        values[CLOSE_CODE_METRIC.name] = float(code)
        if isinstance(ws.exception(), TimeoutError):
            raise TimeoutError
        wanted = self.options.expect_close_code
        if wanted is not None and code == wanted:
            return
        if wanted is None and code in _NORMAL_CLOSE:
            return
        expected = f" (expected {close_name(wanted)})" if wanted is not None else ""
        if code == 1006:
            detail = "the server ended the connection without a close frame"
        else:
            detail = f"the server closed with code {close_name(code)}"
        raise _WsError(Reason.PROTOCOL, detail + expected)

    def _verdict(self, matched: bool, phases: dict[str, float], values: dict[str, float]) -> Result:
        cert_expiry = values.get(CERT_EXPIRY_METRIC.name)
        if cert_expiry is not None:
            verdict = expiry_verdict(cert_expiry, self.options.tls, time.time())
            if verdict is not None:
                status, reason, detail = verdict
                return Result(
                    status, reason, f"{self.where}: {detail}", phases=phases, values=values
                )
        total = format_elapsed(sum(phases.values()))
        what = f", a message matched /{self.options.expect}/" if matched else ""
        sent = ", sent the message" if self.options.send is not None and not matched else ""
        proto = f" (subprotocol {self.options.subprotocol})" if self.options.subprotocol else ""
        return Result(
            Status.OK,
            "",
            f"{self.where}: upgraded{proto}{sent}{what}, closed normally in {total}",
            phases=phases,
            values=values,
        )


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register the ``websocket`` check type."""
    return [WebSocketCheck]
