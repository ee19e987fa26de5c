"""Garbage-collector settings for a daemon holding tens of thousands of long-lived objects.

With 10,000 checks CPython's default thresholds run full collections every few seconds, each
traversing every check's state (hundreds of thousands of objects, up to half a second with the
event loop blocked). Long-lived configuration objects are moved out of the collector's sight
with :func:`gc.freeze` once they exist, and full collections are made rare.

Young collections stay small: each probe leaves short-lived reference cycles behind (a
connection's transport and protocol, futures and their callbacks), so a young collection
mostly frees garbage, and its pause grows with the young threshold: about 4 microseconds per
object, 170 ms at a threshold of 50,000 (measured at 50,000 HTTP checks a minute). At
:data:`YOUNG_THRESHOLD` a pause stays within a few milliseconds; :data:`OLD_THRESHOLD` keeps
the number of allocations between two full collections what it was with large young
collections. The allocation count alone does not bound the young generation, though
(:class:`YoungCollections` runs young collections on a clock as well).
"""

from __future__ import annotations

import gc
import logging
import pickle
from collections.abc import Callable
from typing import Final, TypeVar

__all__ = ["YoungCollections", "compact", "return_large_buffers", "settle", "trim"]

T = TypeVar("T")
log = logging.getLogger("probed")

YOUNG_THRESHOLD: Final = 2_000
OLD_THRESHOLD: Final = 2_500


def settle() -> None:
    """Collect once, freeze what survives, and set the collection thresholds.

    Called after a configuration is applied: everything alive then (imports, specs, check
    instances, states) lives until the next reload. Frozen objects are still freed by reference
    counting when a reload drops them.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, max(old, OLD_THRESHOLD))


YOUNG_PERIOD: Final = 0.5
"""Seconds between two young collections run by :class:`YoungCollections`."""
MIDDLE_EVERY: Final = 4
"""Every this many young collections, the middle generation is collected too (every 2 s: its
pause grows with the survivors since the last one, about 2 us each; 85 ms every 5 s at
50,000 HTTP checks a minute)."""


class YoungCollections:
    """Young collections on a clock, not only on the collector's allocation count.

    CPython starts a young collection when allocations minus deallocations of tracked objects
    exceed a threshold. A daemon whose runs replace each check's last result frees an old
    object for each new one, so that count hardly grows while the young generation fills
    with every result made since the last collection: at 50,000 checks a minute it held
    150,000 objects when a collection finally came (120 ms with the loop blocked). Called
    every :data:`YOUNG_PERIOD` seconds, :meth:`__call__` keeps each young collection to half
    a second of new objects (a few ms) and the middle one to two seconds of survivors.
    """

    def __init__(self) -> None:
        self._ticks = 0

    def __call__(self) -> None:
        self._ticks += 1
        gc.collect(1 if self._ticks % MIDDLE_EVERY == 0 else 0)


def compact(build: Callable[[], T], worth_it: Callable[[T], bool]) -> T:
    """Build an object, and if ``worth_it``, return a densely allocated copy of it instead.

    Loading 10,000 checks interleaves the long-lived specs with a YAML parse tree several
    times their size; afterwards CPython cannot return the half-empty memory arenas to the
    system. Serialising the result, dropping the original (so its arenas empty out) and
    deserialising packs it densely: about 25 MB less resident memory at 10,000 checks.
    Anything that cannot be pickled is returned as built.
    """
    obj = build()
    if not worth_it(obj):
        return obj
    try:
        blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # a plugin's options model that does not pickle: keep the original
        log.debug("configuration not compacted", exc_info=True)
        return obj
    del obj
    gc.collect()
    return pickle.loads(blob)  # type: ignore[no-any-return]


M_MMAP_THRESHOLD: Final = -3  # glibc mallopt parameter


def return_large_buffers(threshold: int = 1 << 20) -> bool:
    """Have glibc serve allocations over ``threshold`` bytes with mmap, always.

    A scrape of 10,000 checks builds a body of over 20 MB. glibc raises its mmap threshold
    after the first such buffer is freed and serves the next ones from the heap, which it
    rarely gives back: resident memory then stays ~50 MB higher after scrapes. A fixed
    threshold returns each scrape's buffers to the system when they are freed. Returns
    whether the setting took (False off glibc).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def _libc_trim() -> Callable[[], object] | None:
    try:
        import ctypes

        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: fn(0)


_TRIM = _libc_trim()


def trim() -> None:
    """Give free memory in the middle of the C heap back to the system (glibc only).

    Each scrape of many checks re-renders thousands of text fragments; the freed ones leave
    holes in the heap that glibc keeps resident. ``malloc_trim`` releases those pages.
    """
    if _TRIM is not None:
        _TRIM()
