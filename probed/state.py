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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from probed._status_history import RunLog
from probed.check import Result, Status
from probed.spec import CheckSpec

__all__ = [
    "DURATION_BUCKETS",
    "CheckState",
    "HistoryEntry",
    "RecentRuns",
    "StateStore",
    "StateTable",
    "Transition",
]

DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds of the ``probed_check_duration_seconds`` histogram (plus ``+Inf``)."""


HistoryEntry = tuple[int, str, str, float, float]
"""A past run: ``(status, reason, message, duration, timestamp)``.

A plain tuple of atoms on purpose: the garbage collector stops tracking such tuples, so ten
entries for each of 50,000 checks cost no time in full collections.
"""


class RecentRuns(list[HistoryEntry]):
    """The last ``maxlen`` runs, oldest first: a list that drops its oldest entry when full.

    Like ``deque(maxlen=...)`` for what the state needs (``append``, ``extend``, ``maxlen``,
    iteration), at a fraction of the memory: a deque always holds a 64-slot block (760 bytes
    with its header), ten entries in a list take 184.
    """

    __slots__ = ("maxlen",)

    def __init__(self, maxlen: int) -> None:
        super().__init__()
        self.maxlen = maxlen

    def append(self, entry: HistoryEntry, /) -> None:
        """Add ``entry`` as the newest, dropping the oldest when ``maxlen`` are kept."""
        if len(self) >= self.maxlen:
            if self.maxlen <= 0:
                return
            del self[0]
        super().append(entry)

    def extend(self, entries: Iterable[HistoryEntry], /) -> None:
        """:meth:`append` each of ``entries`` in order."""
        for entry in entries:
            self.append(entry)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a check's thresholded status."""

    old: Status
    new: Status


class CheckState:
    """Everything known about one check. Mutated only by :meth:`record` and :meth:`skipped`."""

    __slots__ = (
        "bucket_counts",
        "changed_at",
        "duration_count",
        "duration_sum",
        "fail_streak",
        "failures",
        "history",
        "last",
        "ok_streak",
        "runlog",
        "runs",
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
        self.ok_streak = 0
        self.fail_streak = 0
        self.history = RecentRuns(history)
        self.runs = [0, 0, 0, 0]  # indexed by Status
        self.failures: dict[str, int] = {}
        self.bucket_counts = [0] * (len(DURATION_BUCKETS) + 1)  # non-cumulative; last is +Inf
        self.duration_sum = 0.0
        self.duration_count = 0
        self.state_changes = 0
        self.skipped_runs = 0
        self.changed_at = 0.0
        self.version = 0  # bumped on every change, so renderers can cache

    @property
    def started(self) -> bool:
        """True once the check has finished its first run."""
        return self.last is not None

    def record(self, result: Result) -> Transition | None:
        """Fold one run's result into the state; return the transition, if any."""
        self.last = result
        # Messages of passing runs mostly differ only in timings: not worth ~100 bytes each.
        message = "" if result.status is Status.OK else result.message
        self.history.append(
            (int(result.status), result.reason, message, result.duration, result.timestamp)
        )
        if self.runlog is not None:
            self.runlog.add(result.status, result.duration, result.timestamp)
        self.runs[result.status] += 1
        if not result.status.passed:
            self.failures[result.reason] = self.failures.get(result.reason, 0) + 1
        duration = result.duration
        self.bucket_counts[bisect.bisect_left(DURATION_BUCKETS, duration)] += 1
        self.duration_sum += duration
        self.duration_count += 1
        self.version += 1

        spec = self.spec
        old = self.status
        if result.status.passed:
            self.ok_streak += 1
            self.fail_streak = 0
            if self.up or self.ok_streak >= spec.success_threshold:
                self.up = True
                new = result.status
            else:
                new = old
        else:
            self.fail_streak += 1
            self.ok_streak = 0
            if self.fail_streak >= spec.failure_threshold:
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
