"""Noticing configuration file changes: what the files look like, and the loop that watches them.

A :class:`FilesSeen` is the stat fingerprint and content digest of every watched file (the
config file and the ``*.yaml``/``*.yml`` files in the checks directories). The reload unit keeps
the one its running configuration was read from; :func:`watch` compares the files with it every
``watch_interval`` and asks for a reload only when their *content* differs, so a file that was
only touched, or a change already reloaded by SIGHUP, is not applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

from probed.settings import Settings

__all__ = ["FilesSeen", "Watched", "files_now", "fingerprint", "supervised", "watch"]

RESTART_MAX_DELAY = 60.0
"""Longest wait before the watcher is started again after it failed (the delay doubles)."""

log = logging.getLogger("probed")

StatFingerprint = tuple[tuple[str, int, int], ...]
"""``(path, mtime_ns, size)`` of every watched file, sorted by path."""


@dataclass(frozen=True, slots=True)
class FilesSeen:
    """The watched files at one moment: stat fingerprint and content digest."""

    stat: StatFingerprint
    digest: str


def fingerprint(settings: Settings) -> StatFingerprint:
    """Stat every watched file (blocking: call in a thread).

    A checks directory that cannot be listed (permissions, a name too long) is one entry with
    its error number instead of its files, so the change is noticed and the reload reports it.
    """
    paths: list[Path] = []
    out = []
    for directory in settings.checks_dirs:
        try:
            if directory.is_dir():
                paths.extend(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
        except OSError as exc:
            out.append((str(directory), -1, exc.errno or 0))
    if settings.config_file is not None:
        paths.append(settings.config_file)
    for path in paths:
        with contextlib.suppress(OSError):
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(sorted(out))


def content_digest(files: StatFingerprint) -> str:
    """One digest of the files' names and contents (blocking: call in a thread)."""
    digest = hashlib.sha256()
    for name, mtime, _ in files:
        if mtime < 0:  # a directory that could not be listed (see fingerprint)
            digest.update(f"{len(name)}:{name}:unlistable\0".encode())
            continue
        # Each file hashed on its own and streamed: a huge file dropped into checks.d costs
        # time here, never memory (the loader refuses it later with a located error).
        try:
            # O_NONBLOCK: a FIFO named *.yaml must not block the watcher until a writer comes
            # (the loader reports it as not a regular file).
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                if S_ISREG(os.fstat(handle.fileno()).st_mode):
                    part = hashlib.file_digest(handle, "sha256").hexdigest()
                else:
                    part = "not-a-file"
        except OSError as exc:
            part = f"unreadable:{exc.errno}"
        digest.update(f"{len(name)}:{name}:{part}\0".encode())
    return digest.hexdigest()


def files_now(settings: Settings) -> FilesSeen:
    """Fingerprint and digest of the watched files now (blocking: call in a thread)."""
    stat = fingerprint(settings)
    return FilesSeen(stat, content_digest(stat))


class Watched(Protocol):
    """What :func:`watch` needs from the reload unit."""

    @property
    def settings(self) -> Settings:
        """The running settings (where to look, how often)."""
        ...

    files_seen: FilesSeen | None
    """The files the running configuration was read from."""

    async def reload(self, *, if_changed: bool = False) -> object:
        """Reload; with ``if_changed``, only if the files' content differs from ``files_seen``."""
        ...


async def watch(target: Watched) -> None:
    """Reload ``target`` whenever the content of its watched files changes; runs until cancelled."""
    while True:
        await asyncio.sleep(target.settings.watch_interval)
        current = await asyncio.to_thread(fingerprint, target.settings)
        seen = target.files_seen
        if seen is not None and current == seen.stat:
            continue
        content = await asyncio.to_thread(content_digest, current)
        if seen is not None and content == seen.digest:
            target.files_seen = FilesSeen(current, content)  # touched, or already reloaded
            continue
        log.info("configuration files changed; reloading", extra={"event": "reload"})
        await target.reload(if_changed=True)


async def supervised(run: Callable[[Watched], Awaitable[None]], target: Watched) -> None:
    """Run ``run(target)`` (:func:`watch`) until cancelled, starting it again when it raises.

    A failure is logged once (one error line, the traceback at DEBUG; the same failure again is
    logged at DEBUG only) and the watcher restarts after ``watch_interval``, doubling up to
    :data:`RESTART_MAX_DELAY` while it keeps failing; a watcher that ran that long again starts
    over from ``watch_interval``.
    """
    loop = asyncio.get_running_loop()
    delay = 0.0
    last = ""
    while True:
        started = loop.time()
        try:
            await run(target)
            return
        except Exception as exc:
            what = f"{type(exc).__name__}: {exc}"
            if not delay or loop.time() - started >= RESTART_MAX_DELAY:
                delay, last = target.settings.watch_interval, ""
            log.log(
                logging.DEBUG if what == last else logging.ERROR,
                "the file watcher failed (%s); restarting it in %gs",
                what,
                round(delay, 3),
                extra={"event": "watcher_failed"},
            )
            log.debug("file watcher traceback", exc_info=exc)
            last = what
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)
