"""CheckState's counters, history and transitions as every reader (metrics, health, API) sees them.

Complements ``test_state.py`` (threshold semantics) with the exact values of the fields the
renderers publish, so a change that shifts a counter or keeps a stale value fails here.
"""

from __future__ import annotations

from dataclasses import replace

from probed import Result, Status
from probed.state import CheckState, StateStore, StateTable, Transition
from probed.testing import make_spec
from tests.fakes import ScriptCheck


def state(
    name: str = "c", failure: int = 1, success: int = 1, readiness: bool = True
) -> CheckState:
    spec = make_spec(ScriptCheck, name=name)
    return CheckState(
        replace(spec, failure_threshold=failure, success_threshold=success, readiness=readiness)
    )


def test_a_new_state_has_every_counter_at_zero_and_is_not_up() -> None:
    s = state()
    assert s.up is False
    assert (s.ok_streak, s.fail_streak) == (0, 0)
    assert s.runs == [0, 0, 0, 0]
    assert s.failures == {}
    assert (s.duration_sum, s.duration_count) == (0.0, 0)
    assert s.bucket_counts == [0] * 12
    assert (s.state_changes, s.skipped_runs) == (0, 0)
    assert s.changed_at == 0.0
    assert s.last is None and len(s.history) == 0
    # the scheduler reads version 0 as "never ran nor skipped" (quick first run, then phase)
    assert s.version == 0


def test_streaks_count_consecutive_passes_and_failures_and_reset_each_other() -> None:
    s = state(failure=5, success=5)
    s.record(Result.ok())
    s.record(Result.warn("threshold", "high"))
    assert (s.ok_streak, s.fail_streak) == (2, 0)
    s.record(Result.fail("timeout", "slow"))
    assert (s.ok_streak, s.fail_streak) == (0, 1)
    s.record(Result.unknown("other", "?"))
    assert (s.ok_streak, s.fail_streak) == (0, 2)
    s.record(Result.ok())
    assert (s.ok_streak, s.fail_streak) == (1, 0)


def test_going_down_sets_up_to_false_not_just_falsy() -> None:
    s = state(failure=1)
    s.record(Result.ok())
    assert s.up is True
    s.record(Result.fail("timeout", "slow"))
    assert s.up is False


def test_history_keeps_messages_of_warn_fail_unknown_and_drops_those_of_ok() -> None:
    s = state(failure=9)
    s.record(Result.ok("took 3 ms", duration=0.003, timestamp=10.0))
    s.record(Result.warn("threshold", "81% used", duration=0.004, timestamp=11.0))
    s.record(Result.fail("timeout", "no answer", duration=5.0, timestamp=12.0))
    s.record(Result.unknown("other", "cannot tell", duration=0.5, timestamp=13.0))
    assert list(s.history) == [
        (int(Status.OK), "", "", 0.003, 10.0),
        (int(Status.WARN), "threshold", "81% used", 0.004, 11.0),
        (int(Status.FAIL), "timeout", "no answer", 5.0, 12.0),
        (int(Status.UNKNOWN), "other", "cannot tell", 0.5, 13.0),
    ]


def test_each_status_change_counts_once_and_stamps_its_time() -> None:
    s = state(failure=1)
    assert s.record(Result.ok(timestamp=100.0)) == Transition(Status.UNKNOWN, Status.OK)
    assert (s.state_changes, s.changed_at) == (1, 100.0)
    assert s.record(Result.ok(timestamp=101.0)) is None
    assert (s.state_changes, s.changed_at) == (1, 100.0)
    assert s.record(Result.warn("threshold", "x", timestamp=102.0)) == Transition(
        Status.OK, Status.WARN
    )
    assert s.record(Result.fail("timeout", "x", timestamp=103.0)) == Transition(
        Status.WARN, Status.FAIL
    )
    assert (s.state_changes, s.changed_at) == (3, 103.0)


def test_every_record_and_skip_changes_the_version_renderers_cache_on() -> None:
    s = state()
    seen = {s.version}
    s.record(Result.ok())
    seen.add(s.version)
    s.skipped()
    seen.add(s.version)
    s.skipped()
    seen.add(s.version)
    assert len(seen) == 4


def test_a_skipped_run_counts_one_skip_and_no_run() -> None:
    s = state()
    s.skipped()
    s.skipped()
    assert s.skipped_runs == 2
    assert s.runs == [0, 0, 0, 0] and s.last is None


def test_a_new_store_is_empty() -> None:
    store = StateStore()
    assert len(store) == 0
    assert list(store) == []
    assert "a" not in store and store.get("a") is None
    assert store.ready() and store.started()


def test_store_lists_states_in_configuration_order_and_finds_them_by_name() -> None:
    b, a, c = state("b"), state("a"), state("c", readiness=False)
    store = StateStore({"b": b, "a": a, "c": c})
    assert list(store) == [b, a, c]
    assert len(store) == 3
    assert "a" in store and "z" not in store
    assert store.get("c") is c and store.get("z") is None


def test_the_store_readers_get_cannot_change_which_checks_exist() -> None:
    store = StateStore({"a": state("a")})
    for mutator in ("replace", "update", "pop", "clear", "__setitem__", "__delitem__"):
        assert not hasattr(store, mutator), mutator


def test_a_table_replaces_what_its_one_view_shows_in_the_new_order() -> None:
    table = StateTable()
    view = table.view
    a, b = state("a"), state("b")
    table.replace({"a": a})
    assert list(view) == [a]
    table.replace({"b": b, "a": a})
    assert table.view is view
    assert list(view) == [b, a] and view.get("b") is b
    table.replace({})
    assert len(view) == 0 and view.get("a") is None


def test_store_is_ready_only_when_every_readiness_check_is_up() -> None:
    a, b = state("a"), state("b")
    store = StateStore({"a": a, "b": b})
    a.record(Result.ok())
    assert store.started() is False and store.ready() is False
    b.record(Result.fail("timeout", "slow"))
    assert store.started() is True and store.ready() is False
    b.record(Result.ok())
    assert store.ready() is True
