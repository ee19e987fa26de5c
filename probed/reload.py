"""Applying a configuration: load it, diff it against the running one, add, replace, remove jobs.

:class:`RunningConfig` is the daemon's one writer of configuration: it owns the running
settings, jobs, errors and secrets redactor, and the writing side of the state table. A reload
(``POST /-/reload``, SIGHUP, the file watcher) re-reads settings and checks; unchanged checks
keep their state, schedule and check instance, changed ones are replaced, removed ones are
retired (their check closed once a running run finished). Readers see the result through the
read-only :class:`~probed.state.StateStore` and the ``errors``/``redact`` attributes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, Final

from probed._forkload import load_in_child
from probed._gc import compact, settle
from probed._share import share_equal
from probed.config import LoadResult, load_checks, load_settings
from probed.errors import ConfigError, ConfigErrors
from probed.logs import set_redactor, set_state_change_limit
from probed.metrics import DaemonMetrics
from probed.notify import Notifier
from probed.plugins import CheckTypeInfo, ProbedPluginManager, discover_checks
from probed.redact import Redactor
from probed.replicas import owned_specs
from probed.scheduler import Job, Scheduler
from probed.settings import Settings
from probed.state import CheckState, StateTable
from probed.watch import FilesSeen, files_now

__all__ = ["APPLY_SLICE", "COMPACT_FROM", "RunningConfig", "embedded_checks_file"]

log = logging.getLogger("probed")

COMPACT_FROM: Final = 1000
"""Configurations with at least this many checks are compacted after loading (see _gc)."""

APPLY_SLICE: Final = 5000
"""A reload applies this many checks between two turns of the event loop."""


def _shared(loaded: LoadResult) -> LoadResult:
    """``loaded`` with equal immutable values of its specs made one object each (before the
    compaction pickles them: about 330 bytes less per TCP check, 550 per HTTP check)."""
    share_equal(spec for f in loaded.files.values() for spec in f.specs)
    return loaded


_NOTHING: Final = LoadResult({}, (), {}, frozenset())
"""What a first load is pickled against (nothing is running yet)."""


def embedded_checks_file() -> Path:
    """The packaged default checks (host disk, memory, CPU) used when nothing is configured."""
    return Path(str(resources.files("probed").joinpath("embedded_checks.yaml")))


CLOSE_AT_ONCE: Final = 64
"""Checks of retired jobs closed at the same time (see :meth:`RunningConfig.retire`)."""

CLOSE_TIMEOUT: Final = 30.0
"""Seconds a retired check's ``close()`` may take before it is left (and logged)."""


async def _close(job: Job) -> None:
    """Close a retired job's check once its run in progress (bounded by its timeout) ended."""
    if job.task is not None:
        await asyncio.wait([job.task])
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await job.check.close()
    except TimeoutError:
        log.warning(
            "closing check %s took longer than %gs; left behind",
            job.spec.name,
            CLOSE_TIMEOUT,
            extra={"fields": {"event": "check_close_timeout", "check": job.spec.name}},
        )
    except Exception:  # a plugin's close failing must not break a reload
        log.exception("closing check %s failed", job.spec.name)


