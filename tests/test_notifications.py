"""Notifications delivered through Apprise to real local receivers, on a clock the test moves.

A JSON webhook (``json://`` to an aiohttp server) and e-mail (``mailto://`` to aiosmtpd): one
message on fail, one on recovery, none while flapping inside the damping time, reminders at
the period, a digest for a mass outage; an unreachable receiver is retried with backoff,
counted and logged once, and no URL (token) is ever shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

from probed import CheckOptions, Result, Status
from probed._notify_clock import ManualClock
from probed._notify_settings import Notifications, Route
from probed.notifications import Runner
from probed.spec import CheckSpec
from tests._notify_receivers import json_receiver, mailbox
from tests.harness import probed_logs, wait_for
from tests.servers._util import free_port

TOKEN = "T0kenInPath9931"


def spec(name: str, **labels: str) -> CheckSpec:
    return CheckSpec(
        name=name,
        type="http",
        interval=10.0,
        timeout=5.0,
        labels=tuple(sorted(labels.items())),
        options=CheckOptions(),
    )


FAIL = Result.fail("timeout", "no answer within 5s")
OK = Result.ok("200 OK")


@contextlib.asynccontextmanager
async def running(
    settings: Notifications, **kwargs: Any
) -> AsyncIterator[tuple[Runner, ManualClock]]:
    clock = ManualClock()
    runner = Runner(settings, clock, **kwargs)
    runner.start()
    try:
        yield runner, clock
    finally:
        await runner.stop(grace=0)


def route(url: str, **kwargs: Any) -> Route:
    return Route(name="team", urls=(url,), **kwargs)


async def settled(runner: Runner, clock: ManualClock) -> None:
    """Wait until nothing due at the clock's time is still undecided or on its way."""

    def idle() -> bool:
        deadline = runner.engine.next_deadline()
        return (
            (deadline is None or deadline > clock.now())
            and runner.delivery.queued == 0
            and runner.delivery.in_flight == 0
        )

    await asyncio.sleep(0)  # let the background task see the clock move
    await wait_for(idle, 10, "notifications to settle")


def sent(runner: Runner, result: str = "sent") -> int:
    return runner.delivery.counters.totals.get(("team", result), 0)


async def test_one_message_on_fail_and_one_on_recovery_to_a_json_webhook() -> None:
    async with json_receiver() as hook:
        settings = Notifications(routes=(route(hook.url(TOKEN)),), min_duration=60, digest_after=0)
        async with running(settings) as (runner, clock):
            runner.observe(spec("payments-api", team="pay"), Status.FAIL, FAIL)
            clock.advance(59)
            await settled(runner, clock)
            assert hook.posts == []  # not yet: 59s of the 60s damping
            clock.advance(1)
            await wait_for(lambda: len(hook.posts) == 1, 10, "the fail message")
            assert hook.posts[0]["title"] == "[FAIL] payments-api is down (fail, was ok) [timeout]"
            assert hook.posts[0]["type"] == "failure"
            assert "no answer within 5s" in hook.posts[0]["message"]
            assert "team=pay" in hook.posts[0]["message"]

            runner.observe(spec("payments-api", team="pay"), Status.OK, OK)
            clock.advance(60)
            await wait_for(lambda: len(hook.posts) == 2, 10, "the recovery message")
            await settled(runner, clock)
            assert hook.posts[1]["title"] == "[OK] payments-api recovered after 1m"
            assert hook.posts[1]["type"] == "success"
            assert len(hook.posts) == 2
            assert sent(runner) == 2


async def test_an_email_on_fail_and_on_recovery_through_smtp() -> None:
    with mailbox() as box:
        settings = Notifications(routes=(route(box.url()),), digest_after=0)
        async with running(settings) as (runner, clock):
            runner.observe(spec("db"), Status.FAIL, Result.fail("connection_refused", "refused"))
            await wait_for(lambda: len(box.messages) == 1, 10, "the fail e-mail")
            runner.observe(spec("db"), Status.OK, OK)
            await wait_for(lambda: len(box.messages) == 2, 10, "the recovery e-mail")
            await settled(runner, clock)
    subjects = [str(m["Subject"]) for m in box.messages]
    assert subjects == [
        "[FAIL] db is down (fail, was ok) [connection_refused]",
        "[OK] db recovered after 0s",
    ]
    assert str(box.messages[0]["To"]) == "ops@example.com"
    assert "refused" in box.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_no_message_while_a_check_flaps_inside_the_damping_time() -> None:
    async with json_receiver() as hook:
        settings = Notifications(routes=(route(hook.url()),), min_duration=60, digest_after=0)
        async with running(settings) as (runner, clock):
            for _ in range(5):  # fail for 30s, ok for 20s, five times
                runner.observe(spec("flappy"), Status.FAIL, FAIL)
                clock.advance(30)
                runner.observe(spec("flappy"), Status.OK, OK)
                clock.advance(20)
            clock.advance(600)
            await settled(runner, clock)
            # A check that stays down is told: the pipeline works, and flappy never was.
            runner.observe(spec("steady"), Status.FAIL, FAIL)
            clock.advance(60)
            await wait_for(lambda: len(hook.posts) == 1, 10, "the steady check's message")
            clock.advance(600)
            await settled(runner, clock)
    assert hook.titles() == ["[FAIL] steady is down (fail, was ok) [timeout]"]
    assert runner.engine.pending() == 1  # steady is down; flappy costs nothing


