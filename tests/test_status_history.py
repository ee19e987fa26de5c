"""The status page's compact run history (:class:`probed._status_history.RunLog`) and how a
check's state feeds it."""

from __future__ import annotations

import sys

import pytest

from probed._status_history import MAX_RUNS, RunLog
from probed.check import Result, Status
from probed.state import CheckState
from probed.testing import make_spec
from tests.fakes import ScriptCheck


def test_a_run_log_keeps_the_last_runs_oldest_first_when_it_wraps() -> None:
    log = RunLog(3)
    assert list(log) == [] and log.uptime() is None and len(log) == 0
    for i, status in enumerate((Status.OK, Status.FAIL, Status.WARN, Status.UNKNOWN, Status.OK)):
        log.add(status, 0.25 * i, 1_700_000_000 + i)
    assert list(log) == [
        (Status.WARN, 0.5, 1_700_000_002),
        (Status.UNKNOWN, 0.75, 1_700_000_003),
        (Status.OK, 1.0, 1_700_000_004),
    ]
    assert len(log) == 3 and log.length == 3
    assert log.uptime() == pytest.approx(2 / 3)  # warn and ok passed, unknown did not
    assert log.counts() == (1, 1, 0, 1)


def test_a_run_log_clamps_what_does_not_fit_its_arrays() -> None:
    log = RunLog(2)
    log.add(Status.OK, -1.0, -5)
    log.add(Status.FAIL, float("inf"), 2.0**40)
    (_, d1, t1), (_, d2, t2) = list(log)
    assert (d1, t1) == (0.0, 0) and d2 == pytest.approx(3.0e38, rel=1e-6) and t2 == 0xFFFFFFFF


def test_a_run_log_refuses_a_length_out_of_bounds() -> None:
    for length in (0, MAX_RUNS + 1):
        with pytest.raises(ValueError, match="keeps 1 to 10000 runs"):
            RunLog(length)


def _size(log: RunLog) -> int:
    return sys.getsizeof(log) + sys.getsizeof(log._data)


def test_a_full_run_log_costs_nine_bytes_a_run_plus_a_fixed_overhead() -> None:
    log = RunLog(1000)
    log.extend((0, 0.1, 1e9 + i) for i in range(1500))
    assert 9000 <= _size(log) <= 9000 + 150
    assert not hasattr(log, "__dict__")


def test_an_idle_check_that_ran_once_costs_little_whatever_the_length() -> None:
    log = RunLog(MAX_RUNS)
    assert _size(log) < 150
    log.add(Status.OK, 0.01, 1e9)
    assert _size(log) < 150 and len(log) == 1 and log.length == MAX_RUNS


def test_a_state_feeds_its_run_log_only_when_it_has_one() -> None:
    spec = make_spec(ScriptCheck, name="c")
    off = CheckState(spec, history=5)
    on = CheckState(spec, history=5, runlog=4)
    for state in (off, on):
        state.record(Result.ok(duration=0.1, timestamp=1_700_000_000.5))
        state.record(Result.fail("timeout", "slow", duration=2.0, timestamp=1_700_000_010.0))
    assert off.runlog is None
    assert on.runlog is not None
    assert list(on.runlog) == [(Status.OK, pytest.approx(0.1), 1_700_000_000),
                               (Status.FAIL, 2.0, 1_700_000_010)]  # fmt: skip
    assert on.runlog.uptime() == 0.5


def test_a_run_log_is_extended_from_saved_runs() -> None:
    log = RunLog(2)
    log.extend([(0, 0.1, 10.0), (2, 0.2, 20.0), (1, 0.3, 30.0)])
    assert [(s, t) for s, _, t in log] == [(2, 20), (1, 30)]


def test_a_check_is_pending_until_its_first_verdict_and_unknown_when_down_with_unknown() -> None:
    from probed._status_render import label_of

    waiting = CheckState(make_spec(ScriptCheck, name="w", success_threshold=2))
    assert label_of(waiting) == "pending"  # no run yet
    waiting.record(Result.ok())
    assert label_of(waiting) == "pending"  # one ok of the two needed
    waiting.record(Result.ok())
    assert label_of(waiting) == "ok"
    odd = CheckState(make_spec(ScriptCheck, name="u", failure_threshold=1))
    odd.record(Result(Status.UNKNOWN, "plugin", "said 3"))
    assert label_of(odd) == "unknown"  # down with unknown from the start: a verdict


def test_a_snapshot_holds_the_kept_runs_oldest_first_as_raw_arrays() -> None:
    from array import array

    log = RunLog(3)
    log.extend([(0, 0.5, 10.0), (2, 1.5, 20.0), (1, 2.5, 30.0), (3, 3.5, 40.0)])
    statuses, durations, times = log.snapshot()
    assert list(statuses) == [3, 2, 4]  # Status + 1
    assert list(array("f", durations)) == [1.5, 2.5, 3.5]
    assert list(array("I", times)) == [20, 30, 40]


def test_a_wrapped_run_log_snapshots_and_restores_its_runs_oldest_first() -> None:
    from array import array

    log = RunLog(3)
    log.extend((i % 4, 0.5 * i, 1_700_000_000 + i) for i in range(7))
    statuses, durations, times = log.snapshot()
    assert list(statuses) == [s + 1 for s, _, _ in log]
    assert list(array("f", durations)) == [d for _, d, _ in log]
    kept = [1_700_000_004, 1_700_000_005, 1_700_000_006]
    assert list(array("I", times)) == [t for _, _, t in log] == kept
    again = RunLog(2)
    again.restore(bytes(s - 1 for s in statuses), array("f", durations), array("I", times))
    assert list(again) == list(log)[1:]
    again.add(Status.FAIL, 1.0, 1_700_000_100)
    assert list(again)[-1] == (Status.FAIL, 1.0, 1_700_000_100) and len(again) == 2
