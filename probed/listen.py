"""The listeners: a bounded, optionally TLS main listener and an optional health-only one.

Each listener is an :class:`aiohttp.web.BaseSite` whose connections are counted: past
``max_connections`` a new connection is closed at once (counted, never queued), a connection
that has not sent a whole request within ``header_timeout`` is closed (slow-loris and idle
sockets cost an fd for seconds, not forever), and an idle keep-alive connection is closed
after ``idle_timeout``. TLS is negotiated per connection with the web configuration in force
when it arrives (:class:`probed.guard.Guard`), so a reload that changes certificates, client CAs or
versions applies to the next connection without re-binding the port.

Logs a client can provoke are bounded: a malformed request is one warning line (no
traceback), and asyncio's ``socket.accept() out of system resource`` is logged at most once
per :data:`LOG_EVERY` seconds with the number of lines suppressed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from probed._httplog import http_log, install_log_filters
from probed.errors import ConfigError
from probed.guard import GUARD, Connection, Guard
from probed.settings import Settings
from probed.webconfig import WebConfig, load_web_config

__all__ = [
    "Limits",
    "Listener",
    "Listeners",
    "open_listeners",
    "runner_options",
    "start_listeners",
]

log = logging.getLogger("probed")

EVICT_AFTER: Final = 0.5
"""At the connection cap, a connection without a request for this long makes room for a new one."""
SHUTDOWN_GRACE: Final = 5.0
"""Seconds requests in progress may take to finish when the daemon stops."""
HEALTH_CONNECTIONS: Final = 64
"""Connection cap of the health-only listener (the kubelet opens a few)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one listener (see the module docstring)."""

    max_connections: int = 1000
    header_timeout: float = 10.0
    idle_timeout: float = 30.0


# -- connections ----------------------------------------------------------------------------------


class _Handler(web.RequestHandler, Connection):
    """aiohttp's protocol, counted and closed when no request arrives within the deadline."""

    def __init__(self, listener: Listener, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probed_listener = listener
        self.probed_served = False
        self._probed_counted = True
        self._probed_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        loop = asyncio.get_running_loop()
        self._probed_timer = loop.call_later(
            self.probed_listener.limits.header_timeout, self._probed_expire
        )
        self.probed_listener.waiting[self] = loop.time()

    @property
    def health_only(self) -> bool:
        return self.probed_listener.health_only

    def served(self) -> None:
        """A whole request arrived: no longer subject to the header deadline or eviction."""
        if not self.probed_served:
            self.probed_served = True
            self.probed_listener.waiting.pop(self, None)

    def _probed_expire(self) -> None:
        self._probed_timer = None
        if not self.probed_served:
            self.probed_listener.timed_out += 1
            self.force_close()

    def evict(self) -> None:
        """Close this connection, which has not sent a request yet, to make room."""
        self.probed_listener.waiting.pop(self, None)
        self.probed_listener.evicted += 1
        self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._probed_timer is not None:
            self._probed_timer.cancel()
        self.probed_listener.waiting.pop(self, None)
        self.uncount()
        super().connection_lost(exc)

    def uncount(self) -> None:
        if self._probed_counted:
            self._probed_counted = False
            self.probed_listener.open -= 1


class _Refuse(asyncio.Protocol):
    """Over the cap: drop the connection at once (RST), before any TLS work."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        abort = getattr(transport, "abort", transport.close)
        abort()


class _TLSGate(asyncio.Protocol):
    """Holds a raw connection until its TLS handshake is done, with the context of now."""

    def __init__(self, listener: Listener, ctx: ssl.SSLContext, config: WebConfig) -> None:
        self._listener, self._ctx, self._config = listener, ctx, config
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.Transport: typed, not checked
        transport = cast(asyncio.Transport, transport)
        transport.pause_reading()
        loop = asyncio.get_running_loop()
        self._task = task = loop.create_task(self._upgrade(transport))
        self._listener.tasks.add(task)
        task.add_done_callback(self._listener.tasks.discard)
        self._listener.waiting[self] = loop.time()

    def evict(self) -> None:
        """Give up this handshake, to make room (see :meth:`Listener._evict_oldest`)."""
        self._listener.waiting.pop(self, None)
        self._listener.evicted += 1
        if self._task is not None:
            self._task.cancel()

    async def _upgrade(self, raw: asyncio.Transport) -> None:
        listener = self._listener
        handler = listener.handler(counted=True)
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(
                raw,
                handler,
                self._ctx,
                server_side=True,
                ssl_handshake_timeout=listener.limits.header_timeout,
            )
            listener.waiting.pop(self, None)
        except Exception as exc:
            listener.waiting.pop(self, None)
            listener.handshake_failed += 1
            http_log.debug("TLS handshake failed: %s", exc)
            handler.uncount()
            raw.abort()
            return
        except asyncio.CancelledError:
            listener.waiting.pop(self, None)
            handler.uncount()
            raw.abort()
            raise
        if secure is None:  # the connection went away during the handshake
            handler.uncount()
            return
        allowed = self._config.allowed_sans
        if allowed is not None and not _has_san(secure.get_extra_info("peercert"), allowed):
            listener.handshake_failed += 1
            http_log.debug("client certificate without an allowed SAN")
            handler.uncount()
            secure.abort()
            return
        handler.connection_made(secure)


def _has_san(cert: Any, allowed: frozenset[str]) -> bool:
    if not cert:
        return False
    return any(value in allowed for _kind, value in cert.get("subjectAltName", ()))


class Listener(web.BaseSite):
    """One listening socket of the application, bounded (see the module docstring)."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        limits: Limits,
        guard: Guard | None,
        health_only: bool = False,
        handler_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(runner, backlog=min(limits.max_connections, 1024))
        self._host, self._port = host, port
        self.limits = limits
        self.guard = guard
        self.health_only = health_only
        self._options = handler_options or {}
        self.open = 0
        self.refused = 0
        self.timed_out = 0
        self.evicted = 0
        self.waiting: dict[_Handler | _TLSGate, float] = {}
        """Connections that have not sent a whole request yet, oldest first (by arrival)."""
        self.handshake_failed = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.bound: tuple[str, int] = (host, port)

    @property
    def name(self) -> str:
        scheme = "https" if self.guard is not None and self.guard.web.tls else "http"
        host = f"[{self.bound[0]}]" if ":" in self.bound[0] else self.bound[0]
        return f"{scheme}://{host}:{self.bound[1]}"

    def handler(self, *, counted: bool = False) -> _Handler:
        """A counted request handler for a new connection (``counted``: already counted)."""
        server = self._runner.server
        assert server is not None
        if not counted:
            self.open += 1
        return _Handler(self, manager=server, loop=asyncio.get_running_loop(), **self._options)

    def _factory(self) -> asyncio.BaseProtocol:
        if self.open >= self.limits.max_connections and not self._evict_oldest():
            self.refused += 1
            return _Refuse()
        config = self.guard.web if self.guard is not None else None
        if config is not None and config.tls is not None:
            self.open += 1  # handshakes in progress hold an fd too; the handler takes it over
            return _TLSGate(self, config.tls, config)
        return self.handler()

    def _evict_oldest(self) -> bool:
        """At the cap, close the oldest connection still without a request if it has waited at
        least :data:`EVICT_AFTER`: idle sockets cannot lock out clients that send requests."""
        for handler, since in self.waiting.items():
            if asyncio.get_running_loop().time() - since >= EVICT_AFTER:
                handler.evict()
                return True
            return False
        return False

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
        sockname = self._server.sockets[0].getsockname()
        self.bound = (str(sockname[0]), int(sockname[1]))

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await super().stop()


def handler_options(limits: Limits) -> dict[str, Any]:
    """aiohttp request-handler options for ``limits`` (also given to the AppRunner)."""
    return {
        "keepalive_timeout": limits.idle_timeout,
        "access_log": None,
        "logger": http_log,
        "max_line_size": 8190,
        "max_field_size": 8190,
    }


# -- starting them --------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Listeners:
    """The started listeners: the main one first."""

    main: Listener
    health: Listener | None = None

    def __iter__(self) -> Iterator[Listener]:
        yield self.main
        if self.health is not None:
            yield self.health

    def collect(self) -> Iterator[Metric]:
        """Connection metrics (a prometheus_client custom collector)."""
        open_ = GaugeMetricFamily(
            "probed_http_connections", "Open connections to a listener.", labels=["listener"]
        )
        refused = CounterMetricFamily(
            "probed_http_connections_refused",
            "Connections closed at once because the listener had max_connections open.",
            labels=["listener"],
        )
        timed_out = CounterMetricFamily(
            "probed_http_connections_timed_out",
            "Connections closed because no whole request arrived within header_timeout.",
            labels=["listener"],
        )
        evicted = CounterMetricFamily(
            "probed_http_connections_evicted",
            "Connections without a request closed at the cap to make room for a new one.",
            labels=["listener"],
        )
        for listener in self:
            name = "health" if listener.health_only else "main"
            evicted.add_metric([name], listener.evicted)
            open_.add_metric([name], listener.open)
            refused.add_metric([name], listener.refused)
            timed_out.add_metric([name], listener.timed_out + listener.handshake_failed)
        yield from (open_, refused, timed_out, evicted)


async def start_listeners(
    runner: web.AppRunner,
    listen: tuple[str, int],
    health_listen: tuple[str, int] | None,
    limits: Limits,
) -> Listeners:
    """Bind and start the main listener (TLS and auth per the app's :class:`Guard`) and, when
    asked, the health-only listener (plain HTTP, ``/health/*`` only, no auth)."""
    install_log_filters()
    options = handler_options(limits)
    guard = runner.app[GUARD]
    health: Listener | None = None
    if health_listen is not None:  # first: once the main port answers, so do the probes
        health_limits = Limits(
            min(limits.max_connections, HEALTH_CONNECTIONS),
            limits.header_timeout,
            limits.idle_timeout,
        )
        health = Listener(
            runner,
            *health_listen,
            limits=health_limits,
            guard=None,
            health_only=True,
            handler_options=options,
        )
        await health.start()
    main = Listener(runner, *listen, limits=limits, guard=guard, handler_options=options)
    await main.start()
    listeners = Listeners(main, health)
    return listeners


class _Collectors(Protocol):
    def add_collectors(self, collectors: Iterable[Any]) -> None: ...


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def runner_options(settings: Settings) -> dict[str, Any]:
    """The AppRunner's options for ``settings``: on stop, requests still in progress (a client
    that does not read its answer) get :data:`SHUTDOWN_GRACE` seconds, not aiohttp's 60."""
    return {
        "handle_signals": False,
        "shutdown_timeout": SHUTDOWN_GRACE,
        **handler_options(_limits(settings)),
    }


def _limits(settings: Settings) -> Limits:
    return Limits(settings.max_connections, settings.header_timeout, settings.idle_timeout)


async def open_listeners(
    runner: web.AppRunner,
    settings: Settings,
    on_reload: list[Callable[[], tuple[ConfigError, ...]]],
    metrics: _Collectors,
) -> Listeners:
    """Load the web configuration, start the listeners, re-read the web configuration on
    every reload and register the connection metrics.

    :raises ConfigErrors: the web configuration is invalid (the daemon does not start).
    """
    guard = runner.app[GUARD]
    guard.reload_endpoint = settings.reload_endpoint
    if settings.web_config is not None:
        guard.path = settings.web_config
        guard.web = await asyncio.to_thread(load_web_config, settings.web_config)
    health = _split(settings.health_listen) if settings.health_listen else None
    listeners = await start_listeners(runner, settings.host_port, health, _limits(settings))
    if settings.web_config is not None or listeners.health is not None:
        health_name = listeners.health.name if listeners.health is not None else "none"
        log.info(
            "main listener %s: %s; reload_endpoint %s; health-only listener: %s",
            listeners.main.name,
            guard.web.describe(),
            guard.reload_endpoint,
            health_name,
            extra={"event": "listeners", "health_listen": health_name},
        )
    on_reload.append(guard.reload)
    metrics.add_collectors([listeners])
    return listeners
