"""The runner's contracts with plugin code: setup failures and hangs (retried), the message cap,
a run() returning something that is not a Result, and unbounded reasons becoming ``other``.

Each contract is checked where the runner enforces it (``probed.runner.execute``) and where a
user sees it (the running daemon's API and metrics).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probed import runner
from probed.check import Check, CheckOptions, Result, Status
from probed.plugins import get_plugin_manager
from probed.spec import CheckSpec
from tests.harness import running_daemon, wait_for, write

PLUGINS = Path(__file__).parent / "data" / "plugins"


def outcome_type() -> Any:
    """The ``outcome`` check class, loaded through the plugin loader like any drop-in."""
    from probed.plugins import check_types

    pm = get_plugin_manager(builtins=(), plugins_dirs=[PLUGINS], entry_points=False)
    return check_types(pm)["outcome"].cls


def outcome(timeout: float = 1.0, **options: Any) -> Any:
    cls = outcome_type()
    spec = CheckSpec(
        name="c",
        type="outcome",
        interval=timeout * 2,
        timeout=timeout,
        options=cls.options_model.model_validate(options),
    )
    return cls(spec)


# -- setup() ----------------------------------------------------------------------------------


async def test_setup_that_raises_is_a_failed_run_with_reason_exception_and_is_retried() -> None:
    check = outcome(setup="raise", setup_failures=2)
    first = await runner.execute(check, 1.0)
    assert first.status is Status.FAIL and first.reason == "exception"
    assert first.message == "setup failed: ConnectionError: setup attempt 1 refused"
    assert check.run_calls == 0, "run() must not be called when setup() failed"
    assert first.timestamp > 0

    second = await runner.execute(check, 1.0)
    assert second.status is Status.FAIL and "setup attempt 2 refused" in second.message

    third = await runner.execute(check, 1.0)
    assert third.status is Status.OK and third.message == "ok after 3 setup call(s)"
    fourth = await runner.execute(check, 1.0)
    assert fourth.status is Status.OK
    assert check.setup_calls == 3, "a setup() that succeeded is not called again"
    assert check.run_calls == 2


async def test_setup_that_hangs_is_cancelled_at_its_budget_and_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real budget is SETUP_TIMEOUT (10 s) or the check's timeout if longer; shortened here,
    # and the daemon-level test below uses the real one.
    monkeypatch.setattr(runner, "SETUP_TIMEOUT", 0.2)
    check = outcome(timeout=0.1, setup="hang", setup_failures=1)
    first = await runner.execute(check, 0.1)
    assert first.status is Status.FAIL and first.reason == "timeout"
    assert first.message == "setup did not finish within 0.2s"
    assert check.setup_cancelled == 1 and check.run_calls == 0
    second = await runner.execute(check, 0.1)
    assert second.status is Status.OK and check.setup_calls == 2 and check.run_calls == 1


async def test_setup_budget_is_the_checks_timeout_when_longer_than_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "SETUP_TIMEOUT", 0.05)
    check = outcome(timeout=0.3, setup="hang", setup_failures=1)
    first = await runner.execute(check, 0.3)
    assert first.reason == "timeout" and first.message == "setup did not finish within 0.3s"


async def test_daemon_reports_a_failing_setup_and_runs_the_check_once_setup_succeeds(
    tmp_path: Path,
) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - name: flaky-setup
            type: outcome
            setup: raise
            setup_failures: 2
            interval: 1s
            timeout: 500ms
            failure_threshold: 1
        """,
    )
    async with running_daemon(tmp_path, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("flaky-setup", 1)
        _, body, _ = await r.get("/api/v1/checks/flaky-setup")
        view = json.loads(body)
        assert view["status"] == "fail"
        assert view["last_result"]["reason"] == "exception"
        assert view["last_result"]["message"].startswith("setup failed: ConnectionError")
        await wait_for(lambda: r.state("flaky-setup").status is Status.OK, 10, "setup to pass")
        _, body, _ = await r.get("/api/v1/checks/flaky-setup")
        view = json.loads(body)
        assert view["last_result"]["message"] == "ok after 3 setup call(s)"
        assert view["runs"] >= 3
        history = [h["reason"] for h in view["history"]]
        assert history[-2:] == ["exception", "exception"]  # newest first: the oldest two failed


async def test_daemon_cuts_a_hanging_setup_at_ten_seconds_and_retries_it(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: slow-setup, type: outcome, setup: hang, setup_failures: 1,
             interval: 1s, timeout: 500ms, failure_threshold: 1}
        """,
    )
    async with running_daemon(tmp_path, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("slow-setup", 1, timeout=30)
        last = r.state("slow-setup").last
        assert last.status is Status.FAIL and last.reason == "timeout"
        assert last.message == f"setup did not finish within {runner.SETUP_TIMEOUT:g}s"
        assert runner.SETUP_TIMEOUT == 10.0
        await r.runs("slow-setup", 2, timeout=30)
        assert r.state("slow-setup").last.status is Status.OK
        # the overlapping slots were skipped, not queued behind the hanging setup
        assert r.state("slow-setup").skipped_runs >= 1


# -- results ----------------------------------------------------------------------------------


async def test_messages_longer_than_500_characters_are_cut_with_an_ellipsis() -> None:
    check = outcome(status="fail", reason="assertion", message="0123456789", repeat=100)
    result = await runner.execute(check, 1.0)
    assert len(result.message) == 500
    assert result.message == ("0123456789" * 50)[:499] + "…"


async def test_a_message_of_exactly_500_characters_is_kept_whole() -> None:
    check = outcome(status="warn", reason="threshold", message="x", repeat=500)
    result = await runner.execute(check, 1.0)
    assert result.message == "x" * 500


async def test_daemon_api_shows_long_messages_cut_at_500(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: chatty, type: outcome, status: fail, reason: assertion, message: "abc ",
             repeat: 1000, interval: 1s, timeout: 500ms}
        """,
    )
    async with running_daemon(tmp_path, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("chatty", 1)
        _, body, _ = await r.get("/api/v1/checks/chatty")
        message = json.loads(body)["last_result"]["message"]
        assert len(message) == 500 and message.endswith("…")


@pytest.mark.parametrize(("returns", "type_name"), [("int", "int"), ("none", "NoneType")])
async def test_a_run_returning_something_else_than_a_result_fails_with_reason_exception(
    returns: str, type_name: str
) -> None:
    result = await runner.execute(outcome(returns=returns), 1.0)
    assert result.status is Status.FAIL and result.reason == "exception"
    assert result.message == f"check type 'outcome' returned {type_name}, not a Result"
    assert result.duration >= 0 and result.timestamp > 0


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("fail", "Connection Refused", "other"),  # upper case and a space
        ("fail", "x" * 33, "other"),  # one character too long
        ("fail", "1st_try", "other"),  # must start with a letter
        ("warn", "slow-ish", "other"),  # hyphen
        ("unknown", "", "other"),  # not ok needs a reason
        ("fail", "x" * 32, "x" * 32),  # longest valid
        ("fail", "custom_reason_2", "custom_reason_2"),
        ("ok", "", ""),
    ],
)
async def test_reasons_outside_the_bounded_label_set_become_other(
    status: str, reason: str, expected: str
) -> None:
    result = await runner.execute(outcome(status=status, reason=reason), 1.0)
    assert result.status is Status.parse(status)
    assert result.reason == expected


