"""Plugin loading: ``DEFAULT_PLUGINS``, the plugin manager factory and the check type registry.

Three doors, one mechanism: built-in modules listed in :data:`DEFAULT_PLUGINS`, packages
advertising the ``probed`` entry-point group, and one-file plugins in ``--plugins-dir``. Each is
registered with pluggy under a name (module path, entry-point name, or file stem) that
``--disable-plugin NAME`` blocks.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pluggy

from probed import hookspecs
from probed.check import Check, CheckOptions
from probed.errors import PluginError

__all__ = [
    "DEFAULT_PLUGINS",
    "CheckTypeInfo",
    "PluginInfo",
    "call_each",
    "check_types",
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
    "probed.integrations.sentry",
)
"""Built-in plugins, registered in this order before entry points and drop-ins."""

ENTRY_POINT_GROUP: Final = "probed"
_TYPE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]*")
_METRIC_NAME_RE: Final = re.compile(r"probed_[a-zA-Z0-9_]+")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    origin: str  # "builtin", "entrypoint" or "directory"
    location: str
    version: str
    hooks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckTypeInfo:
    """A registered check type and the plugin that provides it."""

    cls: type[Check[Any]]
    plugin: str

    @property
    def available(self) -> str | None:
        """``None`` if every module in ``requires`` imports, else the missing module's name."""
        for module in self.cls.requires:
            if importlib.util.find_spec(module) is None:
                return module
        return None


def _module_from_file(path: Path) -> ModuleType:
    name = f"probed_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def get_plugin_manager(
    *,
    plugins_dirs: Sequence[Path] = (),
    disabled: Iterable[str] = (),
    builtins: Sequence[str] = DEFAULT_PLUGINS,
    entry_points: bool = True,
    extra: Sequence[tuple[str, object]] = (),
) -> pluggy.PluginManager:
    """Build a fresh plugin manager with every plugin from the three doors.

    :param plugins_dirs: directories whose ``*.py`` files (not starting with ``_``) are plugins.
    :param disabled: plugin names to block (``probed plugins`` lists the names).
    :param builtins: the built-in plugin modules (tests may narrow this).
    :param entry_points: whether to load the ``probed`` entry-point group.
    :param extra: ``(name, plugin)`` pairs to register as well (used by tests and embedding).
    :raises PluginError: a plugin fails to import, implements an unknown hook, or two plugins
        register the same check type.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    origins: dict[str, tuple[str, str]] = {}
    for module_name in builtins:
        if pm.is_blocked(module_name):
            continue
        module = importlib.import_module(module_name)
        pm.register(module, name=module_name)
        origins[module_name] = ("builtin", module_name)
    if entry_points:
        before = set(pm.get_plugins())
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            raise PluginError(f"loading entry-point plugins failed: {exc}") from exc
        for plugin in set(pm.get_plugins()) - before:
            name = pm.get_name(plugin) or "?"
            origins[name] = ("entrypoint", getattr(plugin, "__file__", name))
    for directory in plugins_dirs:
        if not directory.is_dir():
            raise PluginError(f"--plugins-dir {directory}: not a directory")
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_") or pm.is_blocked(path.stem):
                continue
            if pm.has_plugin(path.stem):
                raise PluginError(f"{path}: a plugin named {path.stem!r} is already registered")
            pm.register(_module_from_file(path), name=path.stem)
            origins[path.stem] = ("directory", str(path))
    for name, plugin in extra:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
            origins[name] = ("embedded", repr(plugin))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(
            f"plugin {exc.plugin!r} implements a hook probed does not define: {exc}"
        ) from exc
    pm.probed_origins = origins  # type: ignore[attr-defined]
    check_types(pm)  # fail fast on duplicate or malformed check types
    return pm


def call_each(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of a hook separately; return ``(plugin_name, result)`` pairs.

    Unlike a plain pluggy call, the caller learns which plugin returned what, and can isolate
    failures per plugin. Arguments an implementation does not name are not passed.
    """
    caller = getattr(pm.hook, hook_name)
    out: list[tuple[str, Any]] = []
    for impl in reversed(caller.get_hookimpls()):
        args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
        out.append((impl.plugin_name, impl.function(**args)))
    return out


def _validate_type(cls: object, plugin: str) -> type[Check[Any]]:
    if not (inspect.isclass(cls) and issubclass(cls, Check)):
        raise PluginError(f"plugin {plugin!r} registered {cls!r}, which is not a Check subclass")
    type_name = getattr(cls, "type_name", None)
    if not isinstance(type_name, str) or not _TYPE_NAME_RE.fullmatch(type_name):
        raise PluginError(
            f"plugin {plugin!r}: {cls.__name__}.type_name must match [a-z][a-z0-9_]*, "
            f"got {type_name!r}"
        )
    if not (inspect.isclass(cls.options_model) and issubclass(cls.options_model, CheckOptions)):
        raise PluginError(
            f"plugin {plugin!r}: {cls.__name__}.options_model must subclass CheckOptions"
        )
    for metric in cls.metrics:
        if not _METRIC_NAME_RE.fullmatch(metric.name):
            raise PluginError(
                f"plugin {plugin!r}: metric {metric.name!r} of type {type_name!r} must start "
                "with 'probed_' and use only letters, digits and underscores"
            )
    return cls


def check_types(pm: pluggy.PluginManager) -> dict[str, CheckTypeInfo]:
    """Collect every registered check type by ``type_name``.

    :raises PluginError: two plugins register the same type name (both are named).
    """
    found: dict[str, CheckTypeInfo] = {}
    for plugin, classes in call_each(pm, "probed_register_check_types"):
        for raw in classes or ():
            cls = _validate_type(raw, plugin)
            if cls.type_name in found:
                other = found[cls.type_name].plugin
                raise PluginError(
                    f"check type {cls.type_name!r} is registered by both plugin {other!r} and "
                    f"plugin {plugin!r}; disable one with --disable-plugin"
                )
            found[cls.type_name] = CheckTypeInfo(cls, plugin)
    return found


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


def plugin_infos(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Describe every registered plugin: name, origin, location, version and hooks."""
    origins: dict[str, tuple[str, str]] = getattr(pm, "probed_origins", {})
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        origin, location = origins.get(name, ("embedded", name))
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        infos.append(PluginInfo(name, origin, location, _version_of(plugin), hooks))
    return infos
