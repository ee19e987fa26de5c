"""Plugin loading: ``DEFAULT_PLUGINS``, the plugin manager factory and the check type registry.

Three doors, one mechanism: built-in modules listed in :data:`DEFAULT_PLUGINS`, packages
advertising the ``probed`` entry-point group, and one-file plugins in ``--plugins-dir``. Each is
registered with pluggy under a name (module path, entry-point name, or file stem) that
``--disable-plugin NAME`` blocks. A built-in check type's module is imported only when the type
is used (see :mod:`probed._check_types`); until then a stand-in is registered under its name.

Every hook call goes through pluggy's executor (:meth:`ProbedPluginManager.call_hook`), so
``wrapper=True`` and old-style ``hookwrapper=True`` implementations wrap the call as they would
in pytest; probed only adds which plugin returned what and, where asked, per-implementation
isolation of exceptions.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pluggy

from probed import hookspecs
from probed._check_types import BUILTIN_TYPES, CheckTypeInfo, LazyBuiltin, validate_type
from probed._plugin_load import load_entry_points, module_from_file, register
from probed.errors import PluginError

if TYPE_CHECKING:
    from probed.settings import Settings

__all__ = [
    "DEFAULT_PLUGINS",
    "CheckTypeInfo",
    "PluginInfo",
    "ProbedPluginManager",
    "check_types",
    "describe_plugins",
    "discover_checks",
    "get_plugin_manager",
    "plugin_infos",
]

log = logging.getLogger("probed.plugins")

DEFAULT_PLUGINS: Final[tuple[str, ...]] = (
    "probed.checks.http",
    "probed.checks.tcp",
    "probed.checks.json_api",
    "probed.checks.dns",
    "probed.checks.icmp",
    "probed.checks.postgres",
    "probed.checks.redis",
    "probed.checks.disk",
    "probed.checks.cpu",
    "probed.checks.memory",
    "probed.checks.grpc",
    "probed.checks.tls",
    "probed.checks.exec",
    "probed.checks.smtp",
    "probed.checks.websocket",
    "probed.checks.ssh",
    "probed.checks.mysql",
    "probed.checks.heartbeat",
    "probed.integrations.sentry",
    "probed.notifications",
)
"""Built-in plugins, registered in this order before entry points and drop-ins."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    origin: str  # "builtin", "entrypoint" or "directory"
    location: str
    version: str
    hooks: tuple[str, ...]


OnError = Callable[[str, Exception], None]
"""Told ``(plugin name, exception)`` when an implementation fails in an isolated call."""


@dataclass(slots=True)
class _Call:
    """One isolated hook call in progress: what each implementation returned."""

    on_error: OnError | None
    returned: list[tuple[str, object]]


_CALL: contextvars.ContextVar[_Call] = contextvars.ContextVar("probed_hook_call")


def _recording(impl: pluggy.HookImpl) -> pluggy.HookImpl:
    """``impl`` with a function that records what it returns (and, if the call asks, catches
    what it raises); pluggy sees the same arguments, options and plugin."""
    function = impl.function

    @functools.wraps(function)  # pluggy reads the argument names through __wrapped__
    def record(*args: object) -> object:
        call = _CALL.get()
        if call.on_error is None:
            value = function(*args)
        else:
            try:
                value = function(*args)
            except Exception as exc:  # isolated: reported, the other implementations still run
                call.on_error(impl.plugin_name, exc)
                return None
        if value is not None:  # pluggy leaves None out of the result too
            call.returned.append((impl.plugin_name, value))
        return value

    recorded = pluggy.HookImpl(impl.plugin, impl.plugin_name, record, impl.opts)
    assert recorded.argnames == impl.argnames, (impl, recorded.argnames)
    return recorded