async def test_metrics_count_an_unbounded_reason_as_other(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        """
        checks:
          - {name: odd, type: outcome, status: fail, reason: "Weird Reason!", interval: 100ms,
             timeout: 80ms}
          - {name: odd-int, type: outcome, returns: int, interval: 100ms, timeout: 80ms}
        """,
    )
    async with running_daemon(tmp_path, builtins=(), plugins_dirs=[PLUGINS]) as r:
        await r.runs("odd", 2)
        await r.runs("odd-int", 1)
        _, text, _ = await r.get("/metrics")
    reasons = {
        (s.labels["check"], s.labels["reason"])
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "probed_check_failures_total"
    }
    assert reasons == {("odd", "other"), ("odd-int", "exception")}
    assert "Weird" not in text


# -- plugin code that raises, hangs or blocks inside run() ------------------------------------


class Scripted(Check[CheckOptions]):
    """A check whose run() is the coroutine function given to it; setup() may raise."""

    type_name: ClassVar[str] = "scripted"

    def __init__(
        self, run: Callable[[], Awaitable[Any]], setup_error: BaseException | None = None
    ) -> None:
        super().__init__(
            CheckSpec(
                name="scripted-check",
                type="scripted",
                interval=2.0,
                timeout=1.0,
                options=CheckOptions(),
            )
        )
        self._run = run
        self._setup_error = setup_error

    async def setup(self) -> None:
        if self._setup_error is not None:
            raise self._setup_error

    async def run(self) -> Result:
        result: Result = await self._run()
        return result


