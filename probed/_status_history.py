"""The compact run history behind the status page: :class:`RunLog`, a ring of fixed-size arrays.

Each check keeps the last N runs as three flat arrays (a status byte, a 32-bit float duration
and a 32-bit unix time per run: 9 bytes a run), not a list of objects, so 100 runs for each of
50,000 checks take about 50 MB less than tuples would and the garbage collector never sees
them. A check gets a RunLog only while the status page is on (``status_page.enabled``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["MAX_RUNS", "RunLog"]

MAX_RUNS: Final = 10_000
"""Most runs ``status_page.history`` may keep per check."""

_EMPTY: Final = 0  # a slot never written; statuses are stored as Status + 1


class RunLog:
    """The last ``length`` runs of one check: status, duration (seconds) and unix time.

    :param length: how many runs are kept (1 to :data:`MAX_RUNS`).
    """

    __slots__ = ("_durations", "_next", "_size", "_statuses", "_times")

    def __init__(self, length: int) -> None:
        if not 1 <= length <= MAX_RUNS:
            raise ValueError(f"a run log keeps 1 to {MAX_RUNS} runs, not {length}")
        self._statuses = bytearray(length)
        self._durations = array("f", (0.0,)) * length  # repetition allocates exactly
        self._times = array("I", (0,)) * length
        self._next = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def length(self) -> int:
        """How many runs fit."""
        return len(self._statuses)

    def add(self, status: int, duration: float, timestamp: float) -> None:
        """Keep one run (``status`` is a :class:`probed.check.Status` value), dropping the
        oldest when full."""
        i = self._next
        self._statuses[i] = status + 1
        self._durations[i] = min(max(duration, 0.0), 3.0e38)
        self._times[i] = min(max(int(timestamp), 0), 0xFFFFFFFF)
        self._next = (i + 1) % len(self._statuses)
        if self._size < len(self._statuses):
            self._size += 1

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        """``(status, duration, unix_time)`` of each kept run, oldest first."""
        length = len(self._statuses)
        start = (self._next - self._size) % length
        statuses, durations, times = self._statuses, self._durations, self._times
        for k in range(self._size):
            i = (start + k) % length
            yield statuses[i] - 1, durations[i], times[i]

    def snapshot(self) -> tuple[bytes, bytes, bytes]:
        """The kept runs, oldest first, as raw native-order bytes: statuses (``Status + 1``),
        float32 durations and uint32 unix times. A cheap copy for :mod:`probed.statefile`
        to encode off the event loop."""
        i, n = (self._next - self._size) % len(self._statuses), self._size
        s, d, t = self._statuses, self._durations, self._times
        return (
            bytes((s[i:] + s[:i])[:n]),
            (d[i:] + d[:i])[:n].tobytes(),
            (t[i:] + t[:i])[:n].tobytes(),
        )

    def extend(self, runs: Iterable[tuple[int, float, float]]) -> None:
        """Add ``runs`` (oldest first), e.g. ones read back from a state file."""
        for status, duration, timestamp in runs:
            self.add(status, duration, timestamp)

    def uptime(self) -> float | None:
        """The share of kept runs that passed (ok or warn), or ``None`` before the first."""
        if not self._size:
            return None
        passed = self._statuses.count(1) + self._statuses.count(2)  # ok + 1, warn + 1
        return passed / self._size

    def counts(self) -> tuple[int, int, int, int]:
        """How many kept runs were ok, warn, fail and unknown."""
        s = self._statuses
        return s.count(1), s.count(2), s.count(3), s.count(4)
