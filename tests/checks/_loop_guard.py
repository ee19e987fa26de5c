"""Catch blocking calls made on the event loop's thread (shared by the host check tests).

``sys.setprofile`` is per thread: installed from a coroutine it sees every C function called
on the loop's thread and nothing run by ``asyncio.to_thread`` workers. A check that calls
``os.statvfs`` or opens a ``/proc`` file on the loop thread is caught; one that does it in a
worker thread is not.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

BLOCKING_CALLS: tuple[Callable[..., Any], ...] = (os.statvfs, io.open, os.getloadavg)


@contextmanager
def blocking_calls_on_loop_thread() -> Iterator[list[str]]:
    """Yield a list that fills with the names of blocking calls made on the current thread."""
    seen: list[str] = []

    def profiler(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call" and any(arg is f for f in BLOCKING_CALLS):
            seen.append(arg.__name__)

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        yield seen
    finally:
        sys.setprofile(previous)