def raising(exc: BaseException) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        raise exc

    return run


def runner_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "probed.runner"]


async def test_a_run_that_raises_is_logged_at_debug_with_the_check_name_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="probed.runner")
    result = await runner.execute(Scripted(raising(KeyError("missing"))), 1.0)
    assert result.status is Status.FAIL and result.reason == "exception"
    assert result.message == "check raised KeyError: 'missing'"
    [record] = runner_records(caplog)
    assert record.levelno == logging.DEBUG
    assert record.msg == "check %s raised" and record.args == ("scripted-check",)
    assert record.getMessage() == "check scripted-check raised"
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert str(record.exc_info[1]) == "'missing'"


async def test_a_setup_that_raises_is_logged_at_debug_with_the_check_name_and_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="probed.runner")
    check = Scripted(raising(AssertionError("unused")), setup_error=OSError("no driver"))
    result = await runner.execute(check, 1.0)
    assert result.status is Status.FAIL and result.reason == "exception"
    assert result.message == "setup failed: OSError: no driver"
    [record] = runner_records(caplog)
    assert record.levelno == logging.DEBUG
    assert record.msg == "setup of check %s raised" and record.args == ("scripted-check",)
    assert record.getMessage() == "setup of check scripted-check raised"
    assert record.exc_info is not None and record.exc_info[0] is OSError
    assert str(record.exc_info[1]) == "no driver"


async def test_nothing_is_logged_for_a_run_that_returns_a_failing_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="probed.runner")
    result = await runner.execute(outcome(status="fail", reason="assertion", message="no"), 1.0)
    assert result.status is Status.FAIL
    assert runner_records(caplog) == []


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (ValueError(), "check raised ValueError"),
        (ValueError("  "), "check raised ValueError"),
        (RuntimeError(" spaced out "), "check raised RuntimeError: spaced out"),
    ],
)
async def test_an_exception_without_a_message_is_named_by_its_type_alone(
    exc: BaseException, message: str
) -> None:
    result = await runner.execute(Scripted(raising(exc)), 1.0)
    assert result.message == message


async def test_a_setup_exception_without_a_message_is_named_by_its_type_alone() -> None:
    check = Scripted(raising(AssertionError("unused")), setup_error=ConnectionResetError())
    result = await runner.execute(check, 1.0)
    assert result.message == "setup failed: ConnectionResetError"


async def test_a_run_that_hangs_is_cancelled_at_its_timeout_with_reason_timeout() -> None:
    cancelled = asyncio.Event()

    async def hang() -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    before = time.perf_counter()
    result = await runner.execute(Scripted(hang), 0.1)
    elapsed = time.perf_counter() - before
    assert cancelled.is_set()
    assert result.status is Status.FAIL and result.reason == "timeout"
    assert result.message == "no answer within the timeout of 0.1s"
    assert 0.1 <= result.duration <= elapsed


async def test_a_timed_out_run_leaves_no_cancellation_pending_on_the_task() -> None:
    async def hang() -> Any:
        await asyncio.Event().wait()

    result = await runner.execute(Scripted(hang), 0.05)
    assert result.reason == "timeout"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # and the task can await again (a pending cancel would raise here)


async def test_runs_with_different_timeouts_each_time_out_at_their_own() -> None:
    """The runner watches every run's deadline with one timer: a shorter timeout started
    later still comes first, and runs that end in time leave nothing to cancel."""

    async def hang() -> Any:
        await asyncio.Event().wait()

    async def quick() -> Result:
        await asyncio.sleep(0)
        return Result.ok("in time")

    loop = asyncio.get_running_loop()
    slow = loop.create_task(runner.execute(Scripted(hang), 0.4))
    await asyncio.sleep(0)
    fast = loop.create_task(runner.execute(Scripted(hang), 0.05))
    for _ in range(3):
        assert (await runner.execute(Scripted(quick), 0.4)).status is Status.OK
    fast_result = await fast
    assert fast_result.reason == "timeout" and 0.05 <= fast_result.duration < 0.4
    assert not slow.done()
    slow_result = await slow
    assert slow_result.reason == "timeout" and slow_result.duration >= 0.4
    assert slow_result.message == "no answer within the timeout of 0.4s"


