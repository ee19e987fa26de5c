"""Hints that teach: an unknown check type a drop-in plugin would provide, and plugin mistakes.

``probed validate --checks-dir checks.d`` without ``--plugins-dir plugins`` meets
``type: file_age`` from a plugin it was not told about. :func:`plugin_hint` looks for a plugin
file defining the type in ``./plugins`` and in the ``plugins`` folder beside the checks
directory, and otherwise knows the plugin types shipped with probed, so the error can say which
``--plugins-dir`` to add.

The rest words the mistakes of a plugin author as one line each, naming the plugin, where it
came from and the fix: a misspelled hook (:func:`hook_problems`), a parameter the hook does not
pass, a ``probed_*`` function without ``@hookimpl`` (:func:`unmarked_hooks`), and a key a check
uses that the type's options model does not declare (:func:`explain_unknown_options`).
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import pluggy

if TYPE_CHECKING:
    from probed._document import Problem

__all__ = ["Manager", "explain_unknown_options", "hook_problems", "plugin_hint", "unmarked_hooks"]

SHIPPED_PLUGIN_TYPES: Final = {"file_age": "plugins/file_age.py"}
"""Check types of the drop-in plugins in probed's repository (``plugins/``)."""

_MAX_BYTES: Final = 1 << 20


def _defines(path: Path, type_name: str) -> bool:
    if path.stem == type_name:
        return True
    try:
        with path.open("rb") as handle:
            text = handle.read(_MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        return False
    pattern = rf"type_name\b[^=\n]*=\s*[\"']{re.escape(type_name)}[\"']"
    return re.search(pattern, text) is not None


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative


def plugin_hint(type_name: str, source: str) -> str:
    """``; is it a plugin? ... add --plugins-dir DIR`` for an unknown type, or ``""``.

    :param type_name: the unknown ``type:`` value.
    :param source: the checks file it appears in (its directory's sibling ``plugins`` folder
        is searched too).
    """
    candidates = [Path("plugins")]
    if source and not source.startswith("<"):
        candidates.append(Path(source).parent.parent / "plugins")
    seen: set[Path] = set()
    for directory in candidates:
        try:
            key = directory.resolve()
        except OSError:
            continue
        if key in seen or not directory.is_dir():
            continue
        seen.add(key)
        for path in sorted(directory.glob("*.py")):
            if not path.name.startswith("_") and _defines(path, type_name):
                return (
                    f"; is it a plugin? {_shown(path)} defines it: "
                    f"add --plugins-dir {_shown(directory)}"
                )
    shipped = SHIPPED_PLUGIN_TYPES.get(type_name)
    if shipped is not None:
        return (
            f"; is it a plugin? {type_name!r} is the drop-in plugin {shipped} of the probed "
            "repository: add --plugins-dir with the folder that holds it"
        )
    return ""


class Manager(Protocol):
    """What loading needs of :class:`probed.plugins.ProbedPluginManager` (no import cycle)."""

    @property
    def hook(self) -> Any:
        """pluggy's hook relay."""

    origins: dict[str, tuple[str, str]]
    packages: dict[str, str]
    warnings: list[str]

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        """pluggy's: the ``@hookimpl`` options of ``plugin.name``, or ``None``."""

    def where(self, name: str) -> str:
        """``plugin 'NAME' (ORIGIN)``."""

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """pluggy's register."""

    def is_blocked(self, name: str) -> bool:
        """pluggy's: whether ``name`` is blocked."""

    def get_plugin(self, name: str) -> Any:
        """pluggy's: the plugin registered as ``name``, or ``None``."""


def _close(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""``."""
    import difflib  # only for a mistake's hint

    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def hook_problems(pm: Manager, plugin: object, where: str) -> list[str]:
    """What is wrong with ``plugin``'s ``@hookimpl`` functions, one line each (before pluggy's
    own checks, which raise a multi-line ``PluginValidationError``).

    :param where: ``plugin 'NAME' (ORIGIN)``, the start of every line.
    """
    specs = {
        name: caller.spec.argnames
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    }
    problems = []
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        hook = opts.get("specname") or attr
        function = getattr(plugin, attr)
        if hook not in specs:
            if opts.get("optionalhook"):
                continue
            problems.append(
                f"{where}: unknown hook {hook!r}{_close(hook, specs)}; rename the function "
                "to one of the hooks in docs/plugins.md (or probed/hookspecs.py)"
            )
            continue
        args = pluggy.HookImpl(plugin, "", function, opts).argnames
        wrong = [a for a in args if a not in specs[hook]]
        if wrong:
            expected = ", ".join(specs[hook]) or "(none)"
            hints = "".join(_close(a, specs[hook]) for a in wrong[:1])
            problems.append(
                f"{where}: {hook}({', '.join(args)}) has parameter(s) "
                f"{', '.join(map(repr, wrong))} the hook does not pass{hints}; {hook} passes: "
                f"{expected} (name only those you need)"
            )
    return problems


def unmarked_hooks(plugin: object, where: str) -> list[str]:
    """A warning per function of ``plugin`` that looks like a hook but has no ``@hookimpl``
    (pluggy ignores it, so it would silently never run)."""
    from probed import hookspecs

    hooks = [n for n in vars(hookspecs) if n.startswith("probed_")]
    module = getattr(plugin, "__name__", None)
    out = []
    for attr, value in sorted(vars(plugin).items() if hasattr(plugin, "__dict__") else ()):
        if not (attr.startswith("probed_") and inspect.isfunction(value)):
            continue
        if getattr(value, "__module__", None) != module or hasattr(value, "probed_impl"):
            continue
        if attr not in hooks and not _close(attr, hooks):
            continue  # a helper that merely starts with probed_
        known = "" if attr in hooks else f"; also check its name{_close(attr, hooks)}"
        out.append(
            f"{where}: function {attr}() is not marked @hookimpl, so probed never calls it; "
            f"put @hookimpl (from probed import hookimpl) on the line above it{known}"
        )
    return out


def explain_unknown_options(
    problems: list[Problem], model: Any, type_name: str, plugin: str, common: Iterable[str]
) -> list[Problem]:
    """``problems`` with each unknown top-level key that is not close to one of the type's
    options naming the options the type declares (a plugin's options model may lack it).

    :param model: the type's options model (a pydantic model class).
    """
    declared = sorted(
        info.alias or name for name, info in getattr(model, "model_fields", {}).items()
    )
    common = list(common)
    out: list[Problem] = []
    for loc, message in problems:
        key = str(loc[0]) if len(loc) == 1 else ""
        if (
            key
            and message.startswith("unknown key ")
            and not _close(key, declared)
            and not _close(key, common)
        ):
            if declared:
                message = (
                    f"unknown key {key!r}: type {type_name!r} (plugin {plugin!r}) declares the "
                    f"options {', '.join(declared)}; remove the key, or add it to "
                    f"{getattr(model, '__name__', 'the options model')} (its options_model)"
                )
            else:
                message = (
                    f"unknown key {key!r}: type {type_name!r} (plugin {plugin!r}) declares no "
                    "options of its own; remove the key, or give the type an options_model"
                )
        out.append((loc, message))
    return out
