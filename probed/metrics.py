"""The daemon's own metrics and the assembly of the ``/metrics`` body.

Check series come from :mod:`probed.exposition` (kept per check by a renderer). Daemon series
(build info, reload status, scheduler lag, process metrics) and collectors registered by plugins
live in a prometheus_client registry of their own, created per daemon (never the global one).
:class:`Exporter` is the ``/metrics`` reader: it renders from the read-only state view and
looks after its own garbage (a big scrape's freed buffers), without calling back into the
daemon.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import platform
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client import exposition as text_exposition
from prometheus_client import metrics as client_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from probed import __version__
from probed._gc import trim
from probed.exposition import ExpositionOptions, Renderer, TypeMetrics, new_assembly
from probed.shards import Shard
from probed.state import StateStore

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "DaemonMetrics",
    "Exporter",
    "Scrape",
    "render",
    "render_async",
    "send",
]

CONTENT_TYPE_TEXT: Final = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS: Final = om_exposition.CONTENT_TYPE_LATEST

RENDER_BATCH: Final = 500
RELEASE_BATCH: Final = 5000
"""Checks looked at between two turns of the event loop when releasing their kept lines."""
LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StoreCollector(Collector):
    """Gauges derived from the state store at scrape time."""

    def __init__(self, store: StateStore, started: Callable[[], bool]) -> None:
        self._store = store
        self._started = started

    def collect(self) -> Iterator[Metric]:
        by_type: dict[str, int] = {}
        for state in self._store:
            by_type[state.spec.type] = by_type.get(state.spec.type, 0) + 1
        configured = GaugeMetricFamily(
            "probed_checks_configured", "Configured checks by type.", labels=["type"]
        )
        for type_name, count in sorted(by_type.items()):
            configured.add_metric([type_name], count)
        yield configured
        yield GaugeMetricFamily(
            "probed_health_ready",
            "1 while every readiness check is up (/health/ready answers 200).",
            value=1 if self._store.ready() else 0,
        )
        yield GaugeMetricFamily(
            "probed_health_started",
            "1 once every readiness check finished its first run (/health/startup answers 200).",
            value=1 if self._started() else 0,
        )


class LagHistogram(Collector):
    """``probed_scheduler_lag_seconds``: the same family a prometheus_client ``Histogram``
    exposes (buckets, count, sum, created), observed for every run.

    Only the event loop observes it, so one list of counts and a sum do, without the client's
    per-bucket locks (a run's observation costs a tenth of ``Histogram.observe``).
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = (*buckets, math.inf)
        self._les = tuple(str(floatToGoString(b)) for b in self._bounds)  # type: ignore[no-untyped-call]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._created = time.time()

    def observe(self, amount: float) -> None:
        """Count one value (in the first bucket whose bound is at least ``amount``)."""
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def collect(self) -> Iterator[Metric]:
        family = Metric(self._name, self._documentation, "histogram")
        total = 0
        for le, count in zip(self._les, self._counts, strict=True):
            total += count
            family.add_sample(f"{self._name}_bucket", {"le": le}, float(total))
        family.add_sample(f"{self._name}_count", {}, float(total))
        family.add_sample(f"{self._name}_sum", {}, self._sum)
        if getattr(client_metrics, "_use_created", True):
            family.add_sample(f"{self._name}_created", {}, self._created)
        yield family


class DaemonMetrics:
    """The daemon's own instruments, on a registry of their own."""

    def __init__(self, store: StateStore, started: Callable[[], bool]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        reg = self.registry
        build = Gauge(
            "probed_build_info",
            "Build information; always 1.",
            ["version", "python"],
            registry=reg,
        )
        build.labels(__version__, platform.python_version()).set(1)
        self.reload_successful = Gauge(
            "probed_config_last_reload_successful",
            "1 if the last configuration (re)load had no errors.",
            registry=reg,
        )
        self.reload_timestamp = Gauge(
            "probed_config_last_reload_success_timestamp_seconds",
            "Unix time of the last configuration (re)load without errors.",
            registry=reg,
        )
        self.config_errors = Gauge(
            "probed_config_errors",
            "Number of configuration problems found by the last (re)load.",
            registry=reg,
        )
        self.reloads = Counter(
            "probed_config_reloads_total",
            "Configuration reloads by result.",
            ["result"],
            registry=reg,
        )
        self.lag = LagHistogram(
            "probed_scheduler_lag_seconds",
            "Delay between when a run was due and when it started.",
            LAG_BUCKETS,
        )
        reg.register(self.lag)
        self.running = Gauge(
            "probed_scheduler_running_checks", "Checks running right now.", registry=reg
        )
        self.queued = Gauge(
            "probed_scheduler_queued_checks",
            "Due runs waiting for a free slot under max_concurrency.",
            registry=reg,
        )
        self.render_seconds = Gauge(
            "probed_metrics_render_seconds",
            "CPU-side time the previous /metrics response took to render (not sent yet).",
            registry=reg,
        )
        self.scheduler_errors = Counter(
            "probed_scheduler_errors_total",
            "Errors the scheduler caught in one check's scheduling, run or result handling "
            "(the check's first one per stage is logged); other checks keep their schedule.",
            ["stage"],
            registry=reg,
        )
        for stage in ("schedule", "run", "result"):
            self.scheduler_errors.labels(stage)
        self.plugin_errors = Counter(
            "probed_plugin_errors_total",
            "Exceptions and timeouts raised by plugin hooks.",
            ["plugin", "hook"],
            registry=reg,
        )
        ProcessCollector(registry=reg)
        reg.register(_StoreCollector(store, started))

    def add_collectors(self, collectors: Iterable[Collector]) -> None:
        """Register collectors provided by plugins."""
        for collector in collectors:
            self.registry.register(collector)


def _daemon_text(daemon: DaemonMetrics, openmetrics: bool) -> bytes:
    if openmetrics:
        return om_exposition.generate_latest(daemon.registry)  # type: ignore[no-any-return,no-untyped-call]
    return text_exposition.generate_latest(daemon.registry)


_Key = tuple[bool, bool, Shard | None]  # OpenMetrics, gzip, shard: one flight each

TRIM_DELAY: Final = 2.0
"""Seconds after a big scrape before the C heap is trimmed (the response is sent by then)."""

GZIP_FROM: Final = 4096
"""Bodies of at least this many bytes are sent gzipped to a scraper that accepts gzip."""
GZIP_INLINE: Final = 256 * 1024
"""Bodies up to this size are compressed on the loop; larger ones in a thread."""
SEND_CHUNK: Final = 64 * 1024
"""A response body is written in slices of this size, each waiting for the socket to drain:
a slow scraper then holds about one slice of buffered bytes, not a copy of the body."""


@dataclass(frozen=True, slots=True)
class Scrape:
    """One rendered ``/metrics`` body, shared by every scraper that asked while it rendered.

    Kept in the pieces it was assembled from (a family's header, a slice's lines of one
    family): at 50,000 checks the body is over 20 MB, and joining it would hold it twice.
    """

    chunks: tuple[bytes, ...]
    gzipped: bool
    content_type: str

    @property
    def size(self) -> int:
        """Length of the body in bytes."""
        return sum(map(len, self.chunks))

    @property
    def body(self) -> bytes:
        """The body in one piece (a copy: for tests and small bodies)."""
        return b"".join(self.chunks)


def _gzip(chunks: Iterable[bytes]) -> bytes:
    """What ``gzip.compress(b"".join(chunks), 6, mtime=0)`` returns, without the join."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip header, time 0
    out = [compressor.compress(chunk) for chunk in chunks]
    out.append(compressor.flush())
    return b"".join(out)


async def send(request: web.Request, scrape: Scrape) -> web.StreamResponse:
    """Answer ``request`` with ``scrape``'s body, in drained slices (the body is not copied)."""
    response = web.StreamResponse(
        headers={"Content-Type": scrape.content_type, "Vary": "Accept-Encoding"}
    )
    if scrape.gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.content_length = scrape.size
    await response.prepare(request)
    if request.method != "HEAD":
        for chunk in scrape.chunks:
            view = memoryview(chunk)
            for start in range(0, len(chunk), SEND_CHUNK):
                await response.write(view[start : start + SEND_CHUNK])
    await response.write_eof()
    return response


class Exporter:
    """Renders the ``/metrics`` body from the state view; one per daemon.

    :param trim_from: with this many checks or more, give freed memory back to the system
        (:func:`probed._gc.trim`) shortly after each scrape; ``None`` never does (a test or an
        embedding application, whose process is not the daemon's own).
    :param options: which per-check series are exported (``metrics:`` in ``probed.yaml``).
    """

    def __init__(
        self,
        store: StateStore,
        types: TypeMetrics,
        instruments: DaemonMetrics,
        *,
        trim_from: int | None = None,
        options: ExpositionOptions | None = None,
    ) -> None:
        self.store = store
        self.renderer = Renderer(types, options)
        self.instruments = instruments
        self.last_scrape: float | None = None  # monotonic time of the last render
        self._last_by_shard: dict[Shard, float] = {}  # the same, per shard
        self._trim_from = trim_from
        self._trim_pending = False
        self._flights: dict[_Key, asyncio.Future[Scrape]] = {}

    async def scrape(
        self, openmetrics: bool, accepts_gzip: bool = False, shard: Shard | None = None
    ) -> Scrape:
        """The body for one scrape; concurrent scrapes share one render (single flight).

        A scrape that asks while a render of the same format (encoding and shard) is in
        flight awaits that render and gets the same bytes: 512 scrapers at once cost one
        render and one body, not 512. A scraper that goes away does not cancel the render for
        the others. ``shard`` (see :mod:`probed.shards`) renders one part of the body; one
        shard of one is the full scrape.
        """
        if shard is not None and shard.count == 1:
            shard = None
        key = (openmetrics, accepts_gzip, shard)
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._produce(openmetrics, accepts_gzip, shard))
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: _Key, flight: asyncio.Future[Scrape]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: every scraper may have gone away meanwhile

    async def _produce(self, openmetrics: bool, accepts_gzip: bool, shard: Shard | None) -> Scrape:
        content_type = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
        if not accepts_gzip:
            chunks = await self._render_chunks(openmetrics, RENDER_BATCH, shard)
            return Scrape(tuple(chunks), False, content_type)
        plain = await self.scrape(openmetrics, shard=shard)  # shared with plain scrapers
        size = plain.size
        if size < GZIP_FROM:
            return plain
        if size <= GZIP_INLINE:
            return Scrape((_gzip(plain.chunks),), True, content_type)
        body = await asyncio.to_thread(_gzip, plain.chunks)
        return Scrape((body,), True, content_type)

    def render(self, openmetrics: bool) -> bytes:
        """The whole ``/metrics`` body in the requested format (all at once)."""
        tail = _daemon_text(self.instruments, openmetrics)
        return self.renderer.body(list(self.store), openmetrics, tail)

    async def render_async(
        self, openmetrics: bool, batch: int = RENDER_BATCH, shard: Shard | None = None
    ) -> bytes:
        """Like :meth:`render`, but yields to the event loop every ``batch`` re-rendered checks.

        A scrape of 10,000 changed checks costs a few hundred milliseconds of CPU; in slices,
        runs that fall due meanwhile start on time instead of waiting for the whole scrape.
        With ``shard``, only that shard's checks, and the daemon series on shard 0 only.
        """
        return b"".join(await self._render_chunks(openmetrics, batch, shard))

    async def _render_chunks(
        self, openmetrics: bool, batch: int, shard: Shard | None
    ) -> list[bytes]:
        now = time.monotonic()
        started = time.perf_counter()
        last = self.last_scrape if shard is None else self._last_by_shard.get(shard)
        gap = None if last is None else now - last
        self.last_scrape = now
        if shard is not None:
            self._last_by_shard[shard] = now
        renderer = self.renderer
        states = everyone = list(self.store)
        if shard is not None:
            states = [s for s in everyone if shard.owns(s.spec.name)]
        # Each slice is re-rendered where it changed and joined family by family at once;
        # the last step joins a few byte strings per family (the body of 50,000 checks is
        # over 20 MB, so copies count: lines are kept as UTF-8, the body is never encoded).
        assembly = new_assembly(renderer.types, renderer.options)
        for start in range(0, len(states), batch):
            assembly.add(renderer.refresh(states[start : start + batch]))
            if start + batch < len(states):
                await asyncio.sleep(0)
        renderer.forget_others(everyone)  # with a shard: once every shard was scraped
        if shard is None or shard.daemon_series:
            tail = _daemon_text(self.instruments, openmetrics)
        else:  # the daemon series are on shard 0; OpenMetrics still ends every body with EOF
            tail = b"# EOF\n" if openmetrics else b""
        chunks = assembly.chunks(openmetrics, tail)
        del assembly
        if gap is not None:  # lines that change between every two scrapes are not worth keeping
            for start in range(0, len(states), RELEASE_BATCH):
                renderer.release(states[start : start + RELEASE_BATCH], gap)
                if start + RELEASE_BATCH < len(states):
                    await asyncio.sleep(0)
        self.instruments.render_seconds.set(time.perf_counter() - started)
        if self._trim_from is not None and len(states) >= self._trim_from:
            self._trim_soon()
        return chunks

    def _trim_soon(self) -> None:
        if self._trim_pending:
            return
        self._trim_pending = True

        def run() -> None:
            self._trim_pending = False
            trim()

        asyncio.get_running_loop().call_later(TRIM_DELAY, run)


def render(
    store: StateStore, types: TypeMetrics, daemon: DaemonMetrics, openmetrics: bool
) -> bytes:
    """The whole ``/metrics`` body, rendered once (nothing kept between calls)."""
    return Exporter(store, types, daemon).render(openmetrics)


async def render_async(
    store: StateStore,
    types: TypeMetrics,
    daemon: DaemonMetrics,
    openmetrics: bool,
    batch: int = RENDER_BATCH,
) -> bytes:
    """Like :func:`render`, in slices of ``batch`` checks (see :meth:`Exporter.render_async`)."""
    return await Exporter(store, types, daemon).render_async(openmetrics, batch)
