"""Reloading a large configuration in a forked child, so the event loop keeps its lock.

Parsing and validating 50,000 checks takes seconds of CPU in Python. In a thread it holds
the interpreter lock nearly all that time: the event loop gets it back only every switch
interval (5 ms) and loses it again at its next system call, so runs start seconds late for the
whole reload. A forked child has its own interpreter: it loads (it inherits the running
configuration, so unchanged files are not parsed again) and sends the result back pickled
*against the running configuration*: a file result or check spec equal to the running one
travels as a reference to it, so the parent unpickles only what changed (a few kilobytes for
a one-check change) and gets the running objects back for everything else. The first load
goes the same way (against nothing): the parse trees and validation garbage never exist in the
daemon, which only unpickles the result, densely packed.

Only for a process the daemon owns (``probed run``): forking needs POSIX, and the child must
not run an embedding application's code. When a child cannot be used (no ``os.fork``, the
child fails or does not answer in time, a value that does not pickle), :func:`load_in_child`
returns ``None`` and the caller loads in this process as before.
"""

from __future__ import annotations

import gc
import io
import logging
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from typing import Any, Final

from probed.checkfile import FileResult, LoadResult
from probed.spec import CheckSpec

__all__ = ["CHILD_TIMEOUT", "dumps_against", "load_in_child", "loads_against"]

log = logging.getLogger("probed")

CHILD_TIMEOUT: Final = 120.0
"""Seconds a child may take before it is killed and the load is done in-process instead.

A child loads 50,000 checks in about 6 s on a busy 2-core machine; one that has not answered
after twenty times that is stuck (a lock another thread held at the fork, say), and waiting
longer would only delay the reload it stands for."""

_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CHILD_NICENESS: Final = 10
"""How much lower the child's CPU priority is than the daemon's."""
UNPICKLABLE: Final = 3
"""The child's exit code when the result does not pickle (a plugin's options model)."""


def _running_specs(previous: LoadResult) -> list[CheckSpec]:
    """Every spec of ``previous`` that a reference can name: its running checks, then those
    of its files (a replica's checks of other replicas), each once."""
    seen: dict[int, CheckSpec] = {id(s): s for s in previous.specs.values()}
    for result in previous.files.values():
        for spec in result.specs:
            seen.setdefault(id(spec), spec)
    return list(seen.values())


class _Against(pickle.Pickler):
    """Pickles a :class:`LoadResult`, writing references for what ``previous`` already has:
    a file result by its path (the same object), a spec by its index (an equal one)."""

    def __init__(self, file: io.BytesIO, previous: LoadResult) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._files = {id(f): key for key, f in previous.files.items()}
        specs = _running_specs(previous)
        self._specs: dict[str, tuple[int, CheckSpec]] = {}
        for index, spec in enumerate(specs):
            self._specs.setdefault(spec.name, (index, spec))
        self._previous = previous  # keeps the ids above meaning the same objects

    def persistent_id(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is FileResult:
            return self._files.get(id(obj))
        if isinstance(obj, CheckSpec):
            found = self._specs.get(obj.name)
            if found is not None:
                index, old = found
                if old is obj or (old == obj and old.line == obj.line):
                    return index
        return None


class _Onto(pickle.Unpickler):
    """Unpickles what :class:`_Against` wrote, resolving references in ``previous``."""

    def __init__(self, file: io.BytesIO, previous: LoadResult) -> None:
        super().__init__(file)
        self._files = previous.files
        self._specs = _running_specs(previous)

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, int):
            return self._specs[pid]
        return self._files[pid]


def dumps_against(loaded: LoadResult, previous: LoadResult) -> bytes:
    """``loaded`` pickled with references to the equal parts of ``previous``."""
    out = io.BytesIO()
    _Against(out, previous).dump(loaded)
    return out.getvalue()


def loads_against(data: bytes, previous: LoadResult) -> LoadResult:
    """What :func:`dumps_against` wrote, on top of the same ``previous``."""
    loaded = _Onto(io.BytesIO(data), previous).load()
    if not isinstance(loaded, LoadResult):
        raise TypeError(f"a child sent {type(loaded).__name__}, not a LoadResult")
    return loaded


def _child(load: Callable[[], LoadResult], previous: LoadResult, out: int) -> None:
    """In the child: load, write the result to ``out``, exit (never returns)."""
    code = 1
    try:
        gc.disable()  # a collection would touch (and copy) every page of the parent's heap
        # Background work: on a small machine the daemon (whose runs are due now) and its
        # targets come first; the child takes what CPU is left.
        os.nice(CHILD_NICENESS)
        loaded = load()
        code = UNPICKLABLE
        data = dumps_against(loaded, previous)
        code = 1
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
        code = 0
    except BaseException:  # reported as the exit code; the parent falls back
        pass
    finally:
        os._exit(code)


def _read_all(fd: int, pid: int, timeout: float) -> bytes | None:
    """Everything the child writes to ``fd`` until it closes it, or None after ``timeout``."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            os.kill(pid, signal.SIGKILL)
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def load_in_child(
    load: Callable[[], LoadResult], previous: LoadResult, timeout: float = CHILD_TIMEOUT
) -> LoadResult | None:
    """Run ``load`` in a forked child and return its result (blocking: call in a thread).

    Unchanged files and checks of the result are ``previous``'s own objects. ``None`` when a
    child cannot be used; the caller then loads in this process.
    """
    if not hasattr(os, "fork"):
        return None
    started = time.perf_counter()
    read_end, write_end = os.pipe()
    # The child must not take the daemon's stop and reload signals (a Ctrl-C reaches the
    # whole process group), nor write them to the event loop's wake-up descriptor, which
    # it shares: they stay blocked in it from before the fork until it exits.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its exit code and output are checked
            os.close(read_end)
            _child(load, previous, write_end)
    except OSError:
        log.debug("forking a configuration loader failed", exc_info=True)
        os.close(read_end)
        os.close(write_end)
        return None
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    os.close(write_end)
    try:
        data = _read_all(read_end, pid, timeout)
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    if data is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == UNPICKLABLE:
        log.debug("the configuration does not pickle; loading it here")
        return None
    if data is None or status != 0:
        log.warning(
            "loading the configuration in a child process failed (%s); loading it here",
            "no answer" if data is None else f"exit status {status}",
            extra={"event": "reload_child_failed"},
        )
        return None
    try:
        loaded = loads_against(data, previous)
    except Exception:  # a plugin's value that does not unpickle: load here instead
        log.warning(
            "the configuration loaded in a child process could not be read back; loading it here",
            exc_info=True,
            extra={"event": "reload_child_failed"},
        )
        return None
    log.debug(
        "configuration loaded in a child process in %.3f s (%d bytes back)",
        time.perf_counter() - started,
        len(data),
        extra={"event": "reload_child"},
    )
    return loaded
