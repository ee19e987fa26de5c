"""Threshold semantics and counters of CheckState (Kubernetes probe semantics)."""

from __future__ import annotations

import pytest

from probed import Result, Status
from probed.state import CheckState, StateStore
from probed.testing import make_spec
from tests.fakes import ScriptCheck


def state(failure: int = 3, success: int = 1, readiness: bool = True) -> CheckState:
    spec = make_spec(ScriptCheck, name="c")
    from dataclasses import replace

    return CheckState(
        replace(spec, failure_threshold=failure, success_threshold=success, readiness=readiness)
    )


def ok() -> Result:
    return Result.ok("fine", duration=0.02, timestamp=1.0)


def fail() -> Result:
    return Result.fail("timeout", "slow", duration=3.0, timestamp=2.0)


def test_check_is_unknown_and_not_up_before_first_run() -> None:
    s = state()
    assert s.status is Status.UNKNOWN
    assert not s.up
    assert not s.started


def test_first_pass_makes_check_up_with_success_threshold_one() -> None:
    s = state()
    t = s.record(ok())
    assert s.up
    assert t is not None and (t.old, t.new) == (Status.UNKNOWN, Status.OK)


def test_check_goes_down_only_after_failure_threshold_consecutive_failures() -> None:
    s = state(failure=3)
    s.record(ok())
    assert s.record(fail()) is None
    assert s.record(fail()) is None
    assert s.up and s.status is Status.OK
    t = s.record(fail())
    assert not s.up
    assert t is not None and (t.old, t.new) == (Status.OK, Status.FAIL)


def test_a_pass_resets_the_failure_streak() -> None:
    s = state(failure=2)
    s.record(ok())
    s.record(fail())
    s.record(ok())
    s.record(fail())
    assert s.up


def test_recovery_needs_success_threshold_consecutive_passes() -> None:
    s = state(failure=1, success=2)
    s.record(fail())
    assert s.status is Status.FAIL and not s.up
    assert s.record(ok()) is None
    assert not s.up
    t = s.record(ok())
    assert s.up and t is not None and t.new is Status.OK


def test_failures_before_first_verdict_keep_status_unknown() -> None:
    s = state(failure=3)
    s.record(fail())
    s.record(fail())
    assert s.status is Status.UNKNOWN and not s.up
    s.record(fail())
    assert s.status is Status.FAIL


def test_warn_counts_as_passing_and_is_reported_as_warn() -> None:
    s = state()
    s.record(ok())
    t = s.record(Result.warn("threshold", "80% used"))
    assert s.up
    assert t is not None and t.new is Status.WARN


def test_unknown_counts_as_failing() -> None:
    s = state(failure=1)
    s.record(ok())
    s.record(Result.unknown("other", "cannot tell"))
    assert not s.up and s.status is Status.UNKNOWN


@pytest.mark.parametrize(
    ("durations", "expected_buckets"),
    [([0.001, 0.02, 20.0], {0: 1, 2: 1, 11: 1})],
)
def test_duration_histogram_and_reason_counters(
    durations: list[float], expected_buckets: dict[int, int]
) -> None:
    s = state()
    for d in durations:
        s.record(Result.fail("timeout", "x", duration=d))
    for index, count in expected_buckets.items():
        assert s.bucket_counts[index] == count
    assert s.failures == {"timeout": 3}
    assert s.runs[Status.FAIL] == 3
    assert s.duration_count == 3


def test_history_is_bounded() -> None:
    s = state()
    for _ in range(25):
        s.record(ok())
    assert len(s.history) == 10


def test_store_ready_and_started_only_consider_readiness_checks() -> None:
    a, b = state(), state(readiness=False)
    store = StateStore({"a": a, "b": b})
    assert not store.started() and not store.ready()
    a.record(ok())
    assert store.started() and store.ready()
    b.record(fail())
    assert store.ready()