async def test_reminders_go_out_at_the_configured_period_while_down() -> None:
    async with json_receiver() as hook:
        settings = Notifications(routes=(route(hook.url()),), remind_every=3600, digest_after=0)
        async with running(settings) as (runner, clock):
            runner.observe(spec("api"), Status.FAIL, FAIL)
            await wait_for(lambda: len(hook.posts) == 1, 10, "the fail message")
            clock.advance(3599)
            await settled(runner, clock)
            assert len(hook.posts) == 1
            clock.advance(1)
            await wait_for(lambda: len(hook.posts) == 2, 10, "the first reminder")
            clock.advance(3600)
            await wait_for(lambda: len(hook.posts) == 3, 10, "the second reminder")
            runner.observe(spec("api"), Status.OK, OK)
            await wait_for(lambda: len(hook.posts) == 4, 10, "the recovery")
            clock.advance(3 * 3600)
            await settled(runner, clock)
    assert hook.titles() == [
        "[FAIL] api is down (fail, was ok) [timeout]",
        "[FAIL] api is still fail after 1h [timeout]",
        "[FAIL] api is still fail after 2h [timeout]",
        "[OK] api recovered after 2h",
    ]


async def test_a_mass_outage_is_one_digest_and_its_recovery_another() -> None:
    async with json_receiver() as hook:
        settings = Notifications(
            routes=(route(hook.url()),), min_duration=30, digest_after=5, digest_within=10
        )
        async with running(settings) as (runner, clock):
            for i in range(40):
                runner.observe(spec(f"svc-{i:02d}"), Status.FAIL, FAIL)
                clock.advance(0.1)  # all within four seconds
            clock.advance(60)
            await wait_for(lambda: len(hook.posts) == 1, 10, "the digest")
            for i in range(40):
                runner.observe(spec(f"svc-{i:02d}"), Status.OK, OK)
            clock.advance(60)
            await wait_for(lambda: len(hook.posts) == 2, 10, "the recovery digest")
            await settled(runner, clock)
    assert hook.titles() == [
        "[probed] 40 checks changed (40 fail)",
        "[probed] 40 checks changed (40 recovery)",
    ]
    lines = hook.posts[0]["message"].splitlines()
    assert lines[0] == "svc-00 is down (fail, was ok) [timeout]: no answer within 5s"
    assert hook.posts[0]["type"] == "failure" and hook.posts[1]["type"] == "success"


async def test_few_changes_within_the_digest_window_are_sent_one_by_one() -> None:
    async with json_receiver() as hook:
        settings = Notifications(
            routes=(route(hook.url(), events=frozenset({"fail", "warn", "recovery"})),),
            digest_after=5,
            digest_within=10,
        )
        async with running(settings) as (runner, clock):
            runner.observe(spec("a"), Status.FAIL, FAIL)
            runner.observe(spec("b"), Status.WARN, Result.warn("threshold", "slow"))
            clock.advance(9)
            await settled(runner, clock)
            assert hook.posts == []  # collected for the digest window
            clock.advance(1)
            await wait_for(lambda: len(hook.posts) == 2, 10, "two single messages")
    assert sorted(hook.titles()) == [
        "[FAIL] a is down (fail, was ok) [timeout]",
        "[WARN] b is degraded (warn, was ok) [threshold]",
    ]


