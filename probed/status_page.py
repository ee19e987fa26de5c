"""The built-in status page: ``GET /`` for browsers, ``/checks/NAME``, ``/api/v1/status`` (its
live updates) and ``/status-assets/*`` (its CSS and script, package data: no CDN, no build).

The page is a reader like ``/metrics``: it reads the state view and the running redactor and
never touches a check. Checks with ``public: false`` are left out of every part of it. What a
check shows is rendered once per change of the check (see :class:`PageCache`), so the list of
10,000 checks renders in a few tens of milliseconds; JavaScript filters the rows in the browser
and polls the JSON endpoint, and without JavaScript the filter is a plain GET form.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import escape
from importlib import resources
from typing import Final

from aiohttp import web

from probed._status_check import check_page
from probed._status_render import (
    STATUSES,
    TABLE_HEAD,
    Shown,
    ago,
    filter_form,
    page,
    row,
    summary,
)
from probed._status_settings import StatusPage
from probed.state import CheckState, StateStore

__all__ = ["STATUS_PAGE", "PageCache", "PageViews", "index", "status_routes", "wants_page"]

STATUS_PAGE: Final = web.AppKey("status_page", StatusPage)
"""The page's settings (no key: the page is off)."""

MANY: Final = 500
"""From this many checks on, the browser lays out only the groups on screen."""
MAX_QUERY: Final = 200
"""Characters of the filter text read from ``?q=``."""
OTHER: Final = "other"
_ASSETS: Final = {
    "status.css": "text/css",
    "status.js": "text/javascript",
    "icon.svg": "image/svg+xml",
}
_NONCE: Final = os.urandom(4).hex()


@dataclass(frozen=True, slots=True)
class PageViews:
    """What the page reads: every check's state, the running redactor and its settings."""

    states: StateStore
    redact: Callable[[str], str]
    settings: StatusPage


_Entry = tuple[int, object, object, Shown, str, str, str]
"""A check's kept rendering: version, spec and redactor it came from, what it shows, the text
the filter searches (HTML-escaped, lower case), and its row split around the "since" text."""


class PageCache:
    """Each public check's :class:`Shown`, row and JSON, kept until the check changes; and the
    JSON body of ``/api/v1/status``, kept while no check changed. One per application.

    The request handlers use the ``async`` methods, which yield to the event loop after every
    :data:`BATCH` checks they render, so a cold page of 10,000 checks never holds up
    ``/health/live`` or the scheduler for long.
    """

    __slots__ = ("_json", "_kept", "_pieces", "_serial")

    def __init__(self) -> None:
        self._kept: dict[CheckState, _Entry] = {}
        self._pieces: dict[CheckState, tuple[_Entry, str]] = {}
        self._json: tuple[object, int, object, str, bytes] | None = None
        self._serial = 0

    def _walk(self, views: PageViews, out: list[_Entry]) -> Iterator[None]:
        """Fill ``out`` with every public check's entry; pause after each BATCH rendered."""
        kept, redact, group_by = self._kept, views.redact, views.settings.group_by
        rendered = 0
        for state in views.states:  # a reload swaps the mapping, never changes it in place
            spec = state.spec
            if not spec.public:
                continue
            entry = kept.get(state)
            if (
                entry is None
                or entry[0] != state.version
                or entry[1] is not spec
                or entry[2] is not redact
            ):
                version = state.version  # read first: a change meanwhile re-renders next time
                entry = (version, spec, redact, *row(state, redact, group_by))
                kept[state] = entry
                rendered += 1
                if rendered % BATCH == 0:
                    yield
            out.append(entry)
        if len(kept) > len(out) * 2 + 64:  # checks removed by reloads or made private
            live = {id(e) for e in out}
            self._kept = {k: v for k, v in kept.items() if id(v) in live}
            self._pieces = {k: v for k, v in self._pieces.items() if id(v[0]) in live}

    def entries(self, views: PageViews) -> list[_Entry]:
        """The kept rendering of every public check, refreshed where a check changed."""
        out: list[_Entry] = []
        for _ in self._walk(views, out):
            pass
        return out

    async def fresh(self, views: PageViews) -> list[_Entry]:
        """:meth:`entries`, yielding to the event loop while it renders."""
        out: list[_Entry] = []
        for _ in self._walk(views, out):
            await asyncio.sleep(0)
        return out

    def _cached_json(self, views: PageViews) -> tuple[str, bytes] | None:
        mapping, total = views.states.generation()
        cached = self._json
        if (
            cached is not None
            and cached[0] is mapping
            and cached[1] == total
            and cached[2] is views.redact
        ):
            return cached[3], cached[4]
        return None

    def status_json(self, views: PageViews) -> tuple[str, bytes]:
        """``(etag, body)`` of ``/api/v1/status``."""
        generation = views.states.generation()  # before rendering: a change meanwhile rebuilds
        return self._cached_json(views) or self._build_json(views, generation, self.entries(views))

    async def status_body(self, views: PageViews) -> tuple[str, bytes]:
        """:meth:`status_json`, yielding to the event loop while it renders."""
        cached = self._cached_json(views)
        if cached is not None:
            return cached
        generation = views.states.generation()
        return self._build_json(views, generation, await self.fresh(views))

    def _build_json(
        self, views: PageViews, generation: tuple[object, int], entries: list[_Entry]
    ) -> tuple[str, bytes]:
        pieces, kept = self._pieces, self._kept
        parts: list[str] = []
        for entry in entries:
            s = entry[3]
            state = views.states.get(s.name)
            piece = pieces.get(state) if state is not None else None
            if piece is None or piece[0] is not entry:
                text = json.dumps(
                    {
                        "name": s.name,
                        "status": s.status,
                        "message": s.message,
                        "duration_seconds": None if s.duration is None else round(s.duration, 6),
                        "since": s.since or None,
                        "uptime": None if s.uptime is None else round(s.uptime, 4),
                        "group": s.group or OTHER,
                    },
                    separators=(",", ":"),
                )
                if state is not None and kept.get(state) is entry:
                    pieces[state] = (entry, text)
            else:
                text = piece[1]
            parts.append(text)
        settings = views.settings
        head = json.dumps(
            {"title": settings.title, "refresh_seconds": settings.refresh},
            separators=(",", ":"),
        )
        body = f'{head[:-1]},"checks":[{",".join(parts)}]}}'.encode()
        self._serial += 1
        etag = f'"{_NONCE}-{self._serial}"'
        self._json = (*generation, views.redact, etag, body)
        return etag, body