class ProbedPluginManager(pluggy.PluginManager):
    """pluggy's plugin manager with probed's hookspecs, where each plugin came from, and
    the one way probed calls a hook (:meth:`call_hook`)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, tuple[str, str]] = {}
        """Plugin name -> (origin, location): ``builtin``, ``entrypoint``, ``directory`` or
        ``embedded``, and the module, file or object it came from."""
        self.packages: dict[str, str] = {}
        """Entry-point plugin name -> ``distribution version`` that installed it."""
        self.warnings: list[str] = []
        """Mistakes that do not stop loading (a ``probed_*`` function without ``@hookimpl``),
        one line each; the commands print them as ``probed: warning: ...``."""
        # Per hook: the implementations as called (non-wrappers recording) and firstresult;
        # per manager: the check types. Both are dropped whenever the plugins change.
        self._calls: dict[str, tuple[list[pluggy.HookImpl], bool]] = {}
        self._check_types: dict[str, CheckTypeInfo] | None = None

    def where(self, name: str) -> str:
        """``plugin 'NAME' (ORIGIN)``: how errors name a plugin and where it came from."""
        origin, location = self.origins.get(name, ("embedded", ""))
        if name in self.packages:
            place = f"installed package {self.packages[name]}"
        elif origin == "directory":
            place = f"drop-in file {location}"
        elif origin == "builtin":
            place = "built in"
        else:
            place = origin
        return f"plugin {name!r} ({place})"

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (see pluggy); forgets what was cached about the hooks."""
        self._forget()
        return super().register(plugin, name)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        """Unregister ``plugin`` (see pluggy); forgets what was cached about the hooks."""
        self._forget()
        return super().unregister(plugin, name)

    def _forget(self) -> None:
        self._calls = {}
        self._check_types = None

    def _prepared(self, hook_name: str) -> tuple[list[pluggy.HookImpl], bool]:
        """The hook's implementations, each non-wrapper one recording, and whether it is a
        firstresult hook (cached until the plugins change: per-run notifications are a hot
        path)."""
        prepared = self._calls.get(hook_name)
        if prepared is None:
            hook: pluggy.HookCaller = getattr(self.hook, hook_name)
            impls = [
                i if i.wrapper or i.hookwrapper else _recording(i) for i in hook.get_hookimpls()
            ]
            firstresult = bool(hook.spec and hook.spec.opts.get("firstresult"))
            prepared = self._calls[hook_name] = (impls, firstresult)
        return prepared

    def call_hook(
        self, hook_name: str, /, *, on_error: OnError | None = None, **kwargs: Any
    ) -> list[tuple[str, Any]]:
        """Call a hook through pluggy; return ``(plugin name, value)`` per value in the result.

        Implementations run in pluggy's order and wrappers (``wrapper=True`` or
        ``hookwrapper=True``) wrap the whole call, exactly as ``pm.hook.NAME(**kwargs)``; the
        result is pluggy's (``None`` values left out, a wrapper may change it), each value
        paired with the plugin whose implementation returned it (a value a wrapper made up is
        paired with the wrapper's plugin).

        :param on_error: isolate implementations: one that raises is reported here and left
            out, the others still run. An exception from a wrapper is reported too (with the
            wrappers' names), and the implementations' values are returned. Without it, an
            exception goes through the wrappers to the caller, as in pluggy.
        """
        impls, firstresult = self._prepared(hook_name)
        return self._call(hook_name, impls, firstresult, on_error, kwargs)

    def _call(
        self,
        hook_name: str,
        impls: list[pluggy.HookImpl],
        firstresult: bool,
        on_error: OnError | None,
        kwargs: dict[str, Any],
    ) -> list[tuple[str, Any]]:
        """:meth:`call_hook` with these of the hook's (prepared) implementations."""
        call = _Call(on_error, [])
        token = _CALL.set(call)
        try:
            # pluggy's own executor, the one hook(**kwargs) uses (so tracing sees the call);
            # pluggy has no public call taking an adjusted implementation list.
            outcome = self._hookexec(hook_name, impls, kwargs, firstresult)
        except Exception as exc:
            if on_error is None:
                raise
            wrappers = [i.plugin_name for i in impls if i.wrapper or i.hookwrapper]
            on_error("+".join(wrappers) or "?", exc)
            return call.returned
        finally:
            _CALL.reset(token)
        if firstresult:
            values = [] if outcome is None else [outcome]
        else:
            assert isinstance(outcome, list)
            values = outcome
        return _attribute(values, call.returned, impls)