class RunningConfig:
    """The running configuration and the one way to change it."""

    def __init__(
        self,
        settings: Settings,
        overrides: dict[str, Any],
        *,
        pm: ProbedPluginManager,
        types: dict[str, CheckTypeInfo],
        scheduler: Scheduler,
        table: StateTable,
        metrics: DaemonMetrics,
        notifier: Notifier,
        applied: Callable[[], None],
        tune_gc: bool,
        fork_loads: bool = False,
    ) -> None:
        self.settings = settings
        self.overrides = overrides
        self.jobs: dict[str, Job] = {}
        self.loaded: LoadResult | None = None
        self.errors: tuple[ConfigError, ...] = ()
        self.redact: Callable[[str], str] = Redactor(())
        self.files_seen: FilesSeen | None = None
        self._pm = pm
        self._types = types
        self._scheduler = scheduler
        self._table = table
        self._metrics = metrics
        self._notifier = notifier
        self._applied = applied
        self._tune_gc = tune_gc
        self.fork_loads = fork_loads
        """Loads (the first and every reload) parse and validate in a forked child (see
        :mod:`probed._forkload`); ``probed run`` sets it."""
        self.loaded_in_child = False
        """Whether the last load came from a forked child."""
        self._lock = asyncio.Lock()
        self._retired: deque[Job] = deque()
        self._closer: asyncio.Task[None] | None = None
        self.on_reload: list[Callable[[], tuple[ConfigError, ...]]] = []
        """Called (in a thread) by every reload but the file watcher's (the web config)."""

    def _extra_files(self) -> list[Path]:
        return [embedded_checks_file()] if self.settings.use_embedded_checks else []

    def load(self) -> LoadResult:
        """Load every check (blocking: call in a thread); never raises for check problems.

        With :attr:`fork_loads`, the files are read and validated by a forked child (this
        thread only waits for it, see :mod:`probed._forkload`): a reload of tens of thousands
        of checks then does not take the interpreter lock from the event loop for seconds,
        the checks that did not change come back as the running objects themselves, and the
        first load never holds the parse trees here (at 50,000 HTTP checks, a peak of about
        100 MB instead of 320 MB, and a densely packed result without :func:`compact`).
        """
        discovered = discover_checks(self._pm, self.settings)
        previous = self.loaded
        self.loaded_in_child = False
        if self.fork_loads:
            # equal values shared in the child, as below (a reload that changes every check
            # would otherwise bring back each spec with its own copies: ~3.0 KB, not 1.4 KB)
            forked = load_in_child(
                lambda: _shared(self._load_checks(discovered)),
                _NOTHING if previous is None else previous,
            )
            if forked is not None:
                self.loaded_in_child = True
                Redactor(forked.secrets)
                return forked
        result = compact(
            lambda: _shared(self._load_checks(discovered)),
            # every check loaded counts (a replica keeps only its share, the files all)
            lambda loaded: sum(len(f.specs) for f in loaded.files.values()) >= COMPACT_FROM,
        )
        Redactor(result.secrets)  # built here, off the loop: apply() reuses its matcher
        return result

    def _load_checks(self, discovered: list[tuple[str, Any]]) -> LoadResult:
        return self._owned(
            load_checks(
                self.settings,
                self._types,
                previous=self.loaded,
                discovered=discovered,
                extra_files=self._extra_files(),
            )
        )

    def _owned(self, loaded: LoadResult) -> LoadResult:
        """``loaded`` with only the checks this replica runs (all of them without
        ``replicas:``); every check was validated, and a reload asks again."""
        replicas = self.settings.replicas
        if replicas is None:
            return loaded
        specs, conflicts = owned_specs(loaded.specs, replicas)
        return replace(loaded, specs=specs, errors=(*loaded.errors, *conflicts))

    async def start(self) -> None:
        """Read the files and apply the first configuration (errors are logged by the caller)."""
        self.files_seen = await asyncio.to_thread(files_now, self.settings)
        self.apply(await asyncio.to_thread(self.load), initial=True)

    def apply(self, loaded: LoadResult, *, initial: bool = False) -> None:
        """Make ``loaded`` the running configuration, keeping unchanged checks as they are."""
        for _ in self._applying(loaded, initial=initial):
            pass

    async def apply_sliced(self, loaded: LoadResult) -> None:
        """:meth:`apply`, yielding to the event loop every :data:`APPLY_SLICE` checks (tens of
        milliseconds at 50,000 checks otherwise). The new checks and the state table take
        effect at the end, at once."""
        for _ in self._applying(loaded, initial=False):
            await asyncio.sleep(0)

    def _applying(self, loaded: LoadResult, *, initial: bool) -> Iterator[None]:
        self.loaded = loaded
        self.errors = loaded.errors
        self.redact = Redactor(loaded.secrets)
        set_redactor(self.redact)
        set_state_change_limit(self.settings.state_change_log_limit)
        old_jobs = self.jobs
        new_jobs: dict[str, Job] = {}
        new_states: dict[str, CheckState] = {}
        added = changed = 0
        for index, (name, spec) in enumerate(loaded.specs.items()):
            if index % APPLY_SLICE == APPLY_SLICE - 1:
                yield
            job = old_jobs.get(name)
            if job is not None and (job.spec is spec or job.spec == spec):
                new_jobs[name] = job
            else:
                if job is not None:
                    changed += 1
                    self.retire(job)
                else:
                    added += 1
                state = CheckState(spec, self.settings.history, self.settings.status_page.kept)
                job = Job(spec, self._types[spec.type].cls(spec), state)
                new_jobs[name] = job
                self._scheduler.add(job)
            new_states[name] = job.state
        removed = [job for name, job in old_jobs.items() if name not in new_jobs]
        for job in removed:
            self.retire(job)
        self.jobs = new_jobs
        self._table.replace(new_states)
        self._applied()
        ok = not loaded.errors
        self._metrics.reload_successful.set(1 if ok else 0)
        self._metrics.config_errors.set(len(loaded.errors))
        if ok:
            self._metrics.reload_timestamp.set(time.time())
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
        if not initial:  # on startup they follow the first log line (see Daemon.serve)
            self.log_errors()

    def log_errors(self) -> None:
        """Log every problem of the running configuration, one line each."""
        for error in self.errors:
            log.error(
                "%s", error, extra={"event": "config_error", "file": error.file, "line": error.line}
            )

    def retire(self, job: Job) -> None:
        """Unschedule ``job`` and close its check once a run in progress has finished.

        Closes run :data:`CLOSE_AT_ONCE` at a time from one queue (a reload that removes
        50,000 checks, or a stop, must not make a task per check: that was ~75 MB at once),
        each bounded by :data:`CLOSE_TIMEOUT` so a hung plugin holds one slot, not the queue.
        """
        self._scheduler.remove(job)
        self._retired.append(job)
        if self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._close_retired())

    async def _close_retired(self) -> None:
        loop = asyncio.get_running_loop()
        closing: set[asyncio.Task[None]] = set()
        try:
            while self._retired or closing:
                while self._retired and len(closing) < CLOSE_AT_ONCE:
                    closing.add(loop.create_task(_close(self._retired.popleft())))
                _done, closing = await asyncio.wait(closing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in closing:  # cancelled (the loop is ending): do not leave them behind
                task.cancel()
            self._closer = None

    async def retire_all(self, grace: float) -> None:
        """Retire every job and wait up to ``grace`` seconds for their checks to close."""
        for job in self.jobs.values():
            self.retire(job)
        if self._closer is not None:
            await asyncio.wait([self._closer], timeout=grace)

    def _unchanged(self, loaded: LoadResult) -> bool:
        """Whether ``loaded`` would run exactly the checks that run now, with the same errors."""
        old = self.loaded
        return (
            old is not None
            and loaded.specs == old.specs
            and loaded.errors == old.errors
            and loaded.secrets == old.secrets
        )

    async def reload(self, *, if_changed: bool = False) -> tuple[bool, tuple[ConfigError, ...]]:
        """Re-read settings and checks; return success and the errors found.

        Settings that need a restart (listen address, plugins) are kept from startup. A
        reload that finds the same checks as those running changes nothing and logs
        ``config_unchanged`` instead of ``config_applied``.

        :param if_changed: do nothing unless the watched files' content differs from what
            the running configuration was read from (the file watcher's reloads).
        """
        async with self._lock:
            settings = self.settings
            try:
                if not if_changed:  # SIGHUP, POST /-/reload: the web configuration too
                    for hook in self.on_reload:
                        await asyncio.to_thread(hook)
                return await self._reload(if_changed=if_changed)
            except Exception as exc:  # a bug or an unforeseen input: keep what runs
                self.settings = settings
                self._metrics.reload_successful.set(0)
                self._metrics.reloads.labels("failure").inc()
                error = ConfigError(
                    str(settings.config_file or "probed"),
                    0,
                    "",
                    f"reload failed ({type(exc).__name__}: {exc}); "
                    "the running configuration is kept",
                )
                log.error("%s", error, extra={"event": "reload_failed"})
                log.debug("reload traceback", exc_info=exc)
                return False, (error,)

    async def _reload(self, *, if_changed: bool) -> tuple[bool, tuple[ConfigError, ...]]:
        seen = await asyncio.to_thread(files_now, self.settings)
        before = self.files_seen
        self.files_seen = seen
        if if_changed and before is not None and seen.digest == before.digest:
            return not self.errors, self.errors
        try:
            fresh = await asyncio.to_thread(
                load_settings, self.settings.config_file, self.overrides
            )
            if fresh.replicas is not None and fresh.replicas.missing is not None:
                raise ConfigErrors([fresh.replicas.missing])
            self.settings = replace(
                fresh,
                listen=self.settings.listen,
                plugins_dirs=self.settings.plugins_dirs,
                disabled_plugins=self.settings.disabled_plugins,
                use_embedded_checks=self.settings.use_embedded_checks,
                status_page=self.settings.status_page,  # the page is built at start
            )
        except ConfigErrors as exc:
            self._metrics.reload_successful.set(0)
            self._metrics.reloads.labels("failure").inc()
            for error in exc.errors:
                log.error("%s", error, extra={"event": "config_error"})
            return False, tuple(exc.errors)
        # Plugins see their new section before they discover checks (the hook order).
        await self._notifier.call(
            "probed_configure", settings=self.settings, plugin_config=self.settings.plugins
        )
        loaded = await asyncio.to_thread(self.load)
        if self._unchanged(loaded):
            self.loaded = loaded  # same checks; keep the new digests for the next reload
            if not loaded.errors:
                self._metrics.reload_timestamp.set(time.time())
            log.info(
                "configuration reloaded: unchanged (%d checks, %d errors)",
                len(self.jobs),
                len(loaded.errors),
                extra={"event": "config_unchanged", "checks": len(self.jobs)},
            )
            self.log_errors()
            self._applied()  # the plugins were configured again (Sentry may be on or off now)
        else:
            await self.apply_sliced(loaded)
        if self._tune_gc and not self.loaded_in_child:
            # A forked load brings back the running objects (already frozen) for everything
            # unchanged: a full collection would only stall the loop (~1 s at 50,000 checks).
            settle()
        self._metrics.reloads.labels("success" if not loaded.errors else "failure").inc()
        return not loaded.errors, loaded.errors
