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
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from probed.settings import Settings

__all__ = ["FilesSeen", "Watched", "files_now", "fingerprint", "watch"]

log = logging.getLogger("probed")

StatFingerprint = tuple[tuple[str, int, int], ...]
"""``(path, mtime_ns, size)`` of every watched file, sorted by path."""


@dataclass(frozen=True, slots=True)
class FilesSeen:
    """The watched files at one moment: stat fingerprint and content digest."""

    stat: StatFingerprint
    digest: str


def fingerprint(settings: Settings) -> StatFingerprint:
    """Stat every watched file (blocking: call in a thread)."""
    paths: list[Path] = []
    for directory in settings.checks_dirs:
        if directory.is_dir():
            paths.extend(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    if settings.config_file is not None:
        paths.append(settings.config_file)
    out = []
    for path in sorted(paths):
        with contextlib.suppress(OSError):
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


def content_digest(files: StatFingerprint) -> str:
    """One digest of the files' names and contents (blocking: call in a thread)."""
    digest = hashlib.sha256()
    for name, _, _ in files:
        # Each file hashed on its own and streamed: a huge file dropped into checks.d costs
        # time here, never memory (the loader refuses it later with a located error).
        try:
            with Path(name).open("rb") as handle:
                part = hashlib.file_digest(handle, "sha256").hexdigest()
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
