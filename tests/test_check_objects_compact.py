"""The objects every configured check keeps, kept small without changing what they read as.

An idle check (one that has run once and waits for its next run an hour later) holds a job, a
check instance, a state with its last result and two short histories: at 50,000 checks every
byte of these is 50 KB. These tests pin the compact forms (what they cost and that they read
exactly as the plain ones did): see ``benchmarks/memory.py`` for the per-check figures.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import math
import struct
import sys
import tracemalloc
from array import array
from typing import Any

import pytest

from probed import Result, Status
from probed._status_history import RunLog
from probed.check import Check
from probed.checks._endpoint import split_address
from probed.checks._net import format_addr
from probed.checks.http import HttpCheck
from probed.checks.tcp import TcpCheck
from probed.scheduler import Job, Scheduler
from probed.state import DURATION_BUCKETS, CheckState, Numbers
from probed.testing import make_spec
from tests.fakes import ScriptCheck
from tests.harness import wait_for

# -- the last result's numbers ------------------------------------------------------------------


def test_numbers_keep_every_float_exactly_and_in_order() -> None:
    items = {
        "a": 0.1 + 0.2,
        "b": -0.0,
        "c": float("inf"),
        "d": 5e-324,
        "e": 1.7e9 + 0.123456,
        "f": float("nan"),
    }
    numbers = Numbers(items)
    assert list(numbers) == list(items) and len(numbers) == 6
    for (name, got), (_, want) in zip(numbers.items(), items.items(), strict=True):
        assert struct.pack("=d", got) == struct.pack("=d", want), name  # the same bits
        assert struct.pack("=d", numbers[name]) == struct.pack("=d", want), name
    assert [struct.pack("=d", v) for v in numbers.values()] == [
        struct.pack("=d", v) for v in items.values()
    ]
    assert math.copysign(1.0, numbers["b"]) == -1.0
    with pytest.raises(KeyError):
        numbers["g"]
    assert numbers.get("g") is None and "a" in numbers and "g" not in numbers


def test_numbers_that_are_not_all_floats_are_kept_as_given() -> None:
    numbers = Numbers({"code": 200, "ratio": 0.5})
    assert type(numbers["code"]) is int and numbers["code"] == 200
    assert dict(numbers.items()) == {"code": 200, "ratio": 0.5}
    many = {f"m{i}": float(i) for i in range(100)}  # more than are packed: a tuple
    assert Numbers(many) == many and Numbers(many)["m99"] == 99.0


def test_numbers_hold_their_floats_in_one_small_block() -> None:
    phases = {"resolve": 1e-4, "connect": 2e-4, "tls": 1e-3, "processing": 2e-3, "transfer": 1e-4}
    numbers = Numbers(phases)
    packed = sys.getsizeof(numbers) + sys.getsizeof(numbers._numbers)
    as_tuple = sys.getsizeof(tuple(phases.values())) + 5 * sys.getsizeof(1.0)
    assert packed < 150 < as_tuple  # 48 + 73 bytes, where a tuple and its floats are 200
    assert Numbers(phases) == phases and repr(numbers) == repr(phases)
    connect = {"connect": 2e-4 + 1e-9}
    single = Numbers(connect)
    assert single["connect"] is connect["connect"]  # one float: kept as it is, no copy
    assert list(single.items()) == list(connect.items()) and list(single.values()) == [2e-4 + 1e-9]


# -- the state ----------------------------------------------------------------------------------


def _state(**values: Any) -> CheckState:
    return CheckState(make_spec(ScriptCheck, name="c", **values))


def test_streaks_count_consecutive_passing_or_failing_runs() -> None:
    s = _state(failure_threshold=2, success_threshold=2)
    seen = []
    for status in (Status.OK, Status.WARN, Status.FAIL, Status.UNKNOWN, Status.FAIL, Status.OK):
        s.record(Result(status, "" if status is Status.OK else "x", "m"))
        seen.append((s.ok_streak, s.fail_streak, s.up))
    up, down = (1, 0, False), (0, 3, False)
    assert seen == [up, (2, 0, True), (0, 1, True), (0, 2, False), down, up]


def test_run_counts_and_their_sum_follow_the_statuses() -> None:
    s = _state()
    for status in (Status.OK, Status.OK, Status.WARN, Status.FAIL, Status.UNKNOWN):
        s.record(Result(status, "" if status is Status.OK else "x", "", duration=0.25))
    assert s.runs == [2, 1, 1, 1] and s.duration_count == 5 and s.duration_sum == 1.25
    s.runs.append(7)  # a copy
    assert s.runs == [2, 1, 1, 1]
    assert s.bucket_counts[5] == 5 and sum(s.bucket_counts) == 5  # 0.25 s: the 0.25 bucket


def test_duration_buckets_count_every_run_in_its_bucket() -> None:
    s = _state()
    durations = [0.001, 0.005, 0.0051, 0.3, 0.3, 2.5, 9.9, 10.0, 10.1, 1e6] + [0.02] * 300
    expected = [0] * 12
    for d in durations:
        s.record(Result.ok(duration=d))
        expected[bisect.bisect_left(DURATION_BUCKETS, d)] += 1
    assert s.bucket_counts == expected and sum(expected) == len(durations)
    assert expected[0] == 2 and expected[2] == 300 and expected[11] == 2  # <=, and +Inf
    assert sys.getsizeof(s._buckets) < sys.getsizeof([0] * 12)  # one int, not a list
    off = _state(duration_histogram=False)
    off.record(Result.ok(duration=0.3))
    assert off.bucket_counts == [0] * 12 and off._buckets is None


def test_a_first_run_keeps_its_duration_once_then_sums() -> None:
    s = _state()
    s.record(Result.ok("first", duration=0.003, timestamp=1.0))
    assert s.last is not None and s.duration_sum is s.last.duration  # not an equal copy
    s.record(Result.ok("second", duration=0.001, timestamp=2.0))
    assert s.duration_sum == 0.003 + 0.001
    zero = _state()
    zero.record(Result.ok(duration=-0.0))
    assert math.copysign(1.0, zero.duration_sum) == 1.0  # 0.0 + -0.0, as before


def test_a_state_is_one_fixed_size_object_that_keeps_its_recent_runs_itself() -> None:
    s = _state()
    assert not hasattr(s, "__dict__")
    assert sys.getsizeof(s) <= 192
    s.record(Result.fail("refused", "closed", duration=0.5, timestamp=1.0))
    s.record(Result.ok("fine", duration=0.25, timestamp=2.0))
    view = s.history  # a view of the state's own runs
    assert view == [(2, "refused", "closed", 0.5, 1.0), (0, "", "", 0.25, 2.0)]
    view.append((3, "other", "x", 1.0, 3.0))
    assert s.history[-1] == (3, "other", "x", 1.0, 3.0) and len(s.history) == 3
    assert s.history.maxlen == 10 and view[0] == s.history[0]


# -- the status page's run log --------------------------------------------------------------


def test_a_run_log_is_one_block_until_full_then_written_in_place() -> None:
    log = RunLog(3)
    log.add(Status.OK, 0.5, 100)
    assert type(log._data) is bytes and sys.getsizeof(log._data) == 33 + 9
    log.add(Status.FAIL, 0.25, 101)
    assert type(log._data) is bytes
    log.add(Status.WARN, 0.125, 102)
    full: object = log._data
    assert type(full) is bytearray
    log.add(Status.UNKNOWN, 1.0, 103)
    assert log._data is full  # in place from now on
    assert list(log) == [(2, 0.25, 101), (1, 0.125, 102), (3, 1.0, 103)]
    again = RunLog(3)
    again.restore(*_saved(log))
    assert list(again) == list(log) and type(again._data) is bytearray
    short = RunLog(5)
    short.restore(*_saved(log))
    assert list(short) == list(log) and type(short._data) is bytes
    short.add(Status.OK, 2.0, 104)
    assert list(short)[-1] == (0, 2.0, 104)


def _saved(log: RunLog) -> tuple[bytes, Any, Any]:
    """What a state file keeps of ``log`` and hands to :meth:`RunLog.restore`."""
    stored, durations, times = log.snapshot()
    return bytes(b - 1 for b in stored), array("f", durations), array("I", times)


# -- the scheduler's job ----------------------------------------------------------------------


def _job(name: str, interval: float = 10.0) -> Job:
    spec = make_spec(ScriptCheck, name=name, interval=interval, timeout=1.0)
    return Job(spec, ScriptCheck(spec), CheckState(spec))


def test_a_job_is_small_and_reads_its_spec_from_its_state() -> None:
    job = _job("a")
    assert not hasattr(job, "__dict__") and sys.getsizeof(job) <= 80
    assert job.spec is job.state.spec
    assert (job.running, job.queued, job.removed, job.task) == (False, False, False, None)
    job.queued = True
    job.removed = True
    assert (job.queued, job.removed) == (True, True)
    job.queued = False
    assert (job.queued, job.removed) == (False, True)
    other = make_spec(ScriptCheck, name="b")
    with pytest.raises(ValueError, match="not for b"):
        Job(other, ScriptCheck(other), CheckState(make_spec(ScriptCheck, name="a")))


async def test_runs_due_at_the_same_time_start_in_check_name_order() -> None:
    loop = asyncio.get_running_loop()
    started: list[str] = []

    async def runner(check: Check[Any], timeout: float) -> Result:
        started.append(check.spec.name)
        return Result.ok()

    sched = Scheduler(lambda job, result: None, startup_spread=0.0, runner=runner)
    jobs = [_job(name) for name in ("m", "b", "x", "a")]
    for job in jobs:
        sched.add(job)  # before start: scheduled by start(), each at "now"
    frozen = loop.time()
    real_time = loop.time
    loop.time = lambda: frozen  # type: ignore[method-assign]
    try:
        sched.start()  # the same "now" for all four
    finally:
        loop.time = real_time  # type: ignore[method-assign]
    assert {job.due for job in jobs} == {frozen}
    await wait_for(lambda: len(started) == 4, 5, "the four first runs")
    assert started == ["a", "b", "m", "x"]  # not the order they were added in
    await sched.stop(1.0)


async def test_a_running_job_is_one_with_a_task() -> None:
    gate = asyncio.Event()

    async def runner(check: Check[Any], timeout: float) -> Result:
        await gate.wait()
        return Result.ok()

    sched = Scheduler(lambda job, result: None, startup_spread=0.0, runner=runner)
    sched.start()
    job = _job("a")
    sched.add(job)
    await wait_for(lambda: job.task is not None, 5, "the run to start")
    assert job.running and not job.queued
    gate.set()
    await wait_for(lambda: job.task is None, 5, "the run to end")
    assert not job.running
    await sched.stop(1.0)


# -- the check instances ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port"),
    [("127.0.0.1", 80), ("::1", 8080), ("fe80::1%lo", 443), ("example.test", 65535)],
)
def test_split_address_reads_back_what_format_addr_wrote(host: str, port: int) -> None:
    assert split_address(format_addr(host, port)) == (host, port)


def test_a_tcp_check_keeps_its_address_as_written_and_few_attributes() -> None:
    spec = make_spec(TcpCheck, address="127.0.0.1:5432")
    check = TcpCheck(spec)
    assert check.where is check.options.address  # the options' string, not a copy
    assert set(vars(check)) == {"spec", "options", "_probed_ready"}  # the rest: class defaults
    bracketed = TcpCheck(make_spec(TcpCheck, address="[::1]:5432"))
    assert bracketed.where == "[::1]:5432" and split_address(bracketed.where) == ("::1", 5432)
    odd = TcpCheck(make_spec(TcpCheck, address="[127.0.0.1]:0080"))
    assert odd.where == "127.0.0.1:80"  # normalised when the text differs
    expecting = TcpCheck(make_spec(TcpCheck, address="127.0.0.1:6379", expect="PONG"))
    assert expecting.expect is not None and expecting.expect.pattern == "PONG"
    assert check.expect is None and check.ssl_context is None


async def test_check_instances_keep_no_dict_of_their_own_once_set_up_and_run() -> None:
    """On CPython 3.11 an instance holds its attributes in a small array while it gets at most
    one attribute after ``__init__``; a second makes it a dict of its own (~460 bytes)."""
    tracemalloc.start()
    try:
        for kind, options in (
            (HttpCheck, {"url": "http://127.0.0.1:8080/"}),
            (TcpCheck, {"address": "127.0.0.1:8080"}),
        ):
            specs = [make_spec(kind, name=f"c{i}", **options) for i in range(200)]
            checks = [kind(spec) for spec in specs]
            await checks[0].setup()  # first-time work (the system CA store), not per check
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for check in checks:
                await check.setup()
                check._probed_ready = True  # as the runner marks it
            grown = (tracemalloc.get_traced_memory()[0] - before) / len(checks)
            # (an http check's share of a short-lived tuple the interpreter keeps for reuse,
            # about 130 bytes while fewer than 2,000 are kept, is not the check's)
            assert grown < 250, f"{kind.__name__}: {grown:.0f} bytes a check"
    finally:
        tracemalloc.stop()


async def test_http_checks_that_fetch_the_same_way_share_one_client_config() -> None:
    def made(**options: Any) -> HttpCheck:
        return HttpCheck(make_spec(HttpCheck, **options))

    a = made(url="http://127.0.0.1:8080/a")
    b = made(url="http://127.0.0.1:9090/b?x=1")  # another URL: the same client config
    ip4 = made(url="http://dual.test:8080/", preferred_ip_protocol="ip4")
    ip6 = made(url="http://dual.test:8080/", preferred_ip_protocol="ip6")
    limited = made(url="http://127.0.0.1:8080/", max_body_size="1KiB")
    tls = made(url="https://127.0.0.1:8443/")
    tls2 = made(url="https://127.0.0.1:8443/")
    for check in (a, b, ip4, ip6, limited, tls, tls2):
        await check.setup()
    assert a.client is b.client and a.client is not None
    assert ip4.client is not ip6.client  # equal ints (AF_UNSPEC), different preferences
    assert ip4.client is not None and ip6.client is not None
    assert ip4.client.family.prefer != ip6.client.family.prefer  # type: ignore[attr-defined]
    assert limited.client is not a.client
    assert tls.client is not tls2.client  # each its own SSL context: not shared
    assert a.url.port == 8080 and a.url is a.request.url
