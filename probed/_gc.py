"""Garbage-collector settings for a daemon holding tens of thousands of long-lived objects.

With 10,000 checks CPython's default thresholds run full collections every few seconds, each
traversing every check's state (hundreds of thousands of objects, up to half a second with the
event loop blocked). Long-lived configuration objects are moved out of the collector's sight
with :func:`gc.freeze` once they exist, and young collections run less often.
"""

from __future__ import annotations

import gc
import logging
import pickle
from typing import Final, TypeVar

__all__ = ["compact", "settle"]

T = TypeVar("T")
log = logging.getLogger("probed")

YOUNG_THRESHOLD: Final = 50_000
OLD_THRESHOLD: Final = 100


def settle() -> None:
    """Collect once, freeze what survives, and raise the collection thresholds.

    Called after a configuration is applied: everything alive then (imports, specs, check
    instances, states) lives until the next reload. Frozen objects are still freed by reference
    counting when a reload drops them.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, max(old, OLD_THRESHOLD))


def compact(obj: T) -> T:
    """A copy of ``obj`` allocated in one go, so the original's scattered memory can be freed.

    Loading 10,000 checks interleaves the long-lived specs with a YAML parse tree several
    times their size; afterwards CPython cannot return the half-empty memory arenas to the
    system (about 25 MB at 10,000 checks). Copying the result through pickle packs it densely
    and lets the old arenas go. Anything that cannot be pickled is returned as it is.
    """
    try:
        return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))  # type: ignore[no-any-return]
    except Exception:  # a plugin's options model that does not pickle: keep the original
        log.debug("configuration not compacted", exc_info=True)
        return obj
