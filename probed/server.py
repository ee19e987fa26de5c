"""The aiohttp application: ``/metrics``, ``/health/*``, ``/api/v1/checks``, ``/-/reload``,
``/ping/<check>`` (heartbeat checks' jobs report in; :mod:`probed.heartbeats`).

Handlers only read; none runs a check or reaches into the daemon. Each finds the narrow view it
needs under a typed :class:`aiohttp.web.AppKey`, put there by whoever runs the process (the
daemon's ``install``): the read-only state view, the scheduler's heartbeat, the startup latch,
the running configuration's errors and redactor, the reload action and the metrics exporter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, Protocol

from aiohttp import web

from probed import __version__
from probed.api import CheckList, check_view
from probed.errors import ConfigError
from probed.guard import GUARD, Guard, add_headers, guard_middleware
from probed.health import (
    HEALTH_JSON,
    Heartbeat,
    StartupLatch,
    Verdict,
    liveness_verdict,
    readiness_verdict,
    render_json,
    render_text,
    startup_verdict,
)
from probed.heartbeats import handle_ping
from probed.metrics import Exporter, send
from probed.probe_endpoint import PROBES, ProbeEndpoint, probe
from probed.shards import ShardError, parse_shard
from probed.state import StateStore
from probed.status_page import STATUS_PAGE, PageCache, PageViews, status_routes, wants_page
from probed.status_page import index as status_index

__all__ = [
    "CONFIG",
    "EXPORTER",
    "HEARTBEAT",
    "RELOAD",
    "STARTUP",
    "STATES",
    "ConfigView",
    "Installer",
    "Reload",
    "make_app",
]


class ConfigView(Protocol):
    """The running configuration as the API shows it."""

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Problems found by the last (re)load."""
        ...

    @property
    def redact(self) -> Callable[[str], str]:
        """Masks the running configuration's secrets in a text."""
        ...


class Reload(ConfigView, Protocol):
    """The one action an endpoint may take: reload the configuration."""

    async def reload(self) -> tuple[bool, tuple[ConfigError, ...]]:
        """Re-read settings and checks; success and the errors found."""
        ...


class Installer(Protocol):
    """Whoever runs the process: fills the keys below and adds its lifecycle to ``cleanup_ctx``."""

    def install(self, app: web.Application) -> None:
        """Set every key, add plugin routes and the startup/cleanup contexts."""
        ...


STATES: Final = web.AppKey("states", StateStore)
"""Every check's state (read-only)."""
HEARTBEAT: Final[web.AppKey[Heartbeat]] = web.AppKey("heartbeat")
"""The scheduler's heartbeat, for liveness."""
STARTUP: Final = web.AppKey("startup", StartupLatch)
"""Whether startup has finished (latched)."""
CONFIG: Final[web.AppKey[ConfigView]] = web.AppKey("config")
"""The running configuration's errors and redactor."""
RELOAD: Final[web.AppKey[Reload]] = web.AppKey("reload")
"""Reloads the configuration (``POST /-/reload``)."""
EXPORTER: Final = web.AppKey("exporter", Exporter)
"""Renders ``/metrics``."""
CHECK_LIST: Final = web.AppKey("check_list", CheckList)
"""Builds the ``/api/v1/checks`` body (set by :func:`make_app`)."""
PAGE_CACHE: Final = web.AppKey("page_cache", PageCache)
"""The status page's kept rows (set by :func:`make_app`; the page's settings: STATUS_PAGE)."""


def _json(data: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        body=json.dumps(data, indent=None).encode(),
        status=status,
        content_type=content_type,
    )


def _wants_text(request: web.Request) -> bool:
    if "verbose" in request.query:
        return True
    accept = request.headers.get("Accept", "")
    return "text/plain" in accept and "json" not in accept


