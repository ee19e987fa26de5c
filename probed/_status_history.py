"""The compact run history behind the status page: :class:`RunLog`, a ring of flat arrays.

Each check keeps its last N runs as three flat arrays (a status byte, a 32-bit float duration
and a 32-bit unix time per run: 9 bytes a run), not a list of objects, so the garbage collector
never sees them. The arrays grow with the runs and are trimmed to size once full, so a check
that has run once (an idle one with a long interval) costs about 320 bytes, not 9 bytes a run
it may keep. A check gets a RunLog only while the status page is on (``status_page.enabled``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from typing import Final

__all__ = ["MAX_RUNS", "RunLog"]

MAX_RUNS: Final = 10_000
"""Most runs ``status_page.history`` may keep per check."""

_PLUS_ONE: Final = bytes((i + 1) % 256 for i in range(256))  # Status -> stored


class RunLog:
    """The last ``length`` runs of one check: status, duration (seconds) and unix time.

    Statuses are stored as ``Status + 1``. Until ``length`` runs are kept the arrays grow (the
    oldest run is at index 0); from then on they are a ring whose oldest run is at ``_next``.

    :param length: how many runs are kept (1 to :data:`MAX_RUNS`).
    """

    __slots__ = ("_durations", "_length", "_next", "_statuses", "_times")

    def __init__(self, length: int) -> None:
        if not 1 <= length <= MAX_RUNS:
            raise ValueError(f"a run log keeps 1 to {MAX_RUNS} runs, not {length}")
        self._length = length
        self._statuses = bytearray()
        self._durations = array("f")
        self._times = array("I")
        self._next = 0

    def __len__(self) -> int:
        return len(self._statuses)

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
        if len(self._statuses) < self._length:
            self._statuses.append(stored)
            self._durations.append(seconds)
            self._times.append(time)
            if len(self._statuses) == self._length:  # full: drop what appending over-allocated
                self._statuses = bytearray(self._statuses)
                self._durations = array("f", self._durations)
                self._times = array("I", self._times)
            return
        i = self._next
        self._statuses[i] = stored
        self._durations[i] = seconds
        self._times[i] = time
        self._next = (i + 1) % self._length

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        """``(status, duration, unix_time)`` of each kept run, oldest first."""
        statuses, durations, times = self._statuses, self._durations, self._times
        n, start = len(statuses), self._next
        for k in range(n):
            i = (start + k) % n
            yield statuses[i] - 1, durations[i], times[i]

    def snapshot(self) -> tuple[bytes, bytes, bytes]:
        """The kept runs, oldest first, as raw native-order bytes: statuses (``Status + 1``),
        float32 durations and uint32 unix times. A cheap copy for :mod:`probed.statefile`
        to encode off the event loop."""
        i = self._next
        s, d, t = self._statuses, self._durations, self._times
        return bytes(s[i:] + s[:i]), (d[i:] + d[:i]).tobytes(), (t[i:] + t[:i]).tobytes()

    def restore(self, statuses: bytes, durations: array[float], times: array[int]) -> None:
        """Keep the last runs that fit of these instead (oldest first; statuses as
        :class:`probed.check.Status` values): a state file's, copied in whole arrays."""
        start = max(len(statuses) - self._length, 0)
        self._statuses = bytearray(statuses[start:].translate(_PLUS_ONE))
        self._durations = array("f", durations[start:])
        self._times = array("I", times[start:])
        self._next = 0

    def extend(self, runs: Iterable[tuple[int, float, float]]) -> None:
        """Add ``runs`` (oldest first), e.g. ones read back from a state file."""
        for status, duration, timestamp in runs:
            self.add(status, duration, timestamp)

    def uptime(self) -> float | None:
        """The share of kept runs that passed (ok or warn), or ``None`` before the first."""
        n = len(self._statuses)
        if not n:
            return None
        return (self._statuses.count(1) + self._statuses.count(2)) / n  # ok + 1, warn + 1

    def counts(self) -> tuple[int, int, int, int]:
        """How many kept runs were ok, warn, fail and unknown."""
        s = self._statuses
        return s.count(1), s.count(2), s.count(3), s.count(4)
