"""Lifecycle and notification hooks: each implementation isolated, async ones awaited in turn.

This is the documented boundary where plugin exceptions are caught: a failing or hanging
plugin is logged and counted (``probed_plugin_errors_total``) and the others still run. The
call itself is :meth:`ProbedPluginManager.call_hook` (through pluggy, so wrappers wrap it); the
coroutines of ``async def`` implementations are then awaited one after the other, each under
``hook_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probed.plugins import ProbedPluginManager

__all__ = ["Notifier"]

log = logging.getLogger("probed.plugins")


class Notifier:
    """Calls a hook's implementations one at a time, isolating each."""

    def __init__(
        self,
        pm: ProbedPluginManager,
        timeout: float,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self._pm = pm
        self._timeout = timeout
        self._on_error = on_error or (lambda _plugin, _hook: None)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reporters: dict[str, Callable[[str, Exception], None]] = {}

    def has_impls(self, hook_name: str) -> bool:
        """True if any plugin implements ``hook_name`` (lets hot paths skip the call).

        An implementation whose function has a ``probed_when`` attribute (a callable) counts
        only while that returns true: a built-in integration that is not configured (Sentry
        without a DSN) does not cost every run a hook call. Ask again after the
        configuration changed (:meth:`probed.results.ResultHandler.hooks_changed`).
        """
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            when = getattr(impl.function, "probed_when", None)
            if when is None or when():
                return True
        return False

    def _fail(self, plugin: str, hook: str, what: str) -> None:
        self._on_error(plugin, hook)
        log.error(
            "plugin %s failed in %s: %s",
            plugin,
            hook,
            what,
            extra={"event": "plugin_error", "plugin": plugin, "hook": hook},
        )

    def _start(self, hook_name: str, kwargs: dict[str, Any]) -> list[tuple[str, Awaitable[Any]]]:
        """Call the hook; return the awaitables of the async implementations, in call order."""
        report = self._reporters.get(hook_name)
        if report is None:

            def report(plugin: str, exc: Exception) -> None:
                self._fail(plugin, hook_name, f"{type(exc).__name__}: {exc}")
                log.debug("plugin traceback", exc_info=exc)

            self._reporters[hook_name] = report
        returned = self._pm.call_hook(hook_name, on_error=report, **kwargs)
        return [(plugin, value) for plugin, value in returned if inspect.isawaitable(value)]

    async def _await_all(self, hook_name: str, pending: list[tuple[str, Awaitable[Any]]]) -> None:
        for plugin, awaitable in pending:
            try:
                async with asyncio.timeout(self._timeout):
                    await awaitable
            except TimeoutError:
                self._fail(plugin, hook_name, f"no return within {self._timeout:g}s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(plugin, hook_name, f"{type(exc).__name__}: {exc}")
                log.debug("plugin traceback", exc_info=True)

    async def call(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation in turn, awaiting async ones; never raises."""
        await self._await_all(hook_name, self._start(hook_name, kwargs))

    def fire(self, hook_name: str, **kwargs: Any) -> None:
        """Notify without waiting (for per-run notifications).

        Plain implementations run inline; a task is created only to await the coroutines of
        ``async def`` implementations, one after the other.
        """
        pending = self._start(hook_name, kwargs)
        if pending:
            task = asyncio.get_running_loop().create_task(self._await_all(hook_name, pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background notifications still in flight."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._timeout)
