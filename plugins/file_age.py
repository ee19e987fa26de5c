"""``type: file_age``: the newest file matching a path or glob must be recent and big enough.

The check that tells you the nightly database backup really ran::

    probed --plugins-dir plugins --checks-dir checks.d

    checks:
      - name: nightly-db-backup
        type: file_age
        path: /var/backups/postgres/*.sql.gz
        warn_age: 26h      # a little late
        max_age: 2d        # missed a night: fail
        min_size: 1MiB     # an empty or truncated dump is no backup

This file is a complete one-file plugin: drop it in a ``--plugins-dir`` directory. It uses only
what probed offers plugin authors (``probed`` and its option types), runs the blocking glob
and ``stat`` calls through :func:`probed.run_blocking` (probed's bounded thread pool for the
check type, not the event loop's shared executor), and returns a :class:`~probed.Result` for
every outcome. The walk checks :func:`probed.blocking_cancelled` once per directory, so a
``/**`` pattern that outlives its timeout stops walking instead of holding a thread.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field, model_validator

from probed import (
    AbsolutePath,
    Check,
    CheckOptions,
    Duration,
    MetricDef,
    Reason,
    Result,
    Size,
    blocking_cancelled,
    check_order,
    format_duration,
    format_size,
    hookimpl,
    run_blocking,
)
from probed.phase import set_phase

__version__ = "1.0.0"


class FileAgeOptions(CheckOptions):
    """Options of ``type: file_age``."""

    path: AbsolutePath = Field(
        description="a file, or a glob such as /backups/db-*.sql.gz ('**' recurses)"
    )
    max_age: Duration = Field(description="fail when the newest file is older than this")
    warn_age: Duration | None = Field(
        default=None, description="warn when the newest file is older than this (below max_age)"
    )
    min_size: Size = Field(default=1, description="fail when the newest file is smaller")

    @model_validator(mode="after")
    def _tiers(self) -> FileAgeOptions:
        check_order(self, "age", names=("warn_age", "max_age"))
        return self


@dataclass(frozen=True, slots=True)
class Newest:
    """The most recently modified regular file among the matches."""

    path: str
    mtime: float
    size: int
    count: int


class WalkCancelled(Exception):  # noqa: N818 - a signal, not an error
    """The run awaiting the walk was cancelled (its timeout): stop walking."""


def _listdir(path: str) -> list[os.DirEntry[str]]:
    if blocking_cancelled():
        raise WalkCancelled(path)
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except OSError:  # unreadable or vanished: glob skips it too
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _match(base: str, parts: list[str], ancestors: set[tuple[int, int]]) -> Iterator[str]:
    """Paths under ``base`` matching the pattern components ``parts`` (``glob`` rules).

    ``ancestors`` holds the directories the current ``**`` descent is inside: a symbolic link
    back to one of them (a loop) is not followed again.
    """
    if not parts:
        yield base
        return
    part, rest = parts[0], parts[1:]
    if part == "**":
        yield from _match(base, rest, ancestors)  # zero directories
        for entry in _listdir(base):
            if entry.name.startswith("."):
                continue
            if not _is_dir(entry):
                if not rest:  # a trailing ** matches the files below too
                    yield entry.path
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in ancestors:  # a symlink loop
                continue
            ancestors.add(key)
            yield from _match(entry.path, parts, ancestors)
            ancestors.discard(key)
        return
    if not glob.has_magic(part):
        path = os.path.join(base, part)
        if rest:
            if os.path.isdir(path):
                yield from _match(path, rest, ancestors)
        elif os.path.lexists(path):
            yield path
        return
    hidden = part.startswith(".")
    for entry in _listdir(base):
        if entry.name.startswith(".") and not hidden:
            continue
        if not fnmatch.fnmatchcase(entry.name, part):
            continue
        if rest:
            if _is_dir(entry):
                yield from _match(entry.path, rest, ancestors)
        else:
            yield entry.path


def iter_matches(pattern: str) -> Iterator[str]:
    """``glob.iglob(pattern, recursive=True)`` for an absolute pattern, stopping (raising
    :class:`WalkCancelled`) at the first directory listed after the run was cancelled.
    A ``**`` descent does not follow a symbolic link back into a directory it is inside (a
    loop), where ``glob`` would follow it until the path gets too long. Blocking."""
    parts = [p for p in pattern.split("/") if p]
    found = _match("/", parts, set())
    if pattern.endswith("/"):  # as for glob: a trailing slash matches directories only
        return (path for path in found if os.path.isdir(path))
    return found


def find_newest(pattern: str) -> Newest | None:
    """Glob ``pattern`` and stat every regular file; ``None`` if none matches. Blocking."""
    best: tuple[float, str, int] | None = None
    count = 0
    for path in iter_matches(pattern):
        try:
            st = os.stat(path)
        except FileNotFoundError:  # rotated away between the glob and the stat
            continue
        if not stat.S_ISREG(st.st_mode):  # directories and devices are not backups
            continue
        count += 1
        if best is None or st.st_mtime > best[0]:
            best = (st.st_mtime, path, st.st_size)
    if best is None:
        return None
    return Newest(path=best[1], mtime=best[0], size=best[2], count=count)


def _format_age(seconds: float) -> str:
    # "30h" reads better in a message than "30h0m13.2137s": whole minutes past an hour.
    rounded = round(seconds / 60) * 60 if seconds >= 3600 else round(seconds)
    return format_duration(max(1, rounded))


class FileAgeCheck(Check[FileAgeOptions]):
    """The newest file matching ``path`` must be younger than ``max_age`` and at least
    ``min_size`` bytes."""

    type_name: ClassVar[str] = "file_age"
    options_model: ClassVar[type[CheckOptions]] = FileAgeOptions
    description: ClassVar[str] = "newest file matching a glob is recent and big enough (backups)"
    metrics: ClassVar[tuple[MetricDef, ...]] = (
        MetricDef("probed_file_age_seconds", "Age of the newest matching file, in seconds"),
        MetricDef("probed_file_size_bytes", "Size of the newest matching file, in bytes"),
        MetricDef("probed_file_count", "Number of regular files matching the path or glob"),
    )

    async def run(self) -> Result:
        """Find the newest match in a thread, then hold its age and size to the limits."""
        opts = self.options
        try:
            set_phase(f"looking for the newest file matching {opts.path}")
            newest = await run_blocking(find_newest, opts.path)
        except PermissionError as exc:
            return Result.fail("permission", f"{opts.path}: permission denied ({exc.filename})")
        if newest is None:
            return Result.fail(
                "not_found",
                f"no file matches {opts.path}",
                values={"probed_file_count": 0.0},
            )
        age = max(0.0, time.time() - newest.mtime)  # a future mtime (clock skew) counts as new
        values = {
            "probed_file_age_seconds": age,
            "probed_file_size_bytes": float(newest.size),
            "probed_file_count": float(newest.count),
        }
        problems: list[str] = []
        if age > opts.max_age:
            problems.append(
                f"{newest.path} is {_format_age(age)} old, older than max_age "
                f"{format_duration(opts.max_age)} (the fail threshold)"
            )
        if newest.size < opts.min_size:
            problems.append(
                f"{newest.path} is {format_size(newest.size)}, smaller than min_size "
                f"{format_size(opts.min_size)} (the fail threshold)"
            )
        if problems:
            return Result.fail(Reason.THRESHOLD, "; ".join(problems), values=values)
        if opts.warn_age is not None and age > opts.warn_age:
            return Result.warn(
                Reason.THRESHOLD,
                f"{newest.path} is {_format_age(age)} old, older than warn_age "
                f"{format_duration(opts.warn_age)} (the warn threshold)",
                values=values,
            )
        return Result.ok(
            f"{newest.path} is {_format_age(age)} old and {format_size(newest.size)} "
            f"(newest of {newest.count} matching {opts.path})",
            values=values,
        )


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    """Register ``type: file_age``."""
    return [FileAgeCheck]
