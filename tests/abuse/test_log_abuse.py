"""Issue 8, logs that cannot flood or block.

Findings reproduced: "state-change logs are not throttled: 150 flapping checks wrote 14,337
lines in 5 minutes" and a log output nobody reads (the daemon's stderr a full pipe) blocking
the event loop that writes to it.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import threading
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from probed import Check, CheckOptions, Result, hookimpl
from probed._logqueue import StateChangeLimiter
from probed.logs import configure_logging, flush_logs, set_redactor
from probed.redact import Redactor
from tests.abuse._proc import Probed, metric
from tests.harness import running_daemon, wait_for, write
from tests.servers._util import wait_until

DROPPED = "probed_log_lines_dropped_total"
SUPPRESSED = "probed_log_state_changes_suppressed_total"
TICK_RUNS = 'probed_check_runs_total{check="tick"'


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _drain(pipe: BinaryIO, into: bytearray) -> None:
    while chunk := pipe.read1(65536):  # type: ignore[attr-defined]
        into.extend(chunk)


def test_a_log_pipe_nobody_reads_does_not_freeze_probing(tmp_path: Path) -> None:
    # The plugin logs 200 lines of 500 bytes every 10 ms into stderr, a pipe the test does not read:
    # the pipe buffer fills at once, then the bounded queue; then lines are dropped.
    daemon = Probed(tmp_path, spam=200, interval="100ms", log=subprocess.PIPE)
    assert daemon.proc.stderr is not None
    drained = bytearray()
    try:
        daemon.wait_live()
        wait_until(
            lambda: (metric(daemon.get("/metrics")[1], DROPPED) or 0) > 0, 20, "dropped lines"
        )
        # Still blocked: the checks keep their schedule and liveness answers promptly.
        before = metric(daemon.get("/metrics")[1], TICK_RUNS) or 0
        wait_until(
            lambda: (metric(daemon.get("/metrics")[1], TICK_RUNS) or 0) >= before + 3,
            10,
            "three more runs of tick while the log output is blocked",
        )
        status, _ = daemon.get("/health/live", timeout=2)
        assert status == 200
        dropped = metric(daemon.get("/metrics")[1], DROPPED) or 0
        assert dropped > 1000
        assert _rss_kib(daemon.proc.pid) < 400 * 1024  # the queue is bounded (10,000 lines)
        # Now someone reads: the lines flow again and one line says how many were lost.
        (tmp_path / "quiet").write_text("")
        reader = threading.Thread(target=_drain, args=(daemon.proc.stderr, drained), daemon=True)
        reader.start()
        wait_until(lambda: b"log lines dropped" in drained, 20, "the summary line")
        daemon.proc.terminate()
        assert daemon.wait_exit() == 0
        reader.join(10)
        assert not reader.is_alive()
    finally:
        daemon.kill()
    lines = [json.loads(x) for x in drained.decode().splitlines() if x.startswith("{")]
    summaries = [x for x in lines if x.get("event") == "log_lines_dropped"]
    assert summaries and all(x["dropped"] > 0 for x in summaries)
    assert summaries[0]["msg"].endswith("log lines dropped: the log output was not keeping up")
    assert lines[-1]["event"] == "stopped"  # the queue is written out on exit


class _ListHandler(logging.Handler):
    def __init__(self, out: list[logging.LogRecord]) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append(record)


class Flap(Check[CheckOptions]):
    """ok, fail, ok, fail... (a state change every run with failure_threshold: 1)."""

    type_name: ClassVar[str] = "flap"
    options_model: ClassVar[type[CheckOptions]] = CheckOptions
    count = 0

    async def run(self) -> Result:
        self.count += 1
        return Result.ok("up") if self.count % 2 else Result.fail("assertion", "down")


class FlapPlugin:
    @hookimpl
    def probed_register_check_types(self) -> list[Any]:
        return [Flap]


async def test_flapping_checks_log_at_most_the_limit_of_state_changes(tmp_path: Path) -> None:
    checks = "\n".join(
        f"  - {{name: flap{i}, type: flap, interval: 20ms, timeout: 10ms, failure_threshold: 1}}"
        for i in range(20)
    )
    write(tmp_path / "checks" / "flap.yaml", f"checks:\n{checks}\n")
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    try:
        async with running_daemon(
            tmp_path / "checks",
            builtins=(),
            plugins=[("flap", FlapPlugin())],
            state_change_log_limit=3,
        ) as r:
            await wait_for(
                lambda: all(r.state(f"flap{i}").state_changes >= 10 for i in range(20)),
                20,
                "ten state changes of every check",
            )
            _, text, _ = await r.get("/metrics")
    finally:
        configure_logging("json", "INFO")
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    changes = [x for x in lines if x.get("event") == "check_state_changed"]
    per_check = {x["check"] for x in changes}
    assert per_check == {f"flap{i}" for i in range(20)}
    for name in per_check:
        assert sum(1 for x in changes if x["check"] == name) == 3, name
    assert (metric(text, SUPPRESSED) or 0) >= 20 * 7


def test_150_flapping_checks_for_5_minutes_write_a_bounded_number_of_lines() -> None:
    now = [0.0]
    out: list[logging.LogRecord] = []
    logger = logging.getLogger("tests.h8d.flap")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # whatever the root's level is
    handler = _ListHandler(out)
    limiter = StateChangeLimiter(logger, limit=5, window=60.0, clock=lambda: now[0])
    handler.addFilter(limiter)
    logger.addHandler(handler)
    try:
        # Every check changes state every 2 s (the finding: 150 checks, 14,337 lines in 5 min).
        for tick in range(150):
            now[0] = tick * 2.0
            for i in range(150):
                logger.warning(
                    "check c%d is now fail",
                    i,
                    extra={"fields": {"event": "check_state_changed", "check": f"c{i}"}},
                )
        now[0] = 301.0
        limiter.sweep()  # the last window ended: its summaries come even though nothing flaps
    finally:
        logger.removeHandler(handler)
    changes = [r for r in out if getattr(r, "fields", {}).get("event") == "check_state_changed"]
    summaries = [r for r in out if getattr(r, "event", "") == "state_changes_suppressed"]
    assert len(changes) == 150 * 5 * 5  # five windows of 60 s, five lines each
    assert len(summaries) == 150 * 5
    assert len(out) == 4500  # instead of 22,500
    assert summaries[0].getMessage() == "25 state changes of c0 suppressed in the last 60s"
    assert sum(r.suppressed for r in summaries) == limiter.suppressed_total == 22500 - 3750  # type: ignore[attr-defined]


def test_a_limit_of_0_lets_every_state_change_through() -> None:
    logger = logging.getLogger("tests.h8d.unlimited")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # whatever the root's level is
    out: list[logging.LogRecord] = []
    handler = _ListHandler(out)
    handler.addFilter(StateChangeLimiter(logger, limit=0, clock=lambda: 0.0))
    logger.addHandler(handler)
    try:
        for _ in range(100):
            logger.info("x", extra={"fields": {"event": "check_state_changed", "check": "c"}})
    finally:
        logger.removeHandler(handler)
    assert len(out) == 100


def test_queued_logging_keeps_the_formats_tracebacks_and_the_redactor_of_the_moment() -> None:
    for fmt in ("json", "text"):
        stream = io.StringIO()
        configure_logging(fmt, "INFO", stream, queued=True)
        try:
            set_redactor(Redactor(("hunter2",)))
            try:
                raise ValueError("password hunter2")
            except ValueError:
                logging.getLogger("probed").exception("failed with hunter2", extra={"check": "c"})
            set_redactor(Redactor(()))  # a reload that forgot the secret, before the write
            flush_logs()
        finally:
            configure_logging("json", "INFO")
        text = stream.getvalue()
        assert "hunter2" not in text, text
        assert "Traceback" in text and "ValueError: password ***" in text
        if fmt == "json":
            line = json.loads(text.splitlines()[0])
            assert line["msg"] == "failed with ***" and line["check"] == "c"
            assert line["level"] == "error" and "exc" in line
        else:
            assert "ERROR   probed: failed with ***  check=c" in text
