"""Per-check state: last result, thresholds (Kubernetes semantics), counters and short history.

Results fold into :class:`CheckState` in one place, :meth:`CheckState.record`. Every reader
(metrics, health, API, logs, plugins) reads state through :class:`StateStore`, a read-only view;
the daemon swaps the set of states on reload through a :class:`StateTable`, which it keeps to
itself.

Threshold semantics follow Kubernetes probes: a check starts *not up*; it becomes up after
``success_threshold`` consecutive passing runs (ok or warn) and goes down after
``failure_threshold`` consecutive failing runs (fail or unknown). Its *status* is the
thresholded verdict: ``unknown`` until the first verdict, then the status of the latest passing
run while up (ok or warn), and ``fail`` (or ``unknown``) while down.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, overload

from probed._numbers import Numbers
from probed._status_history import RunLog
from probed.check import Result, Status
from probed.spec import CheckSpec

__all__ = [
    "DURATION_BUCKETS",
    "CheckState",
    "HistoryEntry",
    "Numbers",
    "RecentRuns",
    "StateStore",
    "StateTable",
    "Transition",
]

DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds of the ``probed_check_duration_seconds`` histogram (plus ``+Inf``)."""


_BUCKET_FIELDS: Final = struct.Struct(f"<{len(DURATION_BUCKETS) + 1}Q")
"""A check's duration bucket counts: 64-bit fields of one int, the first bucket lowest."""
_BUCKET_ONE: Final = tuple(1 << (64 * i) for i in range(len(DURATION_BUCKETS) + 1))
"""One run in each bucket, as added to that int."""

HistoryEntry = tuple[int, str, str, float, float]
"""A past run: ``(status, reason, message, duration, timestamp)``, as :class:`RecentRuns`
yields it (it keeps its runs packed, not as tuples: nothing for the garbage collector)."""


_NO_FAILURES: Final[dict[str, int]] = {}
"""The failures of every check that has not failed yet: one shared empty dict, never written
(:meth:`CheckState.record` gives a check its own on its first failure)."""

_ENTRY: Final = struct.Struct("=Bdd")  # status, duration, timestamp: 17 bytes a run
_NO_TEXT: Final = ("", "")


class _RunsHolder(Protocol):
    """Where a :class:`RecentRuns` keeps its runs: itself, or a check's state."""

    _recent: bytes
    _recent_texts: tuple[tuple[str, str], ...] | None