async def test_routes_select_checks_by_name_pattern_and_label() -> None:
    async with json_receiver() as pay, json_receiver() as db:
        settings = Notifications(
            routes=(
                Route(name="pay", urls=(pay.url(),), labels={"team": "payments"}),
                Route(name="db", urls=(db.url(),), checks=("db-*",)),
            ),
            digest_after=0,
        )
        async with running(settings) as (runner, clock):
            runner.observe(spec("checkout", team="payments"), Status.FAIL, FAIL)
            runner.observe(spec("db-main", team="payments"), Status.FAIL, FAIL)
            runner.observe(spec("web", team="web"), Status.FAIL, FAIL)
            await wait_for(lambda: len(pay.posts) == 2 and len(db.posts) == 1, 10, "messages")
            await settled(runner, clock)
    assert sorted(t.split()[1] for t in pay.titles()) == ["checkout", "db-main"]
    assert [t.split()[1] for t in db.titles()] == ["db-main"]


@contextlib.contextmanager
def apprise_debug_logs() -> Any:
    """Apprise's own log output (DEBUG: it names the URLs it posts to) into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_an_unreachable_receiver_is_retried_with_backoff_counted_logged_sparingly() -> None:
    port = free_port()  # nothing listens there
    url = f"json://127.0.0.1:{port}/{TOKEN}"
    settings = Notifications(routes=(route(url),), digest_after=0, retries=2, backoff=30)
    with probed_logs() as logs, apprise_debug_logs() as apprise_out:
        async with running(settings) as (runner, clock):
            runner.observe(spec("api"), Status.FAIL, FAIL)
            await wait_for(lambda: sent(runner, "retried") == 1, 10, "the first attempt")
            await settled(runner, clock)
            clock.advance(29)
            await settled(runner, clock)
            assert sent(runner, "retried") == 1  # the backoff is 30s
            clock.advance(1)
            await wait_for(lambda: sent(runner, "retried") == 2, 10, "the second attempt")
            await settled(runner, clock)
            clock.advance(60)  # doubled
            await wait_for(lambda: sent(runner, "failed") == 1, 10, "the last attempt")
            metrics = "".join(str(m) for m in runner.collect())
    assert sent(runner) == 0
    out = logs.getvalue()
    # Logged at the first failure, quiet for a minute (the retry at 30s), then with a count.
    failures = [line for line in out.splitlines() if "notification route team" in line]
    assert len(failures) == 2, out
    assert "retrying in 30s" in failures[0]
    assert "gave up after 3 attempts (1 more failures not logged)" in failures[1]
    assert apprise_out.getvalue()  # Apprise did log, masked
    for text in (out, apprise_out.getvalue(), metrics):
        assert TOKEN not in text
        assert f"127.0.0.1:{port}" not in text


async def test_a_receiver_answering_an_error_counts_as_failed() -> None:
    async with json_receiver() as hook:
        hook.status = 500
        settings = Notifications(routes=(route(hook.url()),), digest_after=0, retries=0)
        async with running(settings) as (runner, _clock):
            runner.observe(spec("api"), Status.FAIL, FAIL)
            await wait_for(lambda: sent(runner, "failed") == 1, 10, "the failure")
    assert len(hook.posts) == 1 and sent(runner) == 0


async def test_a_full_queue_drops_messages_and_counts_them() -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def stuck(message: Any, timeout: float) -> bool:
        calls.append(message.title)
        await release.wait()
        return True

    settings = Notifications(routes=(route("json://127.0.0.1/x"),), digest_after=0, queue_size=3)
    async with running(settings, send=stuck) as (runner, _clock):
        for i in range(20):
            runner.observe(spec(f"c{i}"), Status.FAIL, FAIL)
        # All twenty are due at once: three fit the queue, the workers take them from there.
        await wait_for(lambda: len(calls) == 3, 10, "three deliveries in flight")
        assert sent(runner, "dropped") == 17
        assert runner.delivery.waiting == 0
        release.set()
        await wait_for(lambda: sent(runner) == 3, 10, "the kept messages delivered")
    assert sent(runner, "dropped") == 17


def test_after_a_long_stall_one_reminder_goes_out_not_one_per_missed_period() -> None:
    from probed._notify_engine import Engine

    settings = Notifications(routes=(route("json://127.0.0.1/x"),), remind_every=60, digest_after=0)
    engine = Engine(settings)
    engine.observe(spec("api"), Status.FAIL, FAIL, now=0, wall=0)
    assert [m.title for m in engine.due(0, 0)] == ["[FAIL] api is down (fail, was ok) [timeout]"]
    assert [m.title for m in engine.due(3600, 3600)] == [
        "[FAIL] api is still fail after 1h [timeout]"
    ]
    assert engine.next_deadline() == 3660
    engine.configure(Notifications(routes=settings.routes, remind_every=0, digest_after=0))
    assert engine.due(7200, 7200) == []  # reminders turned off by a reload: none, and no loop
    assert engine.next_deadline() is None
