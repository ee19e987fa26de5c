"""Loading one plugin: a drop-in file, an entry point, a module; hook mistakes as one line.

Used by :func:`probed.plugins.get_plugin_manager`; every failure is a :class:`PluginError`
naming the plugin, where it came from (drop-in file, installed package and version, built in)
and the fix.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

import pluggy

from probed._plugin_hint import Manager, hook_problems, unmarked_hooks
from probed.errors import PluginError

__all__ = ["ENTRY_POINT_GROUP", "load_entry_points", "module_from_file", "register"]

ENTRY_POINT_GROUP: Final = "probed"


def module_from_file(path: Path) -> ModuleType:
    name = f"probed_plugin_{path.stem}"
    where = f"plugin {path.stem!r} (drop-in file {path})"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{where}: {path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        line = _line_in(exc, path)
        raise PluginError(
            f"plugin {path.stem!r}: {path}: failed to import: {type(exc).__name__}: {exc}"
            f"{line}; fix the file, or move it out of the plugins directory"
        ) from exc
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """`` (line N)`` of the deepest frame of ``exc`` in ``path`` (a syntax error's), or ``""``."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    line = ""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = f" (line {tb.tb_lineno})"
        tb = tb.tb_next
    return line


def register(pm: Manager, plugin: object, name: str, origin: tuple[str, str]) -> None:
    """Register one plugin; a hook mistake is a one-line :class:`PluginError` naming it."""
    pm.origins[name] = origin
    where = pm.where(name)
    problems = hook_problems(pm, plugin, where)
    if problems:
        raise PluginError(problems[0])
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"{where}: {' '.join(str(exc).split())}") from exc
    pm.warnings += unmarked_hooks(plugin, where)


def load_entry_points(pm: Manager) -> None:
    """The ``probed`` entry-point group, as pluggy loads it, remembering each distribution."""
    from importlib.metadata import distributions

    for dist in list(distributions()):
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            pm.packages[ep.name] = f"{dist.metadata['Name']} {dist.version}"
            pm.origins[ep.name] = ("entrypoint", ep.value)
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"{pm.where(ep.name)}: entry point {ep.value!r} failed to import: "
                    f"{type(exc).__name__}: {exc}; fix or uninstall the package, or "
                    f"--disable-plugin {ep.name}"
                ) from exc
            register(pm, plugin, ep.name, ("entrypoint", getattr(plugin, "__file__", ep.name)))
