"""Calling plugin hooks safely: each implementation alone, async ones awaited under a timeout.

This is the documented boundary where plugin exceptions are caught: a failing or hanging
plugin is logged and counted (``probed_plugin_errors_total``) and the others still run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["Notifier"]

log = logging.getLogger("probed.plugins")


class Notifier:
    """Calls a hook's implementations one at a time, isolating each."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        timeout: float,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self._pm = pm
        self._timeout = timeout
        self._on_error = on_error or (lambda _plugin, _hook: None)
        self._tasks: set[asyncio.Task[None]] = set()

    def has_impls(self, hook_name: str) -> bool:
        """True if any plugin implements ``hook_name`` (lets hot paths skip the call)."""
        return bool(getattr(self._pm.hook, hook_name).get_hookimpls())

    def _fail(self, plugin: str, hook: str, what: str) -> None:
        self._on_error(plugin, hook)
        log.error(
            "plugin %s failed in %s: %s",
            plugin,
            hook,
            what,
            extra={"event": "plugin_error", "plugin": plugin, "hook": hook},
        )

    async def call(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation in turn, awaiting async ones; never raises."""
        impls = getattr(self._pm.hook, hook_name).get_hookimpls()
        for impl in reversed(impls):
            args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
            try:
                outcome = impl.function(**args)
                if inspect.isawaitable(outcome):
                    async with asyncio.timeout(self._timeout):
                        await outcome
            except TimeoutError:
                self._fail(impl.plugin_name, hook_name, f"no return within {self._timeout:g}s")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(impl.plugin_name, hook_name, f"{type(exc).__name__}: {exc}")
                log.debug("plugin traceback", exc_info=True)

    def fire(self, hook_name: str, **kwargs: Any) -> None:
        """Call the hook in the background (for per-run notifications)."""
        task = asyncio.get_running_loop().create_task(self.call(hook_name, **kwargs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background notifications still in flight."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self._timeout)
