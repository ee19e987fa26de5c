"""The state file (``state_file:`` in ``probed.yaml``): run history that survives a restart.

What is kept, per check (by name, for the same check type): the status page's run history
(:class:`probed._status_history.RunLog`: uptime and the latency chart) and the recent results
of the API and the check page (:attr:`probed.state.CheckState.history`, messages already
redacted). A check's *status* is not restored: it starts ``pending`` and its readiness comes
from its first live run, as without a state file.

The file is JSON with the run arrays as base64 (about 12 bytes a run)::

    {"probed_state": 1, "saved_at": 1767225600.0,
     "checks": {"web": {"type": "http", "runs": [STATUSES, DURATIONS, TIMES],
                        "history": [[status, reason, message, duration, time], ...]}}}

It is written atomically (a temporary file in the same directory, fsync, rename, fsync of the
directory) every ``state_file_interval`` and when the daemon stops, and read once at start.
It is bounded: a state larger than :data:`MAX_BYTES` is not written, a file larger than that is
not read. A missing file is a first start; an unreadable, corrupt, foreign, too big or
other-version file is reported in one log line and ignored: never fatal.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
import time
from array import array
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from probed.state import CheckState, HistoryEntry, StateStore

__all__ = [
    "MAX_BYTES",
    "VERSION",
    "Saved",
    "StateFileError",
    "apply",
    "encode",
    "read",
    "state_file",
    "write",
]

log = logging.getLogger("probed")

VERSION: Final = 1
"""The format written; a file of another version is ignored."""

MAX_BYTES: Final = 256 * 1024 * 1024
"""Largest state file written or read."""

_STATUSES: Final = range(4)  # probed.check.Status values
_VALID_STATUSES: Final = bytes(_STATUSES)
_MINUS_ONE: Final = bytes((i - 1) % 256 for i in range(256))  # RunLog stores Status + 1


class StateFileError(Exception):
    """Why a state file was not used (the text of the one log line)."""


@dataclass(frozen=True, slots=True)
class Saved:
    """One check as read back: its type, status-page runs (three arrays, oldest first:
    statuses as :class:`probed.check.Status` values, durations, unix times) and recent
    results."""

    type: str
    statuses: bytes
    durations: array[float]
    times: array[int]
    history: tuple[HistoryEntry, ...]

    def runs(self) -> list[tuple[int, float, int]]:
        """The runs as ``(status, duration, unix_time)``, oldest first."""
        return list(zip(self.statuses, self.durations, self.times, strict=True))


# -- writing -----------------------------------------------------------------------------------


Snapshot = list[tuple[str, str, Any, list[HistoryEntry]]]

SNAPSHOT_CHUNK: Final = 1000
"""Checks copied between two yields to the event loop while saving."""


async def _snapshot(states: Iterable[CheckState]) -> Snapshot:
    """What to save, copied on the event loop (bytes and tuples of atoms), yielding to it
    every :data:`SNAPSHOT_CHUNK` checks so probing and serving go on."""
    snapshot: Snapshot = []
    for s in states:
        runlog = s.runlog
        raw = runlog.snapshot() if runlog is not None and len(runlog) else None
        snapshot.append((s.spec.name, s.spec.type, raw, list(s.history)))
        if len(snapshot) % SNAPSHOT_CHUNK == 0:
            await asyncio.sleep(0)
    return snapshot


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(snapshot: Snapshot, now: float) -> bytes:
    """The file's bytes for a :func:`_snapshot` (run off the event loop)."""
    checks: dict[str, Any] = {}
    for name, type_, raw, history in snapshot:
        entry: dict[str, Any] = {"type": type_, "history": [list(h) for h in history]}
        if raw is not None:
            statuses, durations, times = raw
            if sys.byteorder != "little":
                durations, times = _swapped("f", durations), _swapped("I", times)
            entry["runs"] = [_b64(statuses.translate(_MINUS_ONE)), _b64(durations), _b64(times)]
        checks[name] = entry
    doc = {"probed_state": VERSION, "saved_at": now, "checks": checks}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _swapped(code: str, data: bytes) -> bytes:
    values = array(code)
    values.frombytes(data)
    values.byteswap()
    return values.tobytes()