def _attribute(
    values: list[Any], returned: list[tuple[str, object]], impls: list[pluggy.HookImpl]
) -> list[tuple[str, Any]]:
    """Pair each value of a hook's result with the plugin that returned it."""
    if len(values) == len(returned):
        for value, (_, mine) in zip(values, returned, strict=True):
            if value is not mine:
                break
        else:
            return returned  # the usual case: no wrapper changed the result
    left = list(returned)
    wrapper = next((i.plugin_name for i in impls if i.wrapper or i.hookwrapper), "?")
    out: list[tuple[str, Any]] = []
    for value in values:
        match = next((k for k, (_, v) in enumerate(left) if v is value), None)
        out.append((wrapper, value) if match is None else left.pop(match))
    for _, dropped in left:  # a wrapper left it out: it will not be awaited
        if inspect.iscoroutine(dropped):
            dropped.close()
    return out


def get_plugin_manager(
    *,
    plugins_dirs: Sequence[Path] = (),
    disabled: Iterable[str] = (),
    builtins: Sequence[str] = DEFAULT_PLUGINS,
    entry_points: bool = True,
    extra: Sequence[tuple[str, object]] = (),
) -> ProbedPluginManager:
    """Build a fresh plugin manager with every plugin from the three doors.

    :param plugins_dirs: directories whose ``*.py`` files (not starting with ``_``) are plugins.
    :param disabled: plugin names to block (``probed plugins`` lists the names).
    :param builtins: the built-in plugin modules (tests may narrow this).
    :param entry_points: whether to load the ``probed`` entry-point group.
    :param extra: ``(name, plugin)`` pairs to register as well (used by tests and embedding).
    :raises PluginError: a plugin fails to import, implements an unknown hook, or two plugins
        register the same check type.
    """
    pm = ProbedPluginManager()
    for name in disabled:
        pm.set_blocked(name)
    for module_name in builtins:
        if pm.is_blocked(module_name):
            continue
        # A built-in check type's module is imported when the type is first used.
        plugin: object = (
            LazyBuiltin(module_name)
            if module_name in BUILTIN_TYPES
            else importlib.import_module(module_name)
        )
        register(pm, plugin, module_name, ("builtin", module_name))
    if entry_points:
        load_entry_points(pm)
    for directory in plugins_dirs:
        if not directory.is_dir():
            raise PluginError(f"--plugins-dir {directory}: not a directory")
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_") or pm.is_blocked(path.stem):
                continue
            if pm.has_plugin(path.stem):
                raise PluginError(
                    f"{path}: a plugin named {path.stem!r} is already registered: "
                    f"{pm.where(path.stem)}; rename the file"
                )
            register(pm, module_from_file(path), path.stem, ("directory", str(path)))
    for name, plugin in extra:
        if not pm.is_blocked(name):
            register(pm, plugin, name, ("embedded", repr(plugin)))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:  # hook_problems found the usual cases first
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(
            f"{pm.where(name)}: implements a hook probed does not define: "
            f"{' '.join(str(exc).split())}"
        ) from exc
    check_types(pm)  # fail fast on duplicate or malformed check types
    return pm


def check_types(pm: ProbedPluginManager) -> dict[str, CheckTypeInfo]:
    """Every registered check type by ``type_name``.

    ``probed_register_check_types`` is called once per plugin manager (again only if plugins
    are registered or unregistered since).

    :raises PluginError: two plugins register the same type name (both are named).
    """
    if pm._check_types is None:
        pm._check_types = _collect_check_types(pm)
    return dict(pm._check_types)


_REGISTER: Final = "probed_register_check_types"


