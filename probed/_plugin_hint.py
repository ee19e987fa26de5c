"""Hints for an unknown check type that a drop-in plugin would provide.

``probed validate --checks-dir checks.d`` without ``--plugins-dir plugins`` meets
``type: file_age`` from a plugin it was not told about. :func:`plugin_hint` looks for a plugin
file defining the type in ``./plugins`` and in the ``plugins`` folder beside the checks
directory, and otherwise knows the plugin types shipped with probed, so the error can say which
``--plugins-dir`` to add.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

__all__ = ["plugin_hint"]

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
