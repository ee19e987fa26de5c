"""What a check keeps between runs is compact (issue 11 point 3) and reads as before: the
packed recent runs, the failures shared until a first failure, a result's shared empty
phases and values."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

from probed import Result, Status
from probed.check import NO_NUMBERS
from probed.state import CheckState, Numbers, RecentRuns
from probed.testing import make_spec
from tests.fakes import ScriptCheck


def _state(history: int = 10) -> CheckState:
    return CheckState(make_spec(ScriptCheck, name="c"), history)


def test_recent_runs_read_like_a_bounded_list_of_tuples_oldest_first() -> None:
    runs = RecentRuns(3)
    assert len(runs) == 0 and list(runs) == [] and runs == []
    entries = [
        (0, "", "", 0.001, 10.0),
        (2, "timeout", "no answer", 5.0, 11.25),
        (1, "threshold", "81% used", 0.1 + 0.2, 12.5),  # floats come back exactly
        (3, "other", "", 1e-9, 1.7e9 + 0.123456),
    ]
    runs.extend(entries)
    assert list(runs) == entries[1:] and runs == entries[1:] and len(runs) == 3
    assert runs[0] == entries[1] and runs[-1] == entries[3] and runs[1:] == entries[2:]
    assert list(reversed(runs)) == entries[:0:-1]
    with pytest.raises(IndexError):
        runs[3]
    assert runs.maxlen == 3


def test_recent_runs_keep_texts_only_while_a_kept_run_has_one() -> None:
    runs = RecentRuns(2)
    runs.append((0, "", "", 0.1, 1.0))
    assert runs._recent_texts is None
    runs.append((2, "refused", "closed", 0.2, 2.0))
    assert runs._recent_texts is not None
    runs.append((0, "", "", 0.3, 3.0))
    assert runs._recent_texts is not None and runs[0][1:3] == ("refused", "closed")
    runs.append((0, "", "", 0.4, 4.0))
    assert runs._recent_texts is None
    assert list(runs) == [(0, "", "", 0.3, 3.0), (0, "", "", 0.4, 4.0)]


def test_a_history_of_zero_keeps_nothing() -> None:
    runs = RecentRuns(0)
    runs.append((0, "", "", 0.1, 1.0))
    assert len(runs) == 0


def test_ten_passing_runs_cost_a_fraction_of_a_list_of_tuples() -> None:
    s = _state()
    for i in range(25):
        s.record(Result.ok("fine", duration=0.01, timestamp=1.7e9 + i))
    h = s.history
    size = sys.getsizeof(s._recent) + 2 * 8  # the packed runs, and two slots of the state
    as_list = sys.getsizeof(list(h)) + sum(
        sys.getsizeof(e) + sys.getsizeof(e[3]) + sys.getsizeof(e[4]) for e in h
    )
    assert len(h) == 10 and size < 300 < 1000 < as_list


def test_checks_share_no_failures_until_their_own_first_one() -> None:
    a, b = _state(), _state()
    a.record(Result.ok())
    assert a.failures == b.failures == {}
    a.record(Result.fail("timeout", "slow"))
    a.record(Result.fail("timeout", "slow"))
    b.record(Result.fail("refused", "no"))
    assert a.failures == {"timeout": 2} and b.failures == {"refused": 1}
    assert _state().failures == {}


def test_a_result_without_phases_or_values_shares_one_read_only_empty_mapping() -> None:
    a, b = Result.ok(), Result.fail("timeout", "slow", phases={"connect": 0.1})
    assert a.phases is a.values is b.values is NO_NUMBERS
    assert a.values == {} and dict(a.values) == {} and b.phases == {"connect": 0.1}
    with pytest.raises(TypeError):
        a.values["x"] = 1.0  # type: ignore[index]
    s = _state()
    s.record(a)
    assert s.last is a and s.status is Status.OK


def test_the_last_result_keeps_phases_and_values_as_equal_compact_mappings() -> None:
    s = _state()
    phases = {"resolve": 0.001, "connect": 0.002, "tls": 0.5}
    result = Result.ok("fine", phases=phases, values={"probed_http_status_code": 200.0})
    s.record(result)
    last = s.last
    assert last is not None and last == result and last.phases == phases
    assert isinstance(last.phases, Numbers) and list(last.phases.items()) == list(phases.items())
    assert last.phases["tls"] == 0.5 and last.phases.get("dns") is None and "connect" in last.phases
    with pytest.raises(KeyError):
        last.phases["dns"]
    assert dict(last.values) == {"probed_http_status_code": 200.0}
    other = _state()
    other.record(Result.fail("timeout", "slow", phases=dict(phases)))
    assert other.last is not None and other.last.phases._names is last.phases._names
    single = {"connect": 0.1}
    assert sys.getsizeof(Numbers(single)) + sys.getsizeof((0.1,)) < sys.getsizeof(single) / 1.5


def test_runs_are_counted_with_and_without_the_duration_histogram() -> None:
    spec = make_spec(ScriptCheck, name="c")
    on = CheckState(spec)
    off = CheckState(replace(spec, duration_histogram=False))
    for s in (on, off):
        s.record(Result.ok(duration=0.003))
        s.record(Result.fail("timeout", "slow", duration=20.0))
        assert s.runs == [1, 0, 1, 0] and s.duration_count == 2
    assert on.bucket_counts == [1] + [0] * 10 + [1]
    assert off.bucket_counts == [0] * 12  # not counted: nothing reads them without a histogram