BATCH: Final = 500
"""Checks rendered between two yields to the event loop."""


def wants_page(request: web.Request) -> bool:
    """True when the client asks for HTML (a browser); curl and others get the text index."""
    return "text/html" in request.headers.get("Accept", "")


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


COMPRESS_FROM: Final = 16 * 1024
"""Bodies from this size on are compressed when the client accepts it (10,000 checks: 3.4 MiB
of HTML become about 200 KiB); aiohttp compresses them in a thread."""


def _compressed(response: web.Response) -> web.Response:
    body = response.body
    if isinstance(body, bytes) and len(body) >= COMPRESS_FROM:
        response.enable_compression()  # gzip or deflate, as the request's Accept-Encoding says
    return response


def render_list(
    views: PageViews,
    cache: PageCache,
    query: str = "",
    status: str = "",
    entries: list[_Entry] | None = None,
) -> str:
    """The whole page listing every public check (those matching ``query``/``status``),
    grouped by the ``group_by`` label's value; ``entries``: from :meth:`PageCache.fresh`."""
    now = time.time()
    if entries is None:
        entries = cache.entries(views)
    counts = dict.fromkeys(STATUSES, 0)
    for e in entries:
        counts[e[3].status] += 1
    needle = escape(query.lower())
    groups: dict[str, list[str]] = {}
    for _, _, _, s, text, head, tail in entries:
        if status and s.status != status:
            continue
        if needle and needle not in text:
            continue
        groups.setdefault(s.group or OTHER, []).append(head + ago(s.since, now) + tail)
    settings = views.settings
    title = settings.title
    order = sorted(groups, key=lambda g: (g == OTHER, g))
    sections = [
        f'<section class="group" data-group="{escape(g)}" aria-labelledby="g{i}">'
        f'<h2 id="g{i}">{escape(settings.group_by)}: {escape(g)} '
        f'<span class="n">({len(groups[g])})</span></h2>'
        f'<div class="scroll">{TABLE_HEAD}{"".join(groups[g])}</tbody></table></div></section>'
        for i, g in enumerate(order)
    ]
    hide = " hidden" if sections or not entries else ""
    none = f'<p id="none" class="none"{hide}>No check matches the filter.</p>'
    if not entries:
        none += '<p class="none">No public checks are configured.</p>'
    body = (
        f"<header><h1>{escape(title)}</h1>",
        summary(counts, len(entries), now),
        "</header>",
        '<main id="main">',
        filter_form(query, status),
        none,
        '<div id="groups" class="many">' if len(entries) > MANY else '<div id="groups">',
        *sections,
        "</div></main>",
        '<footer><a href="api/v1/status">JSON</a> · <a href="metrics">metrics</a></footer>',
    )
    return page(title, body, refresh=settings.refresh)


def status_routes(
    views: Callable[[web.Request], PageViews | None], cache: Callable[[web.Request], PageCache]
) -> list[web.RouteDef]:
    """The page's routes besides ``/`` (see :func:`index`); ``views`` gives ``None`` while the
    page is off, and each route then answers 404."""

    async def one_check(request: web.Request) -> web.Response:
        v = views(request)
        if v is None:
            raise web.HTTPNotFound()
        name = request.match_info["name"]
        state = v.states.get(name)
        if state is None or not state.spec.public:
            body = page(
                v.settings.title,
                (
                    '<main id="main"><h1>No such check</h1><p>No public check has this name. '
                    '<a href="../">Back to the list</a>.</p></main>',
                ),
                root="../",
            )
            return _html(body, status=404)
        return _html(check_page(state, v.redact, v.settings.title, v.settings.refresh))

    async def status(request: web.Request) -> web.Response:
        v = views(request)
        if v is None:
            raise web.HTTPNotFound()
        etag, body = await cache(request).status_body(v)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return _compressed(
            web.Response(body=body, content_type="application/json", headers=headers)
        )

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if views(request) is None or name not in _ASSETS:
            raise web.HTTPNotFound()
        data = resources.files("probed").joinpath("status_assets", name).read_bytes()
        return web.Response(
            body=data,
            content_type=_ASSETS[name],
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    return [
        web.get("/checks/{name}", one_check),
        web.get("/api/v1/status", status),
        web.get("/status-assets/{file}", asset),
    ]


async def index(request: web.Request, views: PageViews, cache: PageCache) -> web.Response:
    """``GET /`` for a browser: the list, filtered by ``?q=`` and ``?status=``."""
    query = request.query.get("q", "")[:MAX_QUERY]
    status = request.query.get("status", "")
    if status not in STATUSES:
        status = ""
    entries = await cache.fresh(views)
    return _compressed(_html(render_list(views, cache, query, status, entries)))
