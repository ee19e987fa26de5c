"""The whole plugin contract: every ``probed_*`` hook, typed and documented.

Hooks are grouped by lifecycle phase; the order commands call them in is the list under "Hook
order" in docs/plugins.md (tests/test_hook_order.py checks it against real runs). pluggy
never awaits, so hooks that *return* things are plain functions. The lifecycle and
notification hooks (``probed_configure``, ``probed_startup``, ``probed_shutdown``,
``probed_check_result``, ``probed_check_state_changed``) are isolated: an implementation that
raises is logged and counted and the others still run; those that may be ``async def`` are
awaited one at a time, each under ``hook_timeout``.

Every call goes through pluggy, so ``@hookimpl(wrapper=True)`` (or ``hookwrapper=True``)
implementations wrap it; for an ``async def`` implementation that is the call creating its
coroutine, which probed awaits afterwards.

Implement hooks with :data:`probed.hookimpl`; every parameter is optional in an implementation
(pluggy passes only the ones you name).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from aiohttp import web
    from prometheus_client.registry import Collector

    from probed.check import Check, Result, Status
    from probed.settings import Settings
    from probed.spec import CheckSpec
    from probed.state import StateStore

PROJECT_NAME = "probed"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

# -- registration: called once per plugin manager ---------------------------------------------


@hookspec
def probed_register_check_types() -> Iterable[type[Check[Any]]]:
    """Return the check types (``Check`` subclasses) this plugin provides.

    Two plugins registering the same ``type_name`` stop startup with an error naming both.

    :return: an iterable of ``Check`` subclasses.
    """


@hookspec
def probed_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``probed`` command line.

    Called only when the command name on the command line is not a built-in one (and for
    ``probed --help``), so built-in commands build a single plugin manager.

    :param cli: a click group for the added commands; call ``cli.add_command(...)``.
    """


# -- configuration: called on every (re)load ---------------------------------------------------


@hookspec
def probed_configure(settings: Settings, plugin_config: Mapping[str, Any]) -> None:
    """Read daemon settings and the ``plugins:`` section of ``probed.yaml``.

    Called first by ``probed run``, ``once`` and ``gate``, and by each reload that read the
    settings without error, before checks are discovered, loaded and (re)scheduled.

    Every plugin receives the *whole* ``plugins:`` mapping (the same object for all), not only
    its own entry: read your section with ``plugin_config.get("myplugin") or {}``, under a key
    of your choosing (conventionally the plugin's name; the Sentry plugin uses ``sentry``).
    probed does not validate what is inside; validate it yourself (a pydantic model) and raise
    to report a problem. The mapping is ``{}`` when ``probed.yaml`` has no ``plugins:`` or
    there is no ``probed.yaml``.

    :param settings: the daemon settings (listen address, directories, limits).
    :param plugin_config: the whole ``plugins:`` mapping of ``probed.yaml``, keyed by whatever
        keys the file uses (read-only; do not modify it).
    """


@hookspec
def probed_discover_checks(settings: Settings) -> Iterable[Mapping[str, Any]]:
    """Return extra check definitions, in the same shape as an entry of ``checks:``.

    Use it for service discovery. Each definition is validated like one from a file; an invalid
    one is reported as coming from ``<plugin:NAME>`` and skipped, the others still load.

    :param settings: the daemon settings.
    :return: an iterable of raw check mappings (``name``, ``type``, options...).
    """


# -- serving: called once when the HTTP app is built -------------------------------------------


@hookspec
def probed_register_routes(states: StateStore) -> Iterable[web.AbstractRouteDef]:
    """Return extra aiohttp routes served beside ``/metrics`` and ``/health/*``.

    :param states: read-only access to every check's current state.
    :return: route definitions, e.g. ``[web.get("/my/path", handler)]``.
    """


@hookspec
def probed_register_collectors(states: StateStore) -> Iterable[Collector]:
    """Return extra prometheus_client collectors exposed on ``/metrics``.

    :param states: read-only access to every check's current state.
    :return: collectors; their ``collect()`` runs at scrape time and must not block.
    """


# -- lifecycle: may be async -------------------------------------------------------------------


@hookspec
def probed_startup(settings: Settings, states: StateStore) -> Awaitable[None] | None:
    """The configuration is loaded and no check has run yet.

    In ``probed run`` this is before serving and scheduling; in ``probed once`` and
    ``probed gate`` before the first run.

    :param settings: the daemon settings.
    :param states: read-only access to every check's state.
    """


@hookspec
def probed_shutdown(settings: Settings) -> Awaitable[None] | None:
    """probed is stopping (the last hook of a command); release what ``probed_startup``
    acquired."""


# -- notifications: may be async, called for every run / transition ----------------------------


@hookspec
def probed_check_result(spec: CheckSpec, result: Result) -> Awaitable[None] | None:
    """A check finished a run. Called for every run: keep it cheap.

    :param spec: the check's configuration.
    :param result: what the run saw (secrets already redacted from the message).
    """


@hookspec
def probed_check_state_changed(
    spec: CheckSpec, old: Status, new: Status, result: Result
) -> Awaitable[None] | None:
    """A check's thresholded status changed (for example ``ok`` to ``fail``).

    :param spec: the check's configuration.
    :param old: the status before; ``unknown`` before the first verdict.
    :param new: the status now.
    :param result: the run that caused the change.
    """