def write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically: temporary file, fsync, rename, fsync dir.

    :raises StateFileError: ``data`` is over :data:`MAX_BYTES`.
    :raises OSError: the file could not be written (the old one is left as it was).
    """
    if len(data) > MAX_BYTES:
        raise StateFileError(
            f"the state is {len(data)} bytes, over the {MAX_BYTES} byte limit: not saved "
            "(lower status_page.history or history)"
        )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# -- reading -----------------------------------------------------------------------------------


def read(path: Path) -> dict[str, Saved] | None:
    """The checks saved in ``path``; ``None`` when there is no such file (a first start).

    :raises StateFileError: unreadable, too big, not JSON, not a probed state file, another
        version, or malformed.
    """
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_BYTES:
                raise StateFileError(f"{size} bytes, over the {MAX_BYTES} byte limit")
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:  # grew while read
        raise StateFileError(f"over the {MAX_BYTES} byte limit")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise StateFileError("not a probed state file (not JSON; truncated or corrupt)") from None
    if not isinstance(doc, dict) or "probed_state" not in doc:
        raise StateFileError("not a probed state file (no probed_state key)")
    if doc["probed_state"] != VERSION:
        raise StateFileError(
            f"state file version {str(doc['probed_state'])[:20]!r}, this probed reads {VERSION}"
        )
    checks = doc.get("checks")
    if not isinstance(checks, dict):
        raise StateFileError("malformed: checks is not a mapping")
    try:
        return {str(name): _saved(entry) for name, entry in checks.items()}
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise StateFileError(f"malformed: {str(exc)[:200]}") from None


def _saved(entry: Any) -> Saved:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ValueError("a check entry is not a mapping with a type")
    statuses, durations, times = b"", array("f"), array("I")
    if "runs" in entry:
        encoded = entry["runs"]
        if not isinstance(encoded, list) or len(encoded) != 3:
            raise ValueError("runs is not three arrays")
        statuses = base64.b64decode(encoded[0], validate=True)
        durations.frombytes(base64.b64decode(encoded[1], validate=True))
        times.frombytes(base64.b64decode(encoded[2], validate=True))
        if sys.byteorder != "little":
            durations.byteswap()
            times.byteswap()
        if not len(statuses) == len(durations) == len(times):
            raise ValueError("runs arrays of different lengths")
        if statuses.translate(None, _VALID_STATUSES):
            raise ValueError("a run with an unknown status")
    history = tuple(_history_entry(h) for h in entry.get("history", ()))
    return Saved(entry["type"], statuses, durations, times, history)


def _history_entry(h: Any) -> HistoryEntry:
    if not isinstance(h, list) or len(h) != 5:
        raise ValueError("a history entry is not five values")
    status, reason, message, duration, timestamp = h
    if (
        type(status) is not int
        or status not in _STATUSES
        or not isinstance(reason, str)
        or not isinstance(message, str)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in h[3:])
    ):
        raise ValueError("a history entry of the wrong types")
    return (status, reason, message, float(duration), float(timestamp))


def apply(saved: Mapping[str, Saved], states: Iterable[CheckState]) -> int:
    """Put ``saved`` runs and results back into the checks of the same name and type (before
    they run); return how many checks got some."""
    restored = 0
    for state in states:
        got = saved.get(state.spec.name)
        if got is None or got.type != state.spec.type:
            continue
        if state.runlog is not None and got.statuses:
            state.runlog.restore(got.statuses, got.durations, got.times)
        if state.history.maxlen:
            state.history.extend(got.history[-state.history.maxlen :])
        state.version += 1
        restored += 1
    return restored


# -- in the daemon -----------------------------------------------------------------------------


def state_file(
    path: Path, interval: float, store: StateStore
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` entry: restore ``path`` into ``store`` at start, save it
    every ``interval`` seconds and once more when stopping (after the last run)."""

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        saver = _Saver(path, store)
        try:
            saved = await asyncio.to_thread(read, path)
        except StateFileError as exc:
            _ignored(path, str(exc))
        else:
            if saved is not None:
                restored = apply(saved, store)
                log.info(
                    "state file %s: history of %d checks restored",
                    path,
                    restored,
                    extra={"event": "state_file_loaded", "path": str(path), "checks": restored},
                )
        task = asyncio.get_running_loop().create_task(saver.every(interval))
        yield
        task.cancel()
        await asyncio.wait([task])
        await saver.save()

    return ctx


def _ignored(path: Path, why: str) -> None:
    log.warning(
        "state file %s ignored: %s",
        path,
        why,
        extra={"event": "state_file_ignored", "path": str(path), "error": why},
    )


class _Saver:
    """Saves off the event loop; a failure is logged once until a save succeeds again."""

    def __init__(self, path: Path, store: StateStore) -> None:
        self.path, self.store = path, store
        self.failing: str | None = None

    async def every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.save()

    async def save(self) -> None:
        snapshot = await _snapshot(self.store)
        try:
            await asyncio.to_thread(_encode_write, self.path, snapshot)
        except (OSError, StateFileError) as exc:
            why = str(exc) if isinstance(exc, StateFileError) else exc.strerror or str(exc)
            if why != self.failing:
                log.warning(
                    "state file %s not saved: %s",
                    self.path,
                    why,
                    extra={"event": "state_file_not_saved", "path": str(self.path), "error": why},
                )
            self.failing = why
        else:
            if self.failing is not None:
                log.info(
                    "state file %s saved again",
                    self.path,
                    extra={"event": "state_file_saved", "path": str(self.path)},
                )
            self.failing = None


def _encode_write(path: Path, snapshot: Snapshot) -> None:
    write(path, encode(snapshot, time.time()))
