"""Helpers for testing check types, built-in or your own plugin's; also a pytest plugin.

::

    from probed.testing import run_check_sync

    def test_my_check_passes(probed_http_server):
        server = probed_http_server({"/": (200, "ok")})
        result = run_check_sync(MyCheck, url=server.url + "/")
        assert result.status is Status.OK

``run_check`` (async) and ``run_check_sync`` validate the options with the type's model and
run the check through the same wrapper the daemon uses, so timeouts and exceptions behave
exactly as in production. Installing probed registers the fixtures of
:mod:`probed._pytest_plugin` with pytest (``probed_plugins``, ``probed_tcp_server``,
``probed_http_server``, ``probed_daemon``); none needs an asyncio plugin.

- :func:`load_plugins`: a plugin manager over a plugins directory and/or modules, without the
  installed entry points unless asked, and :func:`check_type` to get one type from it;
- :func:`tcp_server`, :func:`http_server`: real servers on 127.0.0.1, served by threads;
- :func:`start_daemon`: a real ``probed run`` on a free port, with a client;
- :func:`metric_value`: one sample of a ``/metrics`` text, parsed by prometheus_client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from probed.check import Check, Result
from probed.common import COMMON_KEYS, common_values
from probed.plugins import ProbedPluginManager, check_types, get_plugin_manager
from probed.runner import execute
from probed.spec import CheckSpec
from probed.testing_daemon import (
    Answer,
    RunningDaemon,
    free_port,
    metric_value,
    start_daemon,
    wait_until,
)
from probed.testing_servers import HTTPRequest, LoopbackServer, http_server, tcp_server

__all__ = [
    "Answer",
    "HTTPRequest",
    "LoopbackServer",
    "RunningDaemon",
    "check_type",
    "free_port",
    "http_server",
    "load_plugins",
    "make_spec",
    "metric_value",
    "run_check",
    "run_check_sync",
    "start_daemon",
    "tcp_server",
    "wait_until",
]


def make_spec(
    check_type: type[Check[Any]],
    *,
    name: str = "test",
    interval: float | str = 10.0,
    timeout: float | str = 5.0,
    **values: Any,
) -> CheckSpec:
    """Build a :class:`CheckSpec` for ``check_type`` as a check file would.

    :param values: any other common key (``labels``, ``readiness``, ``failure_threshold``...,
        see :data:`probed.common.COMMON_KEYS`) and the type's options, as they would appear
        in YAML; the options are validated by the type's model.
    :raises ValueError: a common key's value is invalid.
    """
    common = {k: values.pop(k) for k in COMMON_KEYS if k in values}
    common.update(name=name, type=check_type.type_name, interval=interval, timeout=timeout)
    return CheckSpec(
        **common_values(common, timing=False),
        options=check_type.options_model.model_validate(values),
    )


async def run_check(
    check_type: type[Check[Any]], *, timeout: float = 5.0, **options: Any
) -> Result:
    """Validate ``options``, run one check of ``check_type`` once as the daemon would, close it.

    :param check_type: the ``Check`` subclass.
    :param timeout: the run's timeout in seconds.
    :param options: the type-specific options, as they would appear in YAML.
    :return: the result, with ``duration`` and ``timestamp`` filled.
    """
    spec = make_spec(check_type, timeout=timeout, interval=max(timeout * 2, 1.0), **options)
    check = check_type(spec)
    try:
        return await execute(check, timeout)
    finally:
        await check.close()


def run_check_sync(check_type: type[Check[Any]], *, timeout: float = 5.0, **options: Any) -> Result:
    """:func:`run_check` for plain (synchronous) tests: runs it on a fresh event loop.

    :raises RuntimeError: called from a running event loop (use ``await run_check`` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_check(check_type, timeout=timeout, **options))
    raise RuntimeError("run_check_sync called from a running event loop: await run_check(...)")


def load_plugins(
    plugins_dir: Path | str | None = None,
    *,
    modules: Iterable[object] = (),
    builtins: bool = False,
    entry_points: bool = False,
) -> ProbedPluginManager:
    """A plugin manager with exactly the plugins asked for, as the daemon would load them.

    :param plugins_dir: a directory of drop-in plugin files (``*.py``).
    :param modules: plugin modules (or objects with ``@hookimpl`` functions) to register,
        e.g. your package's ``plugin`` module; named after the module.
    :param builtins: also load probed's built-in check types (``http``, ``tcp``...).
    :param entry_points: also load installed packages' ``probed`` entry points (off: the
        result does not depend on what else is installed, and an installed copy of the plugin
        under test does not collide with the one loaded here).
    :raises probed.PluginError: a plugin fails to load (the message names it and the fix).
    """
    extra = [(getattr(m, "__name__", type(m).__name__).rpartition(".")[2], m) for m in modules]
    return get_plugin_manager(
        plugins_dirs=[Path(plugins_dir)] if plugins_dir is not None else [],
        entry_points=entry_points,
        extra=extra,
        **({} if builtins else {"builtins": ()}),
    )


def check_type(pm: ProbedPluginManager, name: str) -> type[Check[Any]]:
    """The ``Check`` class registered as ``type: name``.

    :raises KeyError: no plugin registered it (the message lists those that exist).
    """
    types = check_types(pm)
    if name not in types:
        raise KeyError(f"no check type {name!r}; registered: {', '.join(sorted(types)) or 'none'}")
    return types[name].cls
