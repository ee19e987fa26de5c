"""The compact run history behind the status page: :class:`RunLog`, one flat buffer.

Each check keeps its last N runs in one ``bytearray`` of three regions: a status byte per
run, then a 32-bit float duration per run, then a 32-bit unix time per run (9 bytes a run),
not a list of objects, so the garbage collector never sees them. The buffer is an immutable
``bytes`` rebuilt at its exact size while it grows, and a ``bytearray`` written in place once
full, so a check that has run once (an idle one with a long interval) costs about 100 bytes
(a ``bytes`` is one block; a ``bytearray`` is two), not 9 bytes a run it may keep. A check
gets a RunLog only while the status page is on (``status_page.enabled``).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["MAX_RUNS", "RunLog"]

MAX_RUNS: Final = 10_000
"""Most runs ``status_page.history`` may keep per check."""

_PLUS_ONE: Final = bytes((i + 1) % 256 for i in range(256))  # Status -> stored
_F: Final = struct.Struct("=f")
_I: Final = struct.Struct("=I")


class RunLog:
    """The last ``length`` runs of one check: status, duration (seconds) and unix time.

    ``_data`` (``bytes`` until full, then a ``bytearray``) holds ``n`` runs as ``n`` status
    bytes (``Status + 1``), ``n`` native float32 durations and ``n`` native uint32 unix times,
    in that order. Until ``length`` runs are kept the oldest run is at index 0; from then on
    the regions are rings whose oldest run is at ``_next``.

    :param length: how many runs are kept (1 to :data:`MAX_RUNS`).
    """

    __slots__ = ("_data", "_length", "_next")

    def __init__(self, length: int) -> None:
        if not 1 <= length <= MAX_RUNS:
            raise ValueError(f"a run log keeps 1 to {MAX_RUNS} runs, not {length}")
        self._length = length
        self._data: bytes | bytearray = b""
        self._next = 0

    def __len__(self) -> int:
        return len(self._data) // 9

    @property
    def length(self) -> int:
        """How many runs fit."""
        return self._length

    def add(self, status: int, duration: float, timestamp: float) -> None:
        """Keep one run (``status`` is a :class:`probed.check.Status` value), dropping the
        oldest when full."""
        stored = status + 1
        seconds = min(max(duration, 0.0), 3.0e38)
        time = min(max(int(timestamp), 0), 0xFFFFFFFF)
        data = self._data
        n = len(data) // 9
        if n < self._length:  # one more run: rebuilt at its exact size (no over-allocation)
            d, t = n * 5, n * 9
            grown = b"".join(
                (data[:n], bytes((stored,)), data[n:d], _F.pack(seconds), data[d:t], _I.pack(time))
            )
            self._data = bytearray(grown) if n + 1 == self._length else grown
            return
        assert type(data) is bytearray  # full: written in place
        i = self._next
        data[i] = stored
        _F.pack_into(data, n + 4 * i, seconds)
        _I.pack_into(data, 5 * n + 4 * i, time)
        self._next = (i + 1) % n

    def _regions(self) -> tuple[bytes, bytes, bytes]:
        """Statuses, durations and times, oldest first (ring unrolled)."""
        data, i = self._data, self._next
        n = len(data) // 9
        s, d, t = data[:n], data[n : 5 * n], data[5 * n :]
        return (
            bytes(s[i:] + s[:i]),
            bytes(d[4 * i :] + d[: 4 * i]),
            bytes(t[4 * i :] + t[: 4 * i]),
        )

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        """``(status, duration, unix_time)`` of each kept run, oldest first."""
        statuses, durations, times = self._regions()
        d, t = array("f", durations), array("I", times)
        for k, stored in enumerate(statuses):
            yield stored - 1, d[k], t[k]

    def snapshot(self) -> tuple[bytes, bytes, bytes]:
        """The kept runs, oldest first, as raw native-order bytes: statuses (``Status + 1``),
        float32 durations and uint32 unix times. A cheap copy for :mod:`probed.statefile`
        to encode off the event loop."""
        return self._regions()

    def restore(self, statuses: bytes, durations: array[float], times: array[int]) -> None:
        """Keep the last runs that fit of these instead (oldest first; statuses as
        :class:`probed.check.Status` values): a state file's, copied in whole arrays."""
        start = max(len(statuses) - self._length, 0)
        data = b"".join(
            (
                statuses[start:].translate(_PLUS_ONE),
                array("f", durations[start:]).tobytes(),
                array("I", times[start:]).tobytes(),
            )
        )
        self._data = bytearray(data) if len(data) // 9 == self._length else data
        self._next = 0

    def extend(self, runs: Iterable[tuple[int, float, float]]) -> None:
        """Add ``runs`` (oldest first), e.g. ones read back from a state file."""
        for status, duration, timestamp in runs:
            self.add(status, duration, timestamp)

    def uptime(self) -> float | None:
        """The share of kept runs that passed (ok or warn), or ``None`` before the first."""
        n = len(self)
        if not n:
            return None
        s = self._data
        return (s.count(1, 0, n) + s.count(2, 0, n)) / n  # ok + 1, warn + 1

    def counts(self) -> tuple[int, int, int, int]:
        """How many kept runs were ok, warn, fail and unknown."""
        s, n = self._data, len(self)
        return s.count(1, 0, n), s.count(2, 0, n), s.count(3, 0, n), s.count(4, 0, n)