class RecentRuns(Sequence[HistoryEntry]):
    """The last ``maxlen`` runs, oldest first: a sequence that drops its oldest entry when
    full.

    Like ``deque(maxlen=...)`` for what the state needs (``append``, ``extend``, ``maxlen``,
    iteration, ``len``, indexing), at a fraction of the memory. The runs are packed in one
    ``bytes`` (status, duration and timestamp: 17 bytes a run, the floats kept exactly);
    reasons and messages are kept only while some kept run has one (a passing run has none),
    as a tuple of ``(reason, message)`` beside it. Ten passing runs take about 220 bytes,
    where a list of ten tuples took about 1.5 KB (a tuple and two floats a run).

    ``RecentRuns(maxlen)`` keeps its runs itself. :attr:`CheckState.history` is a view of the
    same kind over runs its state keeps in two slots of its own (one object less per check):
    it reads and changes the state's runs.
    """

    __slots__ = ("_holder", "_recent", "_recent_texts", "maxlen")

    def __init__(self, maxlen: int, holder: _RunsHolder | None = None) -> None:
        self.maxlen = maxlen
        self._holder = holder
        if holder is None:
            self._recent = b""
            self._recent_texts: tuple[tuple[str, str], ...] | None = None

    def _runs(self) -> _RunsHolder:
        return self if self._holder is None else self._holder

    def __len__(self) -> int:
        return len(self._runs()._recent) // 17

    def _entry(self, i: int) -> HistoryEntry:
        runs = self._runs()
        status, duration, timestamp = _ENTRY.unpack_from(runs._recent, 17 * i)
        texts = runs._recent_texts
        reason, message = _NO_TEXT if texts is None else texts[i]
        return (status, reason, message, duration, timestamp)

    @overload
    def __getitem__(self, index: int) -> HistoryEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[HistoryEntry]: ...
    def __getitem__(self, index: int | slice) -> HistoryEntry | list[HistoryEntry]:
        n = len(self)
        if isinstance(index, slice):
            return [self._entry(i) for i in range(*index.indices(n))]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("history index out of range")
        return self._entry(index)

    def __iter__(self) -> Iterator[HistoryEntry]:
        runs = self._runs()
        texts = runs._recent_texts
        for i, (status, duration, timestamp) in enumerate(_ENTRY.iter_unpack(runs._recent)):
            reason, message = _NO_TEXT if texts is None else texts[i]
            yield (status, reason, message, duration, timestamp)

    def __reversed__(self) -> Iterator[HistoryEntry]:
        for i in range(len(self) - 1, -1, -1):
            yield self._entry(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecentRuns | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecentRuns({list(self)!r}, maxlen={self.maxlen})"

    def append(self, entry: HistoryEntry, /) -> None:
        """Add ``entry`` as the newest, dropping the oldest when ``maxlen`` are kept."""
        _keep_run(self._runs(), self.maxlen, entry)

    def extend(self, entries: Iterable[HistoryEntry], /) -> None:
        """:meth:`append` each of ``entries`` in order."""
        for entry in entries:
            self.append(entry)


def _keep_run(runs: _RunsHolder, maxlen: int, entry: HistoryEntry) -> None:
    """Add ``entry`` to the runs ``runs`` keeps, dropping the oldest when ``maxlen`` are."""
    if maxlen <= 0:
        return
    status, reason, message, duration, timestamp = entry
    packed, texts = runs._recent, runs._recent_texts
    drop = 17 if len(packed) >= 17 * maxlen else 0
    packed = runs._recent = packed[drop:] + _ENTRY.pack(status, duration, timestamp)
    text = (reason, message) if reason or message else _NO_TEXT
    if texts is None:
        if text is _NO_TEXT:
            return
        texts = (_NO_TEXT,) * (len(packed) // 17 - 1 + (1 if drop else 0))
    texts = (*texts[1 if drop else 0 :], text)
    runs._recent_texts = None if all(t is _NO_TEXT for t in texts) else texts


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a check's thresholded status."""

    old: Status
    new: Status


class CheckState:
    """Everything known about one check. Mutated only by :meth:`record` and :meth:`skipped`."""

    __slots__ = (
        "_buckets",
        "_fail_runs",
        "_history_len",
        "_ok_runs",
        "_recent",
        "_recent_texts",
        "_streak",
        "_unknown_runs",
        "_warn_runs",
        "changed_at",
        "duration_sum",
        "failures",
        "last",
        "runlog",
        "skipped_runs",
        "spec",
        "state_changes",
        "status",
        "up",
        "version",
    )

    def __init__(self, spec: CheckSpec, history: int = 10, runlog: int = 0) -> None:
        self.spec = spec
        # the status page's compact history (probed._status_history); none while it is off
        self.runlog = RunLog(runlog) if runlog else None
        self.last: Result | None = None
        self.status = Status.UNKNOWN
        self.up = False
        self._streak = 0  # consecutive passing runs (> 0) or failing runs (< 0)
        # the last `history` runs, packed (see RecentRuns: `history` is a view of these)
        self._history_len = history
        self._recent = b""
        self._recent_texts: tuple[tuple[str, str], ...] | None = None
        # runs by Status (four ints, not a list: 32 bytes, not 88), and with
        # duration_histogram the non-cumulative duration buckets, the last +Inf, as one int of
        # 64-bit fields (~50-100 bytes, where a list of 12 ints is 152; see bucket_counts)
        self._ok_runs = self._warn_runs = self._fail_runs = self._unknown_runs = 0
        self._buckets: int | None = 0 if spec.duration_histogram else None
        self.failures: dict[str, int] = _NO_FAILURES  # its own dict from the first failure
        self.duration_sum = 0.0
        self.state_changes = 0
        self.skipped_runs = 0
        self.changed_at = 0.0
        self.version = 0  # bumped on every change, so renderers can cache

    @property
    def runs(self) -> list[int]:
        """How many runs ended ok, warn, fail and unknown (indexed by :class:`Status`): a copy."""
        return [self._ok_runs, self._warn_runs, self._fail_runs, self._unknown_runs]

    @property
    def bucket_counts(self) -> list[int]:
        """Runs per ``DURATION_BUCKETS`` bucket, non-cumulative, the last ``+Inf``: a copy.
        Counted only for a check with ``duration_histogram`` (the only readers); all zero
        for one without."""
        buckets = self._buckets
        if buckets is None:
            return [0] * (len(DURATION_BUCKETS) + 1)
        return list(_BUCKET_FIELDS.unpack(buckets.to_bytes(_BUCKET_FIELDS.size, "little")))

    @property
    def history(self) -> RecentRuns:
        """The last runs (at most the ``history`` given), oldest first, as
        ``(status, reason, message, duration, timestamp)``: a view of the runs this state
        keeps packed (a message only for a run that did not pass ok)."""
        return RecentRuns(self._history_len, self)

    @property
    def duration_count(self) -> int:
        """How many runs were recorded (the count of ``duration_sum``)."""
        return self._ok_runs + self._warn_runs + self._fail_runs + self._unknown_runs

    @property
    def ok_streak(self) -> int:
        """Consecutive passing runs (ok or warn) up to the last one (0 after a failing run)."""
        return self._streak if self._streak > 0 else 0

    @property
    def fail_streak(self) -> int:
        """Consecutive failing runs (fail or unknown) up to the last one (0 after a passing
        run)."""
        return -self._streak if self._streak < 0 else 0

    @property
    def started(self) -> bool:
        """True once the check has finished its first run."""
        return self.last is not None

    def record(self, result: Result) -> Transition | None:
        """Fold one run's result into the state; return the transition, if any.

        The result is kept as :attr:`last`; its ``phases`` and ``values`` dicts, if any, as
        :class:`Numbers` (equal, half the memory: every check keeps its last result).
        """
        phases, values = result.phases, result.values
        first = self.last is None
        if (phases and type(phases) is dict) or (values and type(values) is dict):
            self.last = Result(
                result.status,
                result.reason,
                result.message,
                Numbers(phases) if phases and type(phases) is dict else phases,
                Numbers(values) if values and type(values) is dict else values,
                result.samples,
                result.duration,
                result.timestamp,
            )
        else:
            self.last = result
        # Messages of passing runs mostly differ only in timings: not worth ~100 bytes each.
        message = "" if result.status is Status.OK else result.message
        _keep_run(
            self,
            self._history_len,
            (int(result.status), result.reason, message, result.duration, result.timestamp),
        )
        if self.runlog is not None:
            self.runlog.add(result.status, result.duration, result.timestamp)
        status = result.status
        passed = status is Status.OK or status is Status.WARN
        if status is Status.OK:
            self._ok_runs += 1
        elif passed:
            self._warn_runs += 1
        elif status is Status.FAIL:
            self._fail_runs += 1
        else:
            self._unknown_runs += 1
        if not passed:
            failures = self.failures
            if failures is _NO_FAILURES:
                failures = self.failures = {}
            failures[result.reason] = failures.get(result.reason, 0) + 1
        duration = result.duration
        buckets = self._buckets
        if buckets is not None:
            self._buckets = buckets + _BUCKET_ONE[bisect.bisect_left(DURATION_BUCKETS, duration)]
        if first and type(duration) is float and duration > 0.0:
            self.duration_sum = duration  # the last result's float, not an equal copy
        else:
            self.duration_sum += duration
        self.version += 1

        spec = self.spec
        old = self.status
        streak = self._streak
        if passed:
            streak = self._streak = streak + 1 if streak > 0 else 1
            if self.up or streak >= spec.success_threshold:
                self.up = True
                new = result.status
            else:
                new = old
        else:
            streak = self._streak = streak - 1 if streak < 0 else -1
            if -streak >= spec.failure_threshold:
                self.up = False
                new = result.status
            else:
                new = old
        if new is old:
            return None
        self.status = new
        self.state_changes += 1
        self.changed_at = result.timestamp
        return Transition(old, new)

    def skipped(self) -> None:
        """Count a run that was skipped because the previous one was still going."""
        self.skipped_runs += 1
        self.version += 1


class StateStore:
    """Every check's state by name, in configuration order: the read-only view.

    This is what readers get (``/metrics``, health, the API, plugins' ``states``). It has no
    method that changes which checks exist; a :class:`StateTable` does that.
    """

    __slots__ = ("_states",)

    def __init__(self, states: Mapping[str, CheckState] | None = None) -> None:
        self._states: Mapping[str, CheckState] = dict(states or {})

    def __iter__(self) -> Iterator[CheckState]:
        return iter(self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, name: object) -> bool:
        return name in self._states

    def get(self, name: str) -> CheckState | None:
        """The state of check ``name``, or ``None``."""
        return self._states.get(name)

    def generation(self) -> tuple[object, int]:
        """Changes whenever a check changes or the set of checks does (a reload): lets a
        reader reuse what it rendered from the same generation. Compare the first item by
        identity (it is the set of checks itself), the second by value."""
        return self._states, sum(s.version for s in self._states.values())

    def ready(self) -> bool:
        """True while every readiness check is up."""
        return all(s.up for s in self._states.values() if s.spec.readiness)

    def started(self) -> bool:
        """True once every readiness check has finished its first run."""
        return all(s.last is not None for s in self._states.values() if s.spec.readiness)


class StateTable:
    """The writing side of a :class:`StateStore`, kept by the daemon's reload unit.

    ``view`` is handed to readers once; :meth:`replace` changes what that same view shows.
    """

    __slots__ = ("view",)

    def __init__(self) -> None:
        self.view = StateStore()

    def replace(self, states: Mapping[str, CheckState]) -> None:
        """Show ``states`` (in their order) through :attr:`view` from now on."""
        self.view._states = states
