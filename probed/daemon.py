"""The daemon: wires config, scheduler, state, notifications and the HTTP server together.

It holds no policy of its own and does no state-changing work itself: applying and reloading a
configuration is :mod:`probed.reload`'s job, noticing file changes :mod:`probed.watch`'s,
handling results :mod:`probed.results`'s, rendering ``/metrics`` :mod:`probed.metrics`'s. The
daemon builds those units, hands the HTTP handlers narrow read-only views of them under
:class:`aiohttp.web.AppKey`\\ s (see :mod:`probed.server`), and puts their startup and
shutdown into the application's ``cleanup_ctx``, so aiohttp runs them in order and tears down
only what started.

Why :meth:`Daemon.serve` drives an :class:`aiohttp.web.AppRunner` rather than calling
:func:`aiohttp.web.run_app`: ``run_app`` creates and owns its own event loop and blocks, while
the tests (and applications embedding probed) run the daemon as a task on a loop they already
own and stop it with :meth:`Daemon.request_stop`; and ``run_app`` handles only SIGINT/SIGTERM,
while probed also reloads on SIGHUP and logs its first line once the socket is bound, with the
address it got. Everything else ``run_app`` would own (startup and cleanup order, teardown only
of what started) is aiohttp's ``cleanup_ctx``, here too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from probed import __version__
from probed._gc import YOUNG_PERIOD, YoungCollections, return_large_buffers, settle, trim
from probed._type_metrics import LoadedTypeMetrics
from probed.errors import ConfigError
from probed.health import StartupLatch
from probed.lifecycle import STOP_SIGNALS, EarlySignals, exit_now
from probed.listen import open_listeners, runner_options
from probed.livez import liveness_listener
from probed.logs import LogCollector, log_counts, state_changes
from probed.metrics import DaemonMetrics, Exporter
from probed.notify import Notifier
from probed.plugins import ProbedPluginManager, check_types
from probed.reload import COMPACT_FROM, RunningConfig, embedded_checks_file
from probed.results import ResultHandler
from probed.scheduler import Job, Scheduler
from probed.server import CONFIG, EXPORTER, HEARTBEAT, RELOAD, STARTUP, STATES
from probed.settings import Settings
from probed.state import StateTable
from probed.statefile import state_file
from probed.status_page import STATUS_PAGE
from probed.watch import supervised, watch

__all__ = ["Daemon", "embedded_checks_file"]

log = logging.getLogger("probed")

HEARTBEAT_PERIOD = 1.0
"""Seconds between samples of the scheduler's running and queued gauges."""
FIRST_RUNS_WAIT = 60.0
"""At most this many seconds of check timeout are waited for before the start-up trim."""
FIRST_RUNS_POLL = 0.5
"""Seconds between looks at whether every check has had its first run."""