async def test_a_run_cancelled_from_outside_is_cancelled_not_reported_as_a_timeout() -> None:
    started = asyncio.Event()

    async def hang() -> Any:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.get_running_loop().create_task(runner.execute(Scripted(hang), 5.0))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_run_cancelled_from_outside_after_its_timeout_stays_cancelled() -> None:
    """The timeout fired and another cancellation came too: the run is cancelled, as with
    ``asyncio.timeout`` (the other cancellation is not swallowed as a timeout)."""
    started = asyncio.Event()

    async def hang() -> Any:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)  # still unwinding when the outside cancel comes
            raise

    task = asyncio.get_running_loop().create_task(runner.execute(Scripted(hang), 0.05))
    await started.wait()
    await asyncio.sleep(0.08)  # past the timeout: hang() is unwinding
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_timeout_error_raised_by_the_check_itself_is_reported_as_a_timeout() -> None:
    async def own_timeout() -> Any:
        raise TimeoutError

    result = await runner.execute(Scripted(own_timeout), 1.0)
    assert result.reason == "timeout"
    assert result.message == "no answer within the timeout of 1s"


async def test_a_setup_that_hangs_reports_how_long_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "SETUP_TIMEOUT", 0.1)
    check = outcome(timeout=0.05, setup="hang", setup_failures=1)
    before = time.perf_counter()
    result = await runner.execute(check, 0.05)
    elapsed = time.perf_counter() - before
    assert result.reason == "timeout" and result.timestamp > 0
    assert 0.1 <= result.duration <= elapsed, "the setup's own duration, not zero"


async def test_a_setup_that_raises_reports_its_own_duration() -> None:
    async def slow_failing_setup() -> None:
        await asyncio.sleep(0.05)
        raise ConnectionError("refused")

    check = Scripted(raising(AssertionError("unused")))
    check.setup = slow_failing_setup  # type: ignore[method-assign]
    before = time.perf_counter()
    result = await runner.execute(check, 1.0)
    elapsed = time.perf_counter() - before
    assert result.message == "setup failed: ConnectionError: refused"
    assert 0.05 <= result.duration <= elapsed


BLOCKED = re.compile(
    r"run took (\d+\.\d{3})s, over the timeout of 0\.05s, without yielding: the check blocked"
    r" the event loop \(blocking calls belong in probed\.run_blocking\)"
)


async def test_a_run_that_blocks_the_loop_past_its_timeout_is_a_timeout_keeping_its_phases() -> (
    None
):
    async def block() -> Result:
        time.sleep(0.15)  # the mistake under test: a blocking call inside run()
        return Result.ok("fine", phases={"connect": 0.15}, values={"probed_x": 1.0})

    result = await runner.execute(Scripted(block), 0.05)
    assert result.status is Status.FAIL and result.reason == "timeout"
    match = BLOCKED.fullmatch(result.message)
    assert match is not None, result.message
    assert float(match.group(1)) >= 0.15 and result.duration >= 0.15
    assert dict(result.phases) == {"connect": 0.15}


class FakeClock:
    """``runner.time`` replaced: perf_counter() answers from a script, time() is fixed."""

    def __init__(self, *perf: float) -> None:
        self._perf = list(perf)

    def perf_counter(self) -> float:
        return self._perf.pop(0)

    def time(self) -> float:
        return 1_700_000_000.0


async def test_a_run_lasting_exactly_its_timeout_is_not_reported_as_blocking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def quick() -> Result:
        return Result.ok("in time")

    check = Scripted(quick)
    check._probed_ready = True  # type: ignore[attr-defined]
    monkeypatch.setattr(runner, "time", FakeClock(10.0, 10.5))
    result = await runner.execute(check, 0.5)
    assert result.status is Status.OK and result.message == "in time"
    assert result.duration == 0.5 and result.timestamp == 1_700_000_000.0

    monkeypatch.setattr(runner, "time", FakeClock(10.0, 10.5 + 1e-9))
    result = await runner.execute(check, 0.5)
    assert result.reason == "timeout" and "without yielding" in result.message


@pytest.mark.parametrize(("reason", "expected"), [("slow_dns", "slow_dns"), ("Slow DNS", "other")])
async def test_an_ok_result_carrying_a_reason_keeps_it_bounded(reason: str, expected: str) -> None:
    result = await runner.execute(outcome(status="ok", reason=reason, message="m"), 1.0)
    assert result.status is Status.OK and result.reason == expected