def _collect_check_types(pm: ProbedPluginManager) -> dict[str, CheckTypeInfo]:
    found: dict[str, CheckTypeInfo] = {}
    failed: list[str] = []

    def on_error(plugin: str, exc: Exception) -> None:
        failed.append(f"{pm.where(plugin)}: {_REGISTER} raised {type(exc).__name__}: {exc}")

    registered = _registered(pm, on_error)
    if failed:
        raise PluginError(failed[0])
    for plugin, classes in registered:
        if isinstance(classes, LazyBuiltin):
            listed: list[Any] = [classes]
        else:
            try:
                listed = list(classes)
            except TypeError:
                raise PluginError(
                    f"{pm.where(plugin)}: {_REGISTER} must return a list of Check "
                    f"subclasses, got {type(classes).__name__}"
                ) from None
        for raw in listed:
            if isinstance(raw, LazyBuiltin):
                name, info = raw.type_name, CheckTypeInfo.builtin(raw, plugin)
            else:
                cls = validate_type(raw, pm.where(plugin))
                name, info = cls.type_name, CheckTypeInfo(cls, plugin)
            if name in found:
                other = found[name].plugin
                raise PluginError(
                    f"check type {name!r} is registered twice: by {pm.where(other)} "
                    f"and by {pm.where(plugin)}; rename one type_name, or disable one "
                    f"plugin with --disable-plugin {other} (or {plugin})"
                )
            found[name] = info
    return found


def _registered(pm: ProbedPluginManager, on_error: OnError) -> list[tuple[str, Any]]:
    """``(plugin, returned)`` of each ``probed_register_check_types`` implementation in the
    order pluggy calls them, where a built-in check module's stand-in (a :class:`LazyBuiltin`)
    is not called but returned itself: its module is imported when its type is used. With a
    wrapper around the hook every implementation is called, as the wrapper may read or change
    the whole result."""
    impls, firstresult = pm._prepared(_REGISTER)
    if any(i.wrapper or i.hookwrapper for i in impls):
        return pm._call(_REGISTER, impls, firstresult, on_error, {})
    lazy = {i.plugin_name: i.plugin for i in impls if isinstance(i.plugin, LazyBuiltin)}
    called = [i for i in impls if i.plugin_name not in lazy]
    returned = dict(pm._call(_REGISTER, called, firstresult, on_error, {}))
    return [  # pluggy calls the last registered first (tryfirst/trylast already sorted)
        (i.plugin_name, lazy.get(i.plugin_name) or returned[i.plugin_name])
        for i in reversed(impls)
        if i.plugin_name in lazy or i.plugin_name in returned
    ]


def discover_checks(pm: ProbedPluginManager, settings: Settings) -> list[tuple[str, Any]]:
    """Every check definition from ``probed_discover_checks``, with the plugin it came from."""
    return [
        (plugin, definition)
        for plugin, definitions in pm.call_hook("probed_discover_checks", settings=settings)
        for definition in definitions
    ]


def _version_of(plugin: object) -> str:
    module = inspect.getmodule(plugin) if not isinstance(plugin, ModuleType) else plugin
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    top = (getattr(module, "__name__", "") or "").split(".")[0]
    if top == "probed":
        from probed import __version__

        return __version__
    try:
        from importlib.metadata import version as dist_version

        return dist_version(top)
    except Exception:
        return "unknown"


def plugin_infos(pm: ProbedPluginManager) -> list[PluginInfo]:
    """Describe every registered plugin: name, origin, location, version and hooks."""
    origins = pm.origins
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        origin, location = origins.get(name, ("embedded", name))
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        infos.append(PluginInfo(name, origin, location, _version_of(plugin), hooks))
    return infos


def describe_plugins(pm: ProbedPluginManager, fmt: str) -> str:
    """``probed plugins``: every plugin and check type, as ``text`` or ``json``."""
    infos = plugin_infos(pm)
    types = sorted(check_types(pm).items())
    if fmt == "json":
        data = {
            "plugins": [dataclasses.asdict(i) for i in infos],
            "check_types": [
                {
                    "type": name,
                    "plugin": t.plugin,
                    "description": t.cls.description,
                    "extra": t.cls.extra,
                    "missing_module": t.missing_module,
                }
                for name, t in types
            ],
        }
        return json.dumps(data, indent=2) + "\n"
    lines = ["Plugins:"]
    lines += [f"  {i.name:<28} {i.version:<10} {i.origin:<10} {i.location}" for i in infos]
    lines.append("\nCheck types:")
    for name, t in types:
        note = "" if t.available else f"  (needs: pip install 'probed[{t.cls.extra}]')"
        lines.append(f"  {name:<12} {t.plugin:<28} {t.cls.description}{note}")
    return "\n".join(lines) + "\n"
