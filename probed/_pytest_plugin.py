"""probed's pytest plugin (the ``pytest11`` entry point ``probed``): fixtures for plugin tests.

Installing probed makes these fixtures available to every test; all are synchronous (servers
run in threads, the daemon in a subprocess), so no asyncio plugin is needed:

- ``probed_plugins(plugins_dir=None, *, modules=(), builtins=False, entry_points=False)``:
  a plugin manager with exactly those plugins (:func:`probed.testing.load_plugins`);
- ``probed_tcp_server(handler=None, *, greeting=b"", reply=None, hold=False)``: a TCP
  server on 127.0.0.1;
- ``probed_http_server(routes)``: an HTTP server on 127.0.0.1 recording its requests;
- ``probed_daemon(checks_dir, *, plugins_dir=None, config="", args=())``: a real
  ``probed run`` on a free port, returned as a :class:`probed.testing.RunningDaemon`.

Each fixture is a factory: call it as often as the test needs; everything it started is
stopped after the test. This module imports nothing of probed until a fixture is used (it is
loaded by every pytest run in an environment where probed is installed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["probed_daemon", "probed_http_server", "probed_plugins", "probed_tcp_server"]


@pytest.fixture
def probed_plugins() -> Callable[..., Any]:
    """Factory: ``probed_plugins(plugins_dir, modules=[...])`` -> a plugin manager."""
    from probed.testing import load_plugins

    return load_plugins


@pytest.fixture
def probed_tcp_server() -> Iterator[Callable[..., Any]]:
    """Factory: ``probed_tcp_server(greeting=b"220 ready\\r\\n")`` -> a started server
    (``.host``, ``.port``, ``.connections``)."""
    from probed.testing import tcp_server

    with contextlib.ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(tcp_server(*args, **kwargs))


@pytest.fixture
def probed_http_server() -> Iterator[Callable[..., Any]]:
    """Factory: ``probed_http_server({"/health": (200, "ok")})`` -> a started server
    (``.url``, ``.port``, ``.requests``)."""
    from probed.testing import http_server

    with contextlib.ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(http_server(*args, **kwargs))


@pytest.fixture
def probed_daemon() -> Iterator[Callable[..., Any]]:
    """Factory: ``probed_daemon(checks_dir, plugins_dir=...)`` -> a running daemon with a client
    (``.get(path)``, ``.metrics()``, ``.metric(name, **labels)``, ``.checks()``,
    ``.wait_for(predicate)``, ``.stop()``)."""
    from probed.testing import start_daemon

    with contextlib.ExitStack() as stack:
        yield lambda *args, **kwargs: stack.enter_context(start_daemon(*args, **kwargs))
