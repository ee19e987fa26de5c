"""Who may do what on probed's listeners: the web configuration in force, basic auth, the
``/-/reload`` policy, the health-only listener's routes and the configured response headers.

:func:`guard_middleware` is the application's middleware; :class:`Guard` lives in the
application under :data:`GUARD` (set by :func:`probed.server.make_app`, filled by
:func:`probed.listen.open_listeners`). Connections of probed's listeners are
:class:`Connection`\\ s; requests that came another way (an embedding application's own site,
a test client) are treated as on the main listener.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from aiohttp import web

from probed.errors import ConfigError, ConfigErrors
from probed.webconfig import WebConfig, load_web_config

__all__ = ["GUARD", "Connection", "Guard", "add_headers", "guard_middleware"]

log = logging.getLogger("probed")


class Connection:
    """What the middleware needs of a connection of one of probed's listeners."""

    @property
    def health_only(self) -> bool:
        """Whether the connection came through the health-only listener."""
        return False

    def served(self) -> None:
        """Called once a whole request has arrived."""


@dataclass(slots=True)
class Guard:
    """Who may do what on the listeners: the web configuration in force and the reload policy.

    :param web: the web configuration (swapped by :meth:`reload`).
    :param reload_endpoint: ``protected`` (``POST /-/reload`` only from loopback clients or
        authenticated ones: basic auth or a verified client certificate), ``open`` or ``off``.
    :param path: the web configuration file, re-read by :meth:`reload`.
    """

    web: WebConfig = field(default_factory=WebConfig)
    reload_endpoint: str = "protected"
    path: Path | None = None
    errors: tuple[ConfigError, ...] = ()

    def reload(self) -> tuple[ConfigError, ...]:
        """Re-read the web configuration file; on errors keep the one in force."""
        if self.path is None:
            return ()
        try:
            fresh = load_web_config(self.path)
        except ConfigErrors as exc:
            for error in exc.errors:
                log.error(
                    "%s (the previous web configuration stays in force)",
                    error,
                    extra={"event": "web_config_error"},
                )
            self.errors = tuple(exc.errors)
            return self.errors
        old = self.web.auth
        if old is not None and fresh.auth is not None and old.users == fresh.auth.users:
            fresh = replace(fresh, auth=old)  # same users: keep the verdicts cached
        self.web, self.errors = fresh, ()
        log.info(
            "web configuration reloaded from %s: %s",
            self.path,
            fresh.describe(),
            extra={"event": "web_config_reloaded"},
        )
        return ()


GUARD: Final = web.AppKey("guard", Guard)
"""The listeners' policy (set by :func:`probed.server.make_app`)."""


# -- per-request policy ---------------------------------------------------------------------------


def _loopback(remote: str | None) -> bool:
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _reloads(request: web.Request) -> bool:
    """Whether ``request`` would reach ``POST /-/reload`` (by its path or by the route it
    matched, so no spelling of the path slips past the policy)."""
    if request.method != "POST":
        return False
    route = request.match_info.route if request.match_info else None
    resource = route.resource if route is not None else None
    return request.path == "/-/reload" or (
        resource is not None and resource.canonical == "/-/reload"
    )


_PING_ROUTES: Final = frozenset(("/ping/{check}", "/ping/{check}/{action}"))


def _pings(request: web.Request) -> bool:
    """Whether ``request`` matched a ``/ping/`` route (a heartbeat's job reporting in): those
    carry their check's own token instead of the listener's basic auth."""
    route = request.match_info.route if request.match_info else None
    resource = route.resource if route is not None else None
    return resource is not None and resource.canonical in _PING_ROUTES


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


@web.middleware
async def guard_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Health-only listener: ``/health/*`` only, no auth. Main listener: basic auth when users
    are configured (not on ``/ping/``: a heartbeat's ping carries its check's token), and the
    reload policy (the headers: :func:`add_headers`)."""
    protocol = request.protocol
    if isinstance(protocol, Connection):
        protocol.served()
        if protocol.health_only:
            if not request.path.startswith("/health/"):
                return _text(404, "only /health/* is served on this listener")
            return await handler(request)
    guard = request.app[GUARD]
    return await _authorized(request, handler, guard, guard.web)


async def add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the configured headers on every answer of the main listener,
    streamed ones (``/metrics``) and errors included."""
    protocol = request.protocol
    if isinstance(protocol, Connection) and protocol.health_only:
        return
    app = getattr(request, "app", None)
    if app is not None and GUARD in app:
        response.headers.update(app[GUARD].web.headers)


async def _authorized(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    guard: Guard,
    config: WebConfig,
) -> web.StreamResponse:
    authenticated = False
    if config.auth is not None and not _pings(request):
        user = await config.auth.check(request.headers.get("Authorization"))
        if user is None:
            return _text(
                401,
                "401 Unauthorized",
                {"WWW-Authenticate": 'Basic realm="probed", charset="UTF-8"'},
            )
        authenticated = True
    elif request.transport is not None and request.transport.get_extra_info("peercert"):
        authenticated = True  # verified against client_ca_file, or there would be no peercert
    if _reloads(request):
        if guard.reload_endpoint == "off":
            return _text(
                403, "reloading over HTTP is turned off (reload_endpoint: off); send SIGHUP"
            )
        if guard.reload_endpoint == "protected" and not (
            authenticated or _loopback(request.remote)
        ):
            return _text(
                403,
                "POST /-/reload is accepted from loopback clients or authenticated ones "
                "(basic_auth_users or a verified client certificate in --web-config); "
                "see reload_endpoint",
            )
    return await handler(request)
