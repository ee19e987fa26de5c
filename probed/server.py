"""The aiohttp application: ``/metrics``, ``/health/*``, ``/api/v1/checks``, ``/-/reload``.

Handlers only read state; none runs a check. The daemon is stored under a typed
:class:`aiohttp.web.AppKey`.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from probed import __version__
from probed.api import check_view
from probed.daemon import Daemon
from probed.health import (
    HEALTH_JSON,
    STUCK_AFTER,
    Verdict,
    readiness_verdict,
    render_json,
    render_text,
    startup_verdict,
)
from probed.metrics import CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, render_async
from probed.plugins import call_each

__all__ = ["DAEMON", "make_app"]

DAEMON: Final = web.AppKey("daemon", Daemon)


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


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text, or OpenMetrics when the scraper asks for it."""
    daemon = request.app[DAEMON]
    openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
    body = await render_async(daemon.store, daemon.type_metrics, daemon.metrics, openmetrics)
    daemon.after_scrape()
    response = web.Response(body=body)
    response.headers["Content-Type"] = (
        CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
    )
    if "gzip" in request.headers.get("Accept-Encoding", "") and len(body) > 4096:
        response.enable_compression()
    return response


async def live(request: web.Request) -> web.Response:
    """``GET /health/live``: the loop answers and the scheduler is not stuck."""
    daemon = request.app[DAEMON]
    overdue = daemon.scheduler.overdue()
    passed = daemon.scheduler.alive and overdue < STUCK_AFTER
    note = "" if passed else f"scheduler stuck: the earliest run is {overdue:.0f}s overdue"
    verdict = Verdict("livez", passed, False, (), note)
    return _health(request, verdict)


async def ready(request: web.Request) -> web.Response:
    """``GET /health/ready``: 200 while every readiness check is up, else 503."""
    daemon = request.app[DAEMON]
    exclude = request.query.getall("exclude", [])
    return _health(request, readiness_verdict(daemon.store, exclude))


async def startup(request: web.Request) -> web.Response:
    """``GET /health/startup``: 503 until every readiness check has run once, then 200."""
    daemon = request.app[DAEMON]
    return _health(request, startup_verdict(daemon.store, daemon.started()), startup=True)


async def list_checks(request: web.Request) -> web.Response:
    """``GET /api/v1/checks``: every check's state and last result."""
    daemon = request.app[DAEMON]
    checks = [check_view(s, daemon.redact) for s in daemon.store]
    errors = [str(e) for e in daemon.errors]
    return _json({"checks": checks, "config_errors": [daemon.redact(e) for e in errors]})


async def get_check(request: web.Request) -> web.Response:
    """``GET /api/v1/checks/NAME``: one check with options (redacted) and history."""
    daemon = request.app[DAEMON]
    name = request.match_info["name"]
    state = daemon.store.get(name)
    if state is None:
        return _json({"error": f"no check named {name!r}"}, status=404)
    return _json(check_view(state, daemon.redact, detail=True))


async def reload(request: web.Request) -> web.Response:
    """``POST /-/reload``: 200 when the new configuration is clean, 400 with its errors."""
    daemon = request.app[DAEMON]
    ok, errors = await daemon.reload()
    body = {
        "status": "ok" if ok else "error",
        "checks": len(daemon.jobs),
        "errors": [daemon.redact(str(e)) for e in errors],
    }
    return _json(body, status=200 if ok else 400)


async def index(request: web.Request) -> web.Response:
    """``GET /``: a short pointer to the endpoints."""
    text = (
        f"probed {__version__}\n\n/metrics\n/health/live\n/health/ready\n/health/startup\n"
        "/api/v1/checks\nPOST /-/reload\n"
    )
    return web.Response(text=text)


def make_app(daemon: Daemon) -> web.Application:
    """Build the aiohttp application for ``daemon``, including routes from plugins."""
    app = web.Application()
    app[DAEMON] = daemon
    app.add_routes(
        [
            web.get("/", index),
            web.get("/metrics", metrics),
            web.get("/health/live", live),
            web.get("/health/ready", ready),
            web.get("/health/startup", startup),
            web.get("/api/v1/checks", list_checks),
            web.get("/api/v1/checks/{name}", get_check),
            web.post("/-/reload", reload),
        ]
    )
    for _plugin, routes in call_each(daemon.pm, "probed_register_routes", states=daemon.store):
        app.add_routes(list(routes or ()))
    for _plugin, collectors in call_each(
        daemon.pm, "probed_register_collectors", states=daemon.store
    ):
        daemon.metrics.add_collectors(collectors or ())
    return app
