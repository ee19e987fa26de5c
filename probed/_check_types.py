"""Check type entries, and the built-in types whose modules are imported on first use.

:data:`BUILTIN_TYPES` names the type each built-in check module registers (and the optional
modules it ``requires``), so a plugin manager can list, disable and check the built-in types for
duplicates without importing their modules: in their place it registers a :class:`LazyBuiltin`
under the module's name, and a type's module is imported the first time its class is needed
(a check of that type is configured, or something lists every type: ``probed plugins``, the
schema). A daemon running only the embedded host checks imports three of the eighteen.

Objects that depend on which types are loaded (the daemon's type-specific metric families)
:func:`watch` for new ones.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import weakref
from typing import Any, Final, Protocol

from probed.check import Check, CheckOptions
from probed.errors import PluginError
from probed.hookspecs import hookimpl

__all__ = ["BUILTIN_TYPES", "CheckTypeInfo", "LazyBuiltin", "validate_type", "watch"]

BUILTIN_TYPES: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "probed.checks.http": ("http", ()),
    "probed.checks.tcp": ("tcp", ()),
    "probed.checks.json_api": ("json_api", ()),
    "probed.checks.dns": ("dns", ("dns",)),
    "probed.checks.icmp": ("icmp", ("icmplib",)),
    "probed.checks.postgres": ("postgres", ("asyncpg",)),
    "probed.checks.redis": ("redis", ("redis",)),
    "probed.checks.disk": ("disk", ()),
    "probed.checks.cpu": ("cpu", ()),
    "probed.checks.memory": ("memory", ()),
    "probed.checks.grpc": ("grpc", ("grpc", "grpc_health")),
    "probed.checks.tls": ("tls", ()),
    "probed.checks.exec": ("exec", ()),
    "probed.checks.smtp": ("smtp", ()),
    "probed.checks.websocket": ("websocket", ()),
    "probed.checks.ssh": ("ssh", ()),
    "probed.checks.mysql": ("mysql", ("aiomysql",)),
    "probed.checks.heartbeat": ("heartbeat", ()),
}
"""Built-in check module -> (the one type it registers, its class's ``requires``). A test
keeps it equal to what the modules register."""

_TYPE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]*")
_METRIC_NAME_RE: Final = re.compile(r"probed_[a-zA-Z0-9_]+")


class Watcher(Protocol):
    """Told when a built-in type's class has been loaded."""

    def refresh(self) -> None:
        """Take the newly loaded type into account."""


_WATCHERS: weakref.WeakSet[Watcher] = weakref.WeakSet()


def watch(watcher: Watcher) -> None:
    """Call ``watcher.refresh()`` whenever a built-in type's class is loaded (held weakly)."""
    _WATCHERS.add(watcher)


def validate_type(cls: object, plugin: str) -> type[Check[Any]]:
    """``cls`` if it is a well-formed check type; ``plugin`` is ``plugin 'NAME' (ORIGIN)``."""
    if not (inspect.isclass(cls) and issubclass(cls, Check)):
        raise PluginError(
            f"{plugin}: probed_register_check_types returned {cls!r}, which is not a Check subclass"
        )
    type_name = getattr(cls, "type_name", None)
    if not isinstance(type_name, str) or not _TYPE_NAME_RE.fullmatch(type_name):
        raise PluginError(
            f"{plugin}: {cls.__name__}.type_name must match [a-z][a-z0-9_]*, got {type_name!r}"
        )
    if not (inspect.isclass(cls.options_model) and issubclass(cls.options_model, CheckOptions)):
        raise PluginError(f"{plugin}: {cls.__name__}.options_model must subclass CheckOptions")
    for metric in cls.metrics:
        if not _METRIC_NAME_RE.fullmatch(metric.name):
            raise PluginError(
                f"{plugin}: metric {metric.name!r} of type {type_name!r} must start "
                "with 'probed_' and use only letters, digits and underscores"
            )
    return cls


class LazyBuiltin:
    """The plugin registered under a built-in check module's name in place of the module.

    It implements the module's one hook, ``probed_register_check_types``, by importing the
    module; probed itself reads the type's name from :data:`BUILTIN_TYPES` and imports the
    module only when the class is needed (:meth:`resolve`).
    """

    def __init__(self, module: str) -> None:
        self.module = module
        self.type_name, self.requires = BUILTIN_TYPES[module]
        self.loaded: type[Check[Any]] | None = None

    def __repr__(self) -> str:
        return f"<built-in check type {self.type_name!r} from {self.module}>"

    def resolve(self) -> type[Check[Any]]:
        """The type's class, importing its module the first time.

        :raises PluginError: the module does not register exactly the type listed for it.
        """
        if self.loaded is None:
            where = f"plugin {self.module!r} (built in)"
            registered = importlib.import_module(self.module).probed_register_check_types()
            classes = [validate_type(cls, where) for cls in registered]
            if [cls.type_name for cls in classes] != [self.type_name]:
                raise PluginError(
                    f"{where}: registers {[cls.type_name for cls in classes]}, not "
                    f"[{self.type_name!r}] as probed._check_types.BUILTIN_TYPES says"
                )
            self.loaded = classes[0]
            for watcher in list(_WATCHERS):
                watcher.refresh()
        return self.loaded

    @hookimpl
    def probed_register_check_types(self) -> list[type[Check[Any]]]:
        """The module's check type (importing it)."""
        return [self.resolve()]


class CheckTypeInfo:
    """A registered check type and the plugin that provides it.

    ``CheckTypeInfo(cls, plugin)``; a built-in type's entry (:meth:`builtin`) imports its
    module the first time :attr:`cls` is read.
    """

    __slots__ = ("_cls", "_lazy", "_plugin")

    def __init__(self, cls: type[Check[Any]], plugin: str) -> None:
        self._cls: type[Check[Any]] | None = cls
        self._lazy: LazyBuiltin | None = None
        self._plugin = plugin

    @classmethod
    def builtin(cls, lazy: LazyBuiltin, plugin: str) -> CheckTypeInfo:
        """The entry of a built-in type, its module not imported yet."""
        info = cls.__new__(cls)
        info._cls = None
        info._lazy = lazy
        info._plugin = plugin
        return info

    @property
    def plugin(self) -> str:
        """The name of the plugin providing the type."""
        return self._plugin

    @property
    def cls(self) -> type[Check[Any]]:
        """The ``Check`` subclass (a built-in type's module is imported the first time)."""
        if self._cls is None:
            assert self._lazy is not None
            self._cls = self._lazy.resolve()
        return self._cls

    @property
    def loaded(self) -> bool:
        """Whether :attr:`cls` can be read without importing anything."""
        return self._cls is not None or (self._lazy is not None and self._lazy.loaded is not None)

    @property
    def identity(self) -> str:
        """Which class this is, without importing it: its module for a built-in type (the
        same before and after the import), the class's ``id`` otherwise."""
        return self._lazy.module if self._lazy is not None else str(id(self._cls))

    @property
    def requires(self) -> tuple[str, ...]:
        """The class's ``requires`` (from :data:`BUILTIN_TYPES` for a built-in type whose
        module is not imported yet)."""
        lazy = self._lazy
        if self._cls is None and lazy is not None and lazy.module not in sys.modules:
            return lazy.requires
        return self.cls.requires

    @property
    def missing_module(self) -> str | None:
        """The first module in ``requires`` that does not import, or ``None`` if all do."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return module
        return None

    @property
    def available(self) -> bool:
        """Whether every module in ``requires`` imports (the type can run here)."""
        return self.missing_module is None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CheckTypeInfo):
            return NotImplemented
        return (self.cls, self.plugin) == (other.cls, other.plugin)

    def __hash__(self) -> int:
        return hash((self.cls, self.plugin))

    def __repr__(self) -> str:
        shown = repr(self._cls) if self._cls is not None else repr(self._lazy)
        return f"CheckTypeInfo(cls={shown}, plugin={self._plugin!r})"
