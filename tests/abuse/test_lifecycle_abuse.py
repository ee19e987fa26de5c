"""Issue 8, signals and lifecycle: a signal at any moment of a ``probed run`` does what the docs
say, the file watcher survives its own failures, and a reload that raises keeps what runs.

Findings reproduced: "SIGHUP during start-up kills the process (the handlers are installed
late); a second SIGTERM skips the clean stop", "the file watcher dies silently", "a reload
answers 500". The subprocess tests drive a real ``probed run`` whose start-up or shutdown a
drop-in plugin holds (``_slow_plugin.py``) until the test lets it go.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from probed import watch as watch_module
from probed.config import load_settings
from probed.watch import fingerprint
from tests.abuse._proc import Probed, metric
from tests.harness import running_daemon, wait_for, write
from tests.servers._util import wait_until

RELOADS_OK = 'probed_config_reloads_total{result="success"}'
RELOADS_FAILED = 'probed_config_reloads_total{result="failure"}'


def _closed_port_check(checks: Path, name: str) -> None:
    """A checks file of its own with one tcp check (to a closed port) named ``name``."""
    write(
        checks / f"{name}.yaml",
        f"checks:\n  - {{name: {name}, type: tcp, address: '127.0.0.1:1', interval: 1s}}\n",
    )


@pytest.mark.parametrize("step", ["import", "startup"])
def test_sighup_during_start_up_is_queued_and_reloads_once_started(
    tmp_path: Path, step: str
) -> None:
    # "import": plugins are being imported, before the event loop runs (EarlySignals);
    # "startup": probed_startup is running on the loop (the daemon's own handlers).
    daemon = Probed(tmp_path, slow=step)
    try:
        daemon.wait_began(step)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.proc.send_signal(signal.SIGHUP)  # several during start-up make one reload
        daemon.go()
        daemon.wait_live()
        wait_until(lambda: metric(daemon.get("/metrics")[1], RELOADS_OK) == 1.0, 20, "one reload")
        assert daemon.proc.poll() is None
        assert not metric(daemon.get("/metrics")[1], RELOADS_FAILED)  # absent or 0
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0, daemon.text()
    finally:
        daemon.kill()
    assert len(daemon.events("reload_queued")) == 1, daemon.text()
    assert len(daemon.events("config_unchanged")) == 1, daemon.text()
    assert "Traceback" not in daemon.text()


def test_sigterm_before_the_event_loop_runs_exits_at_once_without_a_traceback(
    tmp_path: Path,
) -> None:
    daemon = Probed(tmp_path, slow="import")  # a plugin that takes its time to import
    try:
        daemon.wait_began("import")
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.wait_exit(10)
    finally:
        daemon.kill()
    assert code == 128 + signal.SIGTERM, daemon.text()
    assert "Traceback" not in daemon.text()


def test_sigterm_during_a_slow_start_up_stops_what_started_and_exits_0(tmp_path: Path) -> None:
    daemon = Probed(tmp_path, slow="startup")
    try:
        daemon.wait_began("startup")
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0, daemon.text()
    finally:
        daemon.kill()
    events = [line.get("event") for line in daemon.lines()]
    assert "stop_during_startup" in events and events[-1] == "stopped", daemon.text()
    assert "started" not in events  # it never listened
    assert daemon.began("shutdown")  # plugins were configured, so they were told to shut down
    assert "Traceback" not in daemon.text()


def test_a_second_sigterm_during_a_slow_shutdown_exits_at_once_with_one_line(
    tmp_path: Path,
) -> None:
    daemon = Probed(tmp_path, slow="shutdown")
    try:
        daemon.wait_live()
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.wait_began("shutdown")  # probed_shutdown now waits for a go that never comes
        assert daemon.proc.poll() is None
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.wait_exit(10)
    finally:
        daemon.kill()
    assert code == 128 + signal.SIGTERM, daemon.text()
    exits = daemon.events("exit_now")
    assert len(exits) == 1, daemon.text()
    assert exits[0]["msg"].startswith("second SIGTERM while stopping: exiting now")
    assert not daemon.events("stopped")  # the clean stop was skipped, as asked
    assert "Traceback" not in daemon.text()


def test_one_sigterm_still_stops_cleanly_and_calls_probed_shutdown(tmp_path: Path) -> None:
    daemon = Probed(tmp_path)
    try:
        daemon.wait_live()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0, daemon.text()
    finally:
        daemon.kill()
    assert daemon.began("shutdown")
    assert [e["event"] for e in daemon.lines() if e.get("event") in ("stopping", "stopped")] == [
        "stopping",
        "stopped",
    ]


async def test_the_file_watcher_is_restarted_after_it_fails_and_picks_up_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    checks = tmp_path / "checks"
    _closed_port_check(checks, "a")
    failures: list[int] = []

    def fail_once(settings: object) -> object:
        if not failures:
            failures.append(1)
            raise RuntimeError("disk on fire")
        return fingerprint(settings)  # type: ignore[arg-type]

    async with running_daemon(checks, watch=True, watch_interval=0.05) as r:
        # The one function the watcher calls every round raises once (no real condition makes
        # it raise for root: an unreadable checks directory is now an entry of the fingerprint).
        monkeypatch.setattr(watch_module, "fingerprint", fail_once)
        await wait_for(lambda: bool(failures), 10, "the watcher to fail")
        _closed_port_check(checks, "b")
        await wait_for(lambda: "b" in r.daemon.store, 10, "the restarted watcher to load b")
    failed = [rec for rec in caplog.records if getattr(rec, "event", "") == "watcher_failed"]
    assert [rec.levelname for rec in failed] == ["ERROR"], failed
    assert "RuntimeError: disk on fire" in failed[0].getMessage()
    assert "restarting it in 0.05s" in failed[0].getMessage()


def test_an_unlistable_checks_directory_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    # A name too long to stat raises OSError(ENAMETOOLONG) even for root; it used to escape
    # fingerprint() and end the watcher.
    long_dir = tmp_path / ("x" * 300)
    settings = load_settings(None, {"checks_dirs": (long_dir,)})
    (entry,) = fingerprint(settings)
    assert entry[0] == str(long_dir) and entry[1] == -1


async def test_a_reload_that_raises_answers_400_with_one_line_and_keeps_what_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    checks = tmp_path / "checks"
    _closed_port_check(checks, "a")
    async with running_daemon(checks) as r:
        await r.runs("a", 1)
        _closed_port_check(checks, "b")

        def broken(*_args: object, **_kwargs: object) -> object:
            raise RecursionError("maximum recursion depth exceeded")

        # An unforeseen exception from deep inside the loader (the finding's RecursionError).
        monkeypatch.setattr("probed.reload.load_checks", broken)
        status, body = await r.post("/-/reload")
        assert status == 400, body
        answer = json.loads(body)
        assert answer["status"] == "error"
        assert (
            "reload failed (RecursionError: maximum recursion depth exceeded)"
            in (answer["errors"][0])
        )
        assert "Traceback" not in body
        assert set(r.daemon.jobs) == {"a"}  # the old configuration keeps running
        runs = sum(r.state("a").runs)
        await r.runs("a", runs + 1)
        monkeypatch.undo()
        status, body = await r.post("/-/reload")
        assert status == 200, body
        assert set(r.daemon.jobs) == {"a", "b"}
    failed = [rec for rec in caplog.records if getattr(rec, "event", "") == "reload_failed"]
    assert len(failed) == 1 and failed[0].levelname == "ERROR"
    assert failed[0].exc_info is None  # one line; the traceback only at DEBUG


async def test_a_reload_hook_that_raises_answers_400_and_keeps_what_runs(tmp_path: Path) -> None:
    # The on_reload hooks (the web configuration's re-read) run inside the same guard as the
    # loader: one that raises is a failed reload, not a 500.
    checks = tmp_path / "checks"
    _closed_port_check(checks, "a")
    async with running_daemon(checks) as r:
        await r.runs("a", 1)

        def hook() -> tuple[()]:
            raise OSError("web config vanished mid-read")

        r.daemon.config.on_reload.append(hook)
        status, body = await r.post("/-/reload")
        assert status == 400, body
        assert "reload failed (OSError: web config vanished mid-read)" in body
        assert "Traceback" not in body
        runs = sum(r.state("a").runs)
        await r.runs("a", runs + 1)  # the running configuration keeps its schedule
