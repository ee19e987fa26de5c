"""The daemon: wires config, scheduler, state, notifications and the HTTP server together.

It holds no policy of its own: when checks run is the scheduler's business, how results fold is
the state's, what is valid is the config's. The daemon applies a loaded configuration (keeping
the state and schedule of unchanged checks), reacts to results, reloads on request, SIGHUP or
file changes, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Final

import pluggy
from aiohttp import web

from probed import __version__
from probed._gc import compact, return_large_buffers, settle, trim
from probed.check import Check, Result, Status
from probed.config import LoadResult, load_checks, load_settings
from probed.errors import ConfigError, ConfigErrors
from probed.exposition import TypeMetrics
from probed.logs import set_redactor
from probed.metrics import DaemonMetrics
from probed.notify import Notifier
from probed.plugins import CheckTypeInfo, call_each, check_types
from probed.redact import Redactor
from probed.scheduler import Job, Scheduler
from probed.settings import Settings
from probed.state import CheckState, StateStore

__all__ = ["Daemon", "embedded_checks_file"]

log = logging.getLogger("probed")

_StatFingerprint = tuple[tuple[str, int, int], ...]
"""``(path, mtime_ns, size)`` of every watched file, sorted by path."""

COMPACT_FROM: Final = 1000
"""Configurations with at least this many checks are compacted after loading (see _gc)."""


def embedded_checks_file() -> Path:
    """The packaged default checks (host disk, memory, CPU) used when nothing is configured."""
    return Path(str(resources.files("probed").joinpath("embedded_checks.yaml")))


class Daemon:
    """One running probed: configuration, scheduler, state and server."""

    def __init__(
        self,
        settings: Settings,
        pm: pluggy.PluginManager,
        *,
        overrides: dict[str, Any] | None = None,
        tune_gc: bool = False,
    ) -> None:
        self.settings = settings
        self.pm = pm
        self.overrides = overrides or {}
        # Freezing long-lived objects is for a process the daemon owns (``probed run``), not
        # for an embedding application or a test session.
        self.tune_gc = tune_gc
        self._trim_pending = False
        self.types: dict[str, CheckTypeInfo] = check_types(pm)
        self.type_metrics = TypeMetrics(
            (name, info.cls.metrics) for name, info in self.types.items()
        )
        self.store = StateStore()
        self.metrics = DaemonMetrics(self.store, self.started)
        self.notifier = Notifier(
            pm, settings.hook_timeout, lambda p, h: self.metrics.plugin_errors.labels(p, h).inc()
        )
        self.scheduler = Scheduler(
            self._on_result,
            max_concurrency=settings.max_concurrency,
            startup_spread=settings.startup_spread,
            observe_lag=self.metrics.lag.observe,
        )
        self.jobs: dict[str, Job] = {}
        self.loaded: LoadResult | None = None
        self.errors: tuple[ConfigError, ...] = ()
        self.redact: Callable[[str], str] = Redactor(())
        self._started_latch = False
        self._reload_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        self._notify_results = False
        # What the files looked like when the running configuration was read: the watcher
        # reloads only when they differ (so a change already reloaded by SIGHUP is not
        # applied twice). (stat fingerprint, content digest)
        self._files_seen: tuple[_StatFingerprint, str] | None = None
        self.started_at = time.time()

    # -- readers ------------------------------------------------------------------------------

    def started(self) -> bool:
        """True once every readiness check has finished a first run (latched)."""
        if not self._started_latch and self.store.started():
            self._started_latch = True
        return self._started_latch

    # -- configuration ------------------------------------------------------------------------

    def _extra_files(self) -> list[Path]:
        return [embedded_checks_file()] if self.settings.use_embedded_checks else []

    def load(self) -> LoadResult:
        """Load (or reload) every check; never raises for check problems."""
        discovered: list[tuple[str, Any]] = []
        for plugin, defs in call_each(self.pm, "probed_discover_checks", settings=self.settings):
            discovered.extend((plugin, d) for d in defs or ())
        return compact(
            lambda: load_checks(
                self.settings,
                self.types,
                previous=self.loaded,
                discovered=discovered,
                extra_files=self._extra_files(),
            ),
            lambda loaded: len(loaded.specs) >= COMPACT_FROM,
        )

    def apply(self, loaded: LoadResult, *, initial: bool = False) -> None:
        """Make ``loaded`` the running configuration, keeping unchanged checks as they are."""
        self.loaded = loaded
        self.errors = loaded.errors
        self.redact = Redactor(loaded.secrets)
        set_redactor(self.redact)
        old_jobs = self.jobs
        new_jobs: dict[str, Job] = {}
        new_states: dict[str, CheckState] = {}
        added = changed = 0
        for name, spec in loaded.specs.items():
            job = old_jobs.get(name)
            if job is not None and job.spec == spec:
                new_jobs[name] = job
            else:
                if job is not None:
                    changed += 1
                    self._retire(job)
                else:
                    added += 1
                job = Job(
                    spec, self.types[spec.type].cls(spec), CheckState(spec, self.settings.history)
                )
                new_jobs[name] = job
                self.scheduler.add(job)
            new_states[name] = job.state
        removed = [job for name, job in old_jobs.items() if name not in new_jobs]
        for job in removed:
            self._retire(job)
        self.jobs = new_jobs
        self.store.replace(new_states)
        self._notify_results = self.notifier.has_impls("probed_check_result")
        ok = not loaded.errors
        self.metrics.reload_successful.set(1 if ok else 0)
        self.metrics.config_errors.set(len(loaded.errors))
        if ok:
            self.metrics.reload_timestamp.set(time.time())
        log.log(
            logging.DEBUG if initial else logging.INFO,
            "configuration applied: %d checks (%d new, %d changed, %d removed, %d kept), %d errors",
            len(new_jobs),
            added,
            changed,
            len(removed),
            len(new_jobs) - added - changed,
            len(loaded.errors),
            extra={
                "event": "config_applied",
                "checks": len(new_jobs),
                "errors": len(loaded.errors),
            },
        )
        if not initial:  # on startup they follow the first log line (see serve)
            self._log_errors()

    def _log_errors(self) -> None:
        for error in self.errors:
            log.error(
                "%s", error, extra={"event": "config_error", "file": error.file, "line": error.line}
            )

    def _retire(self, job: Job) -> None:
        self.scheduler.remove(job)

        async def close(task: asyncio.Task[None] | None, check: Check[Any]) -> None:
            if task is not None:
                await asyncio.wait([task])
            try:
                await check.close()
            except Exception:  # a plugin's close failing must not break a reload
                log.exception("closing check %s failed", job.spec.name)

        closer = asyncio.get_running_loop().create_task(close(job.task, job.check))
        self._closing.add(closer)
        closer.add_done_callback(self._closing.discard)

    async def reload(self, *, if_changed: bool = False) -> tuple[bool, tuple[ConfigError, ...]]:
        """Re-read settings and checks; return success and the errors found.

        Settings that need a restart (listen address, plugins) are kept from startup. A
        reload that finds the same checks as those running changes nothing and logs
        ``config_unchanged`` instead of ``config_applied``.

        :param if_changed: do nothing unless the watched files' content differs from what
            the running configuration was read from (the file watcher's reloads).
        """
        async with self._reload_lock:
            seen = await asyncio.to_thread(self._files_now)
            if if_changed and self._files_seen is not None and seen[1] == self._files_seen[1]:
                self._files_seen = seen
                return not self.errors, self.errors
            self._files_seen = seen
            try:
                fresh = await asyncio.to_thread(
                    load_settings, self.settings.config_file, self.overrides
                )
                self.settings = replace(
                    fresh,
                    listen=self.settings.listen,
                    plugins_dirs=self.settings.plugins_dirs,
                    disabled_plugins=self.settings.disabled_plugins,
                    use_embedded_checks=self.settings.use_embedded_checks,
                )
            except ConfigErrors as exc:
                self.metrics.reload_successful.set(0)
                self.metrics.reloads.labels("failure").inc()
                for error in exc.errors:
                    log.error("%s", error, extra={"event": "config_error"})
                return False, tuple(exc.errors)
            loaded = await asyncio.to_thread(self.load)
            if self._unchanged(loaded):
                self.loaded = loaded  # same checks; keep the new digests for the next reload
                if not loaded.errors:
                    self.metrics.reload_timestamp.set(time.time())
                log.info(
                    "configuration reloaded: unchanged (%d checks, %d errors)",
                    len(self.jobs),
                    len(loaded.errors),
                    extra={"event": "config_unchanged", "checks": len(self.jobs)},
                )
                self._log_errors()
            else:
                self.apply(loaded)
            if self.tune_gc:
                settle()
            await self.notifier.call(
                "probed_configure", settings=self.settings, plugin_config=self.settings.plugins
            )
            self.metrics.reloads.labels("success" if not loaded.errors else "failure").inc()
            return not loaded.errors, loaded.errors

    # -- results ------------------------------------------------------------------------------

    def _on_result(self, job: Job, result: Result) -> None:
        if result.message:
            message = self.redact(result.message)
            if message is not result.message:
                result = replace(result, message=message)
        transition = job.state.record(result)
        if transition is not None:
            spec = job.spec
            # Going down or degrading is worth a warning; recovering (to ok) is news.
            log.log(
                logging.INFO if transition.new is Status.OK else logging.WARNING,
                "check %s is now %s (was %s)%s",
                spec.name,
                transition.new.label,
                transition.old.label,
                f": {result.message}" if result.message else "",
                extra={
                    "fields": {
                        "event": "check_state_changed",
                        "check": spec.name,
                        "type": spec.type,
                        "old": transition.old.label,
                        "new": transition.new.label,
                        "reason": result.reason,
                        "message": result.message,
                    }
                },
            )
            self.notifier.fire(
                "probed_check_state_changed",
                spec=spec,
                old=transition.old,
                new=transition.new,
                result=result,
            )
        if self._notify_results:
            self.notifier.fire("probed_check_result", spec=job.spec, result=result)

    def after_scrape(self) -> None:
        """Trim the C heap shortly after a scrape of a large daemon (``probed run`` only)."""
        if not self.tune_gc or len(self.jobs) < COMPACT_FROM or self._trim_pending:
            return
        self._trim_pending = True

        def run() -> None:
            self._trim_pending = False
            trim()

        asyncio.get_running_loop().call_later(2.0, run)

    # -- lifecycle ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`serve` to stop (what SIGTERM does)."""
        self._stop.set()

    def _heartbeat(self) -> None:
        self.metrics.running.set(self.scheduler.running)
        self.metrics.queued.set(self.scheduler.queued)

    def _unchanged(self, loaded: LoadResult) -> bool:
        """Whether ``loaded`` would run exactly the checks that run now, with the same errors."""
        old = self.loaded
        return (
            old is not None
            and loaded.specs == old.specs
            and loaded.errors == old.errors
            and loaded.secrets == old.secrets
        )

    async def _watch(self) -> None:
        """Reload when the content of files under the checks directories or the config file
        changes (compared with what the running configuration was read from)."""
        while True:
            await asyncio.sleep(self.settings.watch_interval)
            current = await asyncio.to_thread(self._fingerprint)
            seen = self._files_seen
            if seen is not None and current == seen[0]:
                continue
            content = await asyncio.to_thread(self._content_digest, current)
            if seen is not None and content == seen[1]:
                self._files_seen = (current, content)  # touched, or already reloaded
                continue
            log.info("configuration files changed; reloading", extra={"event": "reload"})
            await self.reload(if_changed=True)

    def _files_now(self) -> tuple[_StatFingerprint, str]:
        stat = self._fingerprint()
        return stat, self._content_digest(stat)

    @staticmethod
    def _content_digest(files: _StatFingerprint) -> str:
        digest = hashlib.sha256()
        for name, _, _ in files:
            try:
                data = Path(name).read_bytes()
            except OSError as exc:
                data = f"\0unreadable:{exc.errno}".encode()
            digest.update(f"{len(name)}:{name}:{len(data)}:".encode() + data)
        return digest.hexdigest()

    def _fingerprint(self) -> _StatFingerprint:
        paths: list[Path] = []
        for directory in self.settings.checks_dirs:
            if directory.is_dir():
                paths.extend(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
        if self.settings.config_file is not None:
            paths.append(self.settings.config_file)
        out = []
        for path in sorted(paths):
            with contextlib.suppress(OSError):
                st = path.stat()
                out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)

    async def start(self) -> None:
        """Load configuration, run startup hooks and start scheduling (no HTTP server)."""
        self.scheduler.start()
        await self.notifier.call(
            "probed_configure", settings=self.settings, plugin_config=self.settings.plugins
        )
        self._files_seen = await asyncio.to_thread(self._files_now)
        self.apply(await asyncio.to_thread(self.load), initial=True)
        if self.tune_gc:
            settle()
            return_large_buffers()
        await self.notifier.call("probed_startup", settings=self.settings, states=self.store)

    async def stop(self) -> None:
        """Stop scheduling, let running checks finish (up to the longest timeout), shut down."""
        grace = max((job.spec.timeout for job in self.jobs.values()), default=1.0)
        await self.scheduler.stop(grace)
        for job in self.jobs.values():
            self._retire(job)
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=grace)
        await self.notifier.drain()
        await self.notifier.call("probed_shutdown", settings=self.settings)

    async def serve(self, app: web.Application, *, install_signals: bool = True) -> None:
        """Run until :meth:`request_stop` or SIGTERM/SIGINT: server, scheduler, watcher."""
        loop = asyncio.get_running_loop()
        await self.start()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = self.settings.host_port
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        sources = [str(d) for d in self.settings.checks_dirs]
        if self.settings.config_file is not None:
            sources.insert(0, str(self.settings.config_file))
        if self.settings.use_embedded_checks:
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
        self._log_errors()
        if install_signals:
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        watcher = loop.create_task(self._watch()) if self.settings.watch else None
        beat = _Repeater(loop, 1.0, self._heartbeat)
        try:
            await self._stop.wait()
            log.info("stopping", extra={"event": "stopping"})
        finally:
            beat.cancel()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
            await self.stop()
            await runner.cleanup()
            log.info("stopped", extra={"event": "stopped"})


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
