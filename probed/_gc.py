"""Garbage-collector settings for a daemon holding tens of thousands of long-lived objects.

With 10,000 checks CPython's default thresholds run full collections every few seconds, each
traversing every check's state (hundreds of thousands of objects, up to half a second with the
event loop blocked). Long-lived configuration objects are moved out of the collector's sight
with :func:`gc.freeze` once they exist, and young collections run less often.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["settle"]

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
