"""Which files of the checks directories are checks files, and why the others are not."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from probed.errors import ConfigError

__all__ = ["check_files"]


def _not_a_file(path: Path) -> str | None:
    """Why a ``*.yaml`` entry of a checks directory cannot be read as a checks file, or None."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop: not read"
        if path.is_symlink():
            return f"dangling symbolic link to {os.readlink(path)!r}: not read"
        return f"cannot read: {exc.strerror or type(exc).__name__}"
    if stat.S_ISDIR(mode):
        return (
            "is a directory, not a checks file (checks directories are not searched "
            "recursively): not read"
        )
    if not stat.S_ISREG(mode):
        return "not a regular file: not read"
    return None


def check_files(directories: Iterable[Path], errors: list[ConfigError]) -> list[Path]:
    """The checks files of ``directories``: their ``*.yaml``/``*.yml`` entries (hidden ones
    skipped), sorted by name per directory.

    An entry that cannot be read as a file (a directory, a symbolic link loop, a dangling
    link, a FIFO...) is not skipped silently: ``errors`` gets one naming it, as does a
    directory that is missing or cannot be listed.
    """
    found: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            reason = "does not exist" if not directory.exists() else "is not a directory"
            errors.append(ConfigError(str(directory), 0, "", f"checks directory {reason}"))
            continue
        try:
            entries = sorted(directory.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            errors.append(ConfigError(str(directory), 0, "", f"cannot list: {reason}"))
            continue
        for path in entries:
            # Skip hidden files: editor lock files such as ".#api.yaml" end in .yaml too.
            if path.suffix not in (".yaml", ".yml") or path.name.startswith("."):
                continue
            problem = _not_a_file(path)
            if problem is None:
                found.append(path)
            else:
                errors.append(ConfigError(str(path), 0, "", problem))
    return found
