"""Split scrapes: ``/metrics?shard=I&shards=N`` answers one of N disjoint parts of the body.

A check belongs to shard ``crc32(name) % N`` (UTF-8 name; zlib's CRC-32, the same in every
process, on every machine and across restarts, unlike Python's salted :func:`hash`). Series
without a ``check`` label (build info, process, scheduler, config and health series, plugin
collectors) go to shard 0 only, so the union of the N shards is exactly the full scrape, with
no series twice. ``shards=1&shard=0`` is the full scrape.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_SHARDS", "Shard", "ShardError", "parse_shard", "shard_of"]

MAX_SHARDS: Final = 1024


class ShardError(ValueError):
    """Bad ``shard``/``shards`` query parameters (answered with 400 and this message)."""


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``."""

    index: int
    count: int

    def owns(self, check: str) -> bool:
        """True if the check named ``check`` is in this shard."""
        return shard_of(check, self.count) == self.index

    @property
    def daemon_series(self) -> bool:
        """True if this shard carries the series without a ``check`` label (shard 0)."""
        return self.index == 0


def shard_of(check: str, count: int) -> int:
    """The shard (``0 <= shard < count``) of the check named ``check``: stable everywhere."""
    return zlib.crc32(check.encode("utf-8", "surrogatepass")) % count


def _integer(name: str, text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise ShardError(f"{name} must be a non-negative integer, got {text[:20]!r}")
    return int(text)


def parse_shard(query: Mapping[str, str]) -> Shard | None:
    """The shard asked for by ``query`` (``None``: the full scrape), or :class:`ShardError`."""
    shard, shards = query.get("shard"), query.get("shards")
    if shard is None and shards is None:
        return None
    if shard is None or shards is None:
        raise ShardError("shard and shards must be given together")
    count = _integer("shards", shards)
    index = _integer("shard", shard)
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"shards must be between 1 and {MAX_SHARDS}, got {count}")
    if index >= count:
        raise ShardError(f"shard must be between 0 and shards-1 ({count - 1}), got {index}")
    return Shard(index, count)