def _health(request: web.Request, verdict: Verdict, startup: bool = False) -> web.Response:
    status = 200 if verdict.passed else 503
    headers = {"Cache-Control": "no-store"}
    if _wants_text(request):
        return web.Response(
            body=render_text(verdict, startup),
            status=status,
            content_type="text/plain",
            headers=headers,
        )
    return web.Response(
        body=render_json(verdict, startup),
        status=status,
        content_type=HEALTH_JSON,
        headers=headers,
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: Prometheus text, or OpenMetrics when the scraper asks for it; gzipped
    when accepted. Concurrent scrapes share one render (see :meth:`Exporter.scrape`);
    ``?shard=I&shards=N`` answers one part of it (:mod:`probed.shards`), a bad pair 400."""
    try:
        shard = parse_shard(request.query)
    except ShardError as error:
        return web.Response(status=400, text=f"{error}\n")
    openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
    accepts_gzip = "gzip" in request.headers.get("Accept-Encoding", "")
    scrape = await request.app[EXPORTER].scrape(openmetrics, accepts_gzip, shard)
    return await send(request, scrape)


async def live(request: web.Request) -> web.Response:
    """``GET /health/live``: the loop answers and the scheduler is not stuck."""
    return _health(request, liveness_verdict(request.app[HEARTBEAT]))


async def ready(request: web.Request) -> web.Response:
    """``GET /health/ready``: 200 while every readiness check is up, else 503."""
    states = request.app[STATES]
    exclude = request.query.getall("exclude", [])
    return _health(request, readiness_verdict(states, exclude))


async def startup(request: web.Request) -> web.Response:
    """``GET /health/startup``: 503 until every readiness check has run once, then 200."""
    states = request.app[STATES]
    verdict = startup_verdict(states, request.app[STARTUP].passed())
    return _health(request, verdict, startup=True)


async def list_checks(request: web.Request) -> web.Response:
    """``GET /api/v1/checks``: every check's state and last result (built in slices, shared
    by concurrent requests: see :class:`probed.api.CheckList`)."""
    config = request.app[CONFIG]
    errors = [str(e) for e in config.errors]
    body = await request.app[CHECK_LIST].body(request.app[STATES], config.redact, errors)
    return web.Response(body=body, content_type="application/json")


async def get_check(request: web.Request) -> web.Response:
    """``GET /api/v1/checks/NAME``: one check with options (redacted) and history."""
    name = request.match_info["name"]
    state = request.app[STATES].get(name)
    if state is None:
        return _json({"error": f"no check named {name!r}"}, status=404)
    return _json(check_view(state, request.app[CONFIG].redact, detail=True))


async def reload(request: web.Request) -> web.Response:
    """``POST /-/reload``: 200 when the new configuration is clean, 400 with its errors."""
    config = request.app[RELOAD]
    ok, errors = await config.reload()
    web_errors = request.app[GUARD].errors  # the web configuration, re-read by the reload
    ok, errors = ok and not web_errors, (*web_errors, *errors)
    body = {
        "status": "ok" if ok else "error",
        "checks": len(request.app[STATES]),
        "errors": [config.redact(str(e)) for e in errors],
    }
    return _json(body, status=200 if ok else 400)


async def ping(request: web.Request) -> web.Response:
    """``GET|POST /ping/<check>[/start|/fail|/<exit-code>]``: a ``heartbeat`` check's job
    reports in (see :mod:`probed.heartbeats`)."""
    return await handle_ping(request, request.app[STATES])


def _page_views(request: web.Request) -> PageViews | None:
    settings = request.app.get(STATUS_PAGE)
    if settings is None or not settings.enabled:
        return None
    return PageViews(request.app[STATES], request.app[CONFIG].redact, settings)


async def index(request: web.Request) -> web.Response:
    """``GET /``: the status page for browsers (:mod:`probed.status_page`), else a short
    pointer to the endpoints."""
    views = _page_views(request)
    if views is not None and wants_page(request):
        return await status_index(request, views, request.app[PAGE_CACHE])
    text = (
        f"probed {__version__}\n\n/metrics\n/health/live\n/health/ready\n/health/startup\n"
        "/api/v1/checks\nPOST /-/reload\n/ping/<check>\n"
    )
    if views is not None:
        text += "\nstatus page: open / in a browser (/checks/<name>, /api/v1/status)\n"
    return web.Response(text=text)


ROUTES: Final = (
    web.get("/", index),
    web.get("/metrics", metrics),
    web.get("/probe", probe),
    web.get("/health/live", live),
    web.get("/health/ready", ready),
    web.get("/health/startup", startup),
    web.get("/api/v1/checks", list_checks),
    web.get("/api/v1/checks/{name}", get_check),
    web.post("/-/reload", reload),
    web.get("/ping/{check}", ping),
    web.post("/ping/{check}", ping),
    web.get("/ping/{check}/{action}", ping),
    web.post("/ping/{check}/{action}", ping),
    *status_routes(_page_views, lambda request: request.app[PAGE_CACHE]),
)
"""probed's own routes; plugins' routes come after them."""


def make_app(installer: Installer) -> web.Application:
    """The aiohttp application: probed's routes, then what ``installer`` adds (views, plugin
    routes, lifecycle)."""
    app = web.Application(middlewares=[guard_middleware])
    app[GUARD] = Guard()
    app.on_response_prepare.append(add_headers)
    app[CHECK_LIST] = CheckList()
    app[PAGE_CACHE] = PageCache()
    app[PROBES] = ProbeEndpoint(config=lambda: app.get(CONFIG))
    app.add_routes(ROUTES)
    installer.install(app)
    return app