class Daemon:
    """One running probed: builds the units and runs them under an aiohttp application."""

    def __init__(
        self,
        settings: Settings,
        pm: ProbedPluginManager,
        *,
        overrides: dict[str, Any] | None = None,
        tune_gc: bool = False,
    ) -> None:
        self.pm = pm
        # Freezing long-lived objects and trimming the heap is for a process the daemon owns
        # (``probed run``), not for an embedding application or a test session.
        self.tune_gc = tune_gc
        self.types = check_types(pm)
        self.type_metrics = LoadedTypeMetrics(self.types)  # families of the types in use
        table = StateTable()
        self.store = table.view
        self.startup = StartupLatch(self.store)
        self.metrics = DaemonMetrics(self.store, self.startup.passed)
        self.metrics.add_collectors((LogCollector(log_counts),))
        self.exporter = Exporter(
            self.store,
            self.type_metrics,
            self.metrics,
            trim_from=COMPACT_FROM if tune_gc else None,
            options=settings.metrics,
        )
        self.notifier = Notifier(
            pm, settings.hook_timeout, lambda p, h: self.metrics.plugin_errors.labels(p, h).inc()
        )
        self.results = ResultHandler(self.notifier, lambda: self.config.redact)
        self.scheduler = Scheduler(
            self.results.handle,
            max_concurrency=settings.max_concurrency,
            startup_spread=settings.startup_spread,
            observe_lag=self.metrics.lag.observe,
            on_error=lambda stage: self.metrics.scheduler_errors.labels(stage).inc(),
        )
        self.config = RunningConfig(
            settings,
            overrides or {},
            pm=pm,
            types=self.types,
            scheduler=self.scheduler,
            table=table,
            metrics=self.metrics,
            notifier=self.notifier,
            applied=self.results.hooks_changed,
            tune_gc=tune_gc,
            fork_loads=tune_gc,
        )
        self._stop = asyncio.Event()
        self._serving = False
        self._reload_queued = False
        self._reloads: set[asyncio.Task[Any]] = set()

    # -- what the running configuration is (read-only shortcuts) --------------------------------

    @property
    def settings(self) -> Settings:
        """The running settings."""
        return self.config.settings

    @property
    def jobs(self) -> dict[str, Job]:
        """The scheduled checks by name."""
        return self.config.jobs

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Problems of the running configuration."""
        return self.config.errors

    @property
    def redact(self) -> Callable[[str], str]:
        """Masks the running configuration's secrets."""
        return self.config.redact

    def started(self) -> bool:
        """True once every readiness check has finished a first run (latched)."""
        return self.startup.passed()

    async def reload(self, *, if_changed: bool = False) -> tuple[bool, tuple[ConfigError, ...]]:
        """Re-read settings and checks (see :meth:`probed.reload.RunningConfig.reload`)."""
        return await self.config.reload(if_changed=if_changed)

    # -- the application ----------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        """Give ``app`` the handlers' views and the lifecycle: plugins configured, checks
        loaded, plugins' routes and collectors registered, plugins started, checks scheduled,
        gauges sampled, files watched; torn down in reverse."""
        app[STATES] = self.store
        app[HEARTBEAT] = self.scheduler
        app[STARTUP] = self.startup
        app[CONFIG] = self.config
        app[RELOAD] = self.config
        app[EXPORTER] = self.exporter
        app[STATUS_PAGE] = self.settings.status_page
        app.cleanup_ctx.extend((self._plugins_configured, self._checks))
        if self.settings.state_file is not None:  # restored before the first run, saved after
            app.cleanup_ctx.append(
                state_file(self.settings.state_file, self.settings.state_file_interval, self.store)
            )
        app.cleanup_ctx.extend(
            (
                self._plugin_endpoints,
                self._plugins_started,
                self._scheduling,
                self._sampling,
            )
        )
        if self.settings.live_listen:  # /health/live served by a thread (probed.livez)
            app.cleanup_ctx.append(liveness_listener(self.settings.live_listen, self.scheduler))
        if self.settings.watch:
            app.cleanup_ctx.append(self._watching)

    async def _plugins_configured(self, _app: web.Application) -> AsyncIterator[None]:
        settings = self.settings
        await self.notifier.call(
            "probed_configure", settings=settings, plugin_config=settings.plugins
        )
        yield
        await self.notifier.drain()
        await self.notifier.call("probed_shutdown", settings=self.settings)

    async def _checks(self, _app: web.Application) -> AsyncIterator[None]:
        await self.config.start()  # jobs are added to the scheduler, which does not run yet
        if self.tune_gc:
            settle()
            return_large_buffers()
        yield
        await self.config.retire_all(self._grace())

    def _grace(self) -> float:
        """How long running checks may take to finish when stopping: the longest timeout."""
        return max((job.spec.timeout for job in self.jobs.values()), default=1.0)

    async def _plugin_endpoints(self, app: web.Application) -> AsyncIterator[None]:
        # After configure and the first load, before startup (the documented hook order);
        # aiohttp freezes the router only once every startup context has run.
        for _plugin, routes in self.pm.call_hook("probed_register_routes", states=self.store):
            app.add_routes(list(routes or ()))
        for _plugin, collectors in self.pm.call_hook(
            "probed_register_collectors", states=self.store
        ):
            self.metrics.add_collectors(collectors or ())
        yield

    async def _plugins_started(self, _app: web.Application) -> AsyncIterator[None]:
        await self.notifier.call("probed_startup", settings=self.settings, states=self.store)
        yield

    async def _scheduling(self, _app: web.Application) -> AsyncIterator[None]:
        self.scheduler.start()  # after probed_startup: no result reaches a plugin before it
        yield
        await self.scheduler.stop(self._grace())

    async def _sampling(self, _app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        beat = _Repeater(loop, HEARTBEAT_PERIOD, self._sample)
        # probed run: young collections on a clock too (see probed._gc.YoungCollections)
        young = _Repeater(loop, YOUNG_PERIOD, YoungCollections()) if self.tune_gc else None
        # probed run: once every check has had its first run, give the free heap that burst
        # left back to the system (~0.6-0.9 KB per idle tcp check, benchmarks/memory.py)
        trimmed = loop.create_task(self._trim_after_first_runs()) if self.tune_gc else None
        yield
        if trimmed is not None:
            trimmed.cancel()
            await asyncio.wait([trimmed])
        beat.cancel()
        if young is not None:
            young.cancel()

    async def _watching(self, _app: web.Application) -> AsyncIterator[None]:
        watcher = asyncio.get_running_loop().create_task(supervised(watch, self.config))
        yield
        watcher.cancel()
        await asyncio.wait([watcher])

    async def _trim_after_first_runs(self) -> None:
        """Trim the C heap once every check has a result, or after the first runs' time
        (``startup_spread`` plus the longest timeout, at most :data:`FIRST_RUNS_WAIT`)."""
        loop = asyncio.get_running_loop()
        wait = self.settings.startup_spread + min(self._grace(), FIRST_RUNS_WAIT) + 1.0
        deadline = loop.time() + wait
        # polled: nothing signals "every check has run", and the look is cheap (stops early)
        while loop.time() < deadline and any(state.last is None for state in self.store):  # noqa: ASYNC110
            await asyncio.sleep(FIRST_RUNS_POLL)
        await loop.run_in_executor(None, trim)

    def _sample(self) -> None:
        self.metrics.running.set(self.scheduler.running)
        self.metrics.queued.set(self.scheduler.queued)
        state_changes.sweep()  # suppressed state-change lines are reported when their minute ends

    # -- signals ------------------------------------------------------------------------------

    def _install_signals(self, early: EarlySignals | None) -> None:
        """The loop's handlers, first thing in :meth:`serve` (before plugins start and checks
        load); a SIGHUP that came earlier is taken over and queued."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        if early is not None and early.take_hup():
            self.request_reload()

    def _remove_signals(self, early: EarlySignals | None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if early is not None:  # until the process exits, a HUP is still not fatal
            early.install()

    def _on_stop_signal(self, signum: int) -> None:
        if self._stop.is_set():
            exit_now(signum)  # the second one: the documented way out of a slow stop
        self.request_stop()

    def request_reload(self) -> None:
        """Reload as SIGHUP does: now if serving, else once started (a queued reload)."""
        if not self._serving:
            if not self._reload_queued:
                log.info(
                    "reload requested during start-up; it will run once started",
                    extra={"event": "reload_queued"},
                )
            self._reload_queued = True
            return
        task = asyncio.get_running_loop().create_task(self.config.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    # -- lifecycle ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`serve` to stop (what SIGTERM does)."""
        self._stop.set()

    async def serve(
        self,
        app: web.Application,
        *,
        install_signals: bool = True,
        early: EarlySignals | None = None,
    ) -> None:
        """Run ``app`` until :meth:`request_stop` or SIGTERM/SIGINT; SIGHUP reloads.

        ``app`` comes from :func:`probed.server.make_app` for this daemon: its ``cleanup_ctx``
        starts plugins, checks and the watcher before the socket is bound and stops them,
        in reverse order and only those that started, after the server has closed.

        The signal handlers come first: a stop during start-up cancels the start-up (what
        started is stopped), a SIGHUP during start-up (or one ``early`` caught before the loop
        ran) reloads once started, and a second SIGTERM/SIGINT while stopping exits at once
        (:func:`probed.lifecycle.exit_now`).
        """
        if install_signals:
            self._install_signals(early)
        runner = web.AppRunner(app, **runner_options(self.settings))
        try:
            if await self._start_up(runner):
                host, port = self.settings.host_port
                await open_listeners(runner, self.settings, self.config.on_reload, self.metrics)
                self._log_started(host, port)
                self._serving = True
                if self._reload_queued:
                    self._reload_queued = False
                    self.request_reload()
                await self._stop.wait()
            log.info("stopping", extra={"event": "stopping"})
        finally:
            self._serving = False
            try:
                for task in self._reloads:  # a reload half-way is abandoned before it applies
                    task.cancel()
                if self._reloads:
                    await asyncio.wait(list(self._reloads))
                await runner.cleanup()
            finally:
                if install_signals:
                    self._remove_signals(early)
        log.info("stopped", extra={"event": "stopped"})

    async def _start_up(self, runner: web.AppRunner) -> bool:
        """Run the start-up steps unless a stop is requested first (then cancel them)."""
        setup = asyncio.ensure_future(runner.setup())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((setup, stop), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            setup.cancel()  # serve() itself cancelled: the start-up goes with it
            raise
        finally:
            stop.cancel()
        if not setup.done():
            log.info("stop requested during start-up", extra={"event": "stop_during_startup"})
            setup.cancel()
            await asyncio.wait((setup,))
            return False
        setup.result()  # start-up errors propagate
        return True

    def _log_started(self, host: str, port: int) -> None:
        settings = self.settings
        sources = [str(d) for d in settings.checks_dirs]
        if settings.config_file is not None:
            sources.insert(0, str(settings.config_file))
        if settings.use_embedded_checks:
            sources.append("embedded host checks")
        types = sorted({job.spec.type for job in self.jobs.values()})
        log.info(
            "probed %s listening on http://%s:%d: %d checks (%s) from %s, %d config errors",
            __version__,
            host,
            port,
            len(self.jobs),
            ", ".join(types) or "none",
            ", ".join(sources) or "nowhere (no --config, no --checks-dir)",
            len(self.errors),
            extra={
                "event": "started",
                "listen": f"{host}:{port}",
                "checks": len(self.jobs),
                "config_errors": len(self.errors),
            },
        )
        self.config.log_errors()


class _Repeater:
    """Calls ``fn`` every ``period`` seconds on the loop without a task."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, period: float, fn: Callable[[], None]
    ) -> None:
        self._loop, self._period, self._fn = loop, period, fn
        self._handle = loop.call_later(period, self._run)

    def _run(self) -> None:
        self._fn()
        self._handle = self._loop.call_later(self._period, self._run)

    def cancel(self) -> None:
        self._handle.cancel()
