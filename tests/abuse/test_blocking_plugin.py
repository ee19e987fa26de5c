"""Blocking checks (issue 10): ``blocking = True`` runs off the loop, and ``/health/live`` on
``live_listen`` answers within 1 s while a careless check blocks the event loop for 5 s."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest

from probed import Check, Reason, Result, Status
from probed.health import Verdict
from probed.livez import MAX_CONNECTIONS, LiveServer, LoopBeat
from probed.phase import set_phase
from probed.testing import free_port, run_check, start_daemon, wait_until
from probed.testing_daemon import http_get

BLOCKER = """
import time
from pathlib import Path
from typing import Any
from probed import Check, Result, hookimpl

MARKS = Path(__file__).parent.parent / "marks"


class Blocker(Check[Any]):
    type_name = "blocker"

    async def run(self) -> Result:
        MARKS.mkdir(exist_ok=True)
        if not (MARKS / "first").exists():  # the first run (during start-up) is quick
            (MARKS / "first").touch()
            return Result.ok("first")
        if (MARKS / "blocking").exists():  # and so are those after the block
            return Result.ok("again")
        (MARKS / "blocking").touch()
        time.sleep(5)  # the careless call: the whole event loop stops for 5 s
        (MARKS / "released").touch()
        return Result.ok("slept")


@hookimpl
def probed_register_check_types() -> list[type[Check[Any]]]:
    return [Blocker]
"""


@pytest.mark.timeout(90)
def test_live_answers_within_1s_on_20_tries_while_a_check_blocks_the_loop_for_5s(
    tmp_path: Path,
) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "blocker.py").write_text(BLOCKER)
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "b.yaml").write_text(
        "checks:\n  - {name: sleepy, type: blocker, interval: 4s, timeout: 3s}\n"
    )
    live_port = free_port()
    live = f"http://127.0.0.1:{live_port}/health/live"
    with start_daemon(
        tmp_path / "checks",
        plugins_dir=tmp_path / "plugins",
        config=f"live_listen: 127.0.0.1:{live_port}\nwatch: false\n",
    ) as daemon:
        marks = tmp_path / "marks"
        daemon.wait_for(lambda: (marks / "blocking").exists(), 20)
        latencies = []
        for _ in range(20):
            start = time.perf_counter()
            answer = http_get(live, timeout=2.0)
            latencies.append(time.perf_counter() - start)
            assert answer.status == 200, answer
            assert json.loads(answer.body)["status"] == "pass"
            time.sleep(0.1)  # spread the tries over the block (pacing, not waiting for an event)
        # the loop really was blocked: the loop-served endpoint does not answer meanwhile
        stalled = daemon.get("/health/live", timeout=0.5)
        still_blocked = not (marks / "released").exists()
        print(
            f"live latency during the block: max {max(latencies) * 1000:.1f} ms, "
            f"median {sorted(latencies)[10] * 1000:.1f} ms over 20 tries"
        )
        assert max(latencies) < 1.0, latencies
        assert still_blocked, (
            f"the tries took {sum(latencies):.2f}s: they must all happen during the block"
        )
        assert stalled.status == 0, "the main listener answered: the loop was not blocked"
        wait_until(lambda: (marks / "released").exists(), 20, "the block ended")
        daemon.wait_for(lambda: daemon.get("/health/live", timeout=1.0).status == 200)
        assert http_get(live).status == 200


def test_live_fails_when_the_loop_stops_publishing_and_serves_nothing_else() -> None:
    beat = LoopBeat(stale_after=0.3)
    server = LiveServer("127.0.0.1", 0, beat)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        beat.publish(Verdict("livez", True, False, ()))
        assert http_get(url + "/health/live").status == 200
        assert http_get(url + "/metrics").status == 404
        # nothing published any more: a hung loop fails liveness
        failed = wait_until(lambda: (a := http_get(url + "/health/live")).status == 503 and a, 5)
        assert "event loop unresponsive" in json.loads(failed.body)["output"]
        beat.publish(Verdict("livez", False, False, (), "scheduler stuck"))
        answer = http_get(url + "/health/live?verbose")
        assert answer.status == 503
        assert "scheduler stuck" in answer.body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Sleeper(Check[object]):  # type: ignore[type-var]
    type_name: ClassVar[str] = "sleeper"
    blocking: ClassVar[bool] = True
    seconds: ClassVar[float] = 0.3

    async def run(self) -> Result:
        set_phase("sleeping")
        time.sleep(self.seconds)
        return Result.ok("slept", phases={"sleep": self.seconds})


class _LongSleeper(_Sleeper):
    seconds: ClassVar[float] = 1.5


async def test_a_blocking_check_runs_in_a_thread_and_the_loop_keeps_turning() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.ensure_future(tick())
    try:
        result = await run_check(_Sleeper, timeout=2.0)
    finally:
        ticker.cancel()
    assert result.status is Status.OK, result.message
    assert result.phases == {"sleep": 0.3}
    assert ticks >= 5, "the loop did not turn while the blocking check ran"


async def test_a_blocking_check_past_its_timeout_fails_at_the_timeout_naming_its_phase() -> None:
    start = time.perf_counter()
    result = await run_check(_LongSleeper, timeout=0.3)
    elapsed = time.perf_counter() - start
    assert result.status is Status.FAIL
    assert result.reason == Reason.TIMEOUT
    assert result.message == "no answer within the timeout of 0.3s while sleeping"
    assert elapsed < 1.2, "the run waited for the thread instead of its timeout"


def test_live_listen_from_the_command_line_serves_only_liveness(tmp_path: Path) -> None:
    (tmp_path / "checks").mkdir()
    live_port = free_port()
    with start_daemon(tmp_path / "checks", args=["--live-listen", f"127.0.0.1:{live_port}"]):
        live = http_get(f"http://127.0.0.1:{live_port}/health/live")
        assert live.status == 200
        assert live.headers["Content-Type"] == "application/health+json"
        assert json.loads(live.body)["status"] == "pass"
        assert http_get(f"http://127.0.0.1:{live_port}/metrics").status == 404


def test_a_bad_live_listen_address_is_one_clear_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "probed",
            "validate",
            "--checks-dir",
            str(tmp_path),
            "--live-listen",
            "nonsense",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "probed: --live-listen 'nonsense': expected HOST:PORT such as 127.0.0.1:9333 or [::1]:9333"
    )


def test_idle_sockets_past_the_cap_cannot_lock_the_kubelet_out_of_the_live_listener() -> None:
    # 3 x MAX_CONNECTIONS sockets that connect and never send: each new one evicts the oldest
    # waiting one, and a real probe arriving after them still gets its answer at once.

    server = LiveServer("127.0.0.1", 0, LoopBeat())
    port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(3 * MAX_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as answer:
            assert answer.status == 200
            assert b'"pass"' in answer.read()
        assert time.monotonic() - started < 1.0
        # Idle sockets made room instead of the probe being turned away.
        assert server.evicted > 0 and server.refused == 0, (server.evicted, server.refused)
        # The evicted sockets were closed by the server (end of file), not left open.
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()
        serving.join(timeout=5)
