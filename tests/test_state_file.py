"""The state file (``state_file:``): run history that survives a restart of a real daemon,
written atomically, bounded, and a bad file (truncated, foreign, other version, too big,
unreadable) reported in one log line and ignored, never fatal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from probed import statefile
from probed.config import load_settings
from probed.errors import ConfigErrors
from probed.statefile import MAX_BYTES, StateFileError
from tests.harness import Running, probed_logs, scripted_daemon, wait_for, write

FAST = "interval: 50ms, timeout: 40ms, failure_threshold: 1"
CHECKS = f"""
checks:
  - {{name: api, type: outcome, {FAST}}}
  - {{name: db, type: outcome, {FAST}, status: fail, reason: timeout, message: "no answer"}}
"""


def checks(tmp_path: Path, text: str = CHECKS) -> Path:
    write(tmp_path / "checks" / "checks.yaml", text)
    return tmp_path / "checks"


async def first_life(tmp_path: Path, runs: int = 2) -> Path:
    """A daemon with the state file ``tmp_path/state.json`` until each check ran ``runs``
    times, then stopped (which saves the file); returns the file."""
    path = tmp_path / "state.json"
    async with scripted_daemon(checks(tmp_path / "first"), state_file=path) as r:
        await r.runs("api", runs)
        await r.runs("db", runs)
    return path


def runs_of(r: Running, name: str) -> list[tuple[int, float, int]]:
    runlog = r.state(name).runlog
    assert runlog is not None
    return list(runlog)


async def test_history_and_uptime_survive_a_restart_and_the_status_does_not(
    tmp_path: Path,
) -> None:
    path = await first_life(tmp_path, runs=3)
    assert path.exists()
    assert not list(tmp_path.glob("*.tmp"))  # noqa: ASYNC240
    saved = statefile.read(path)
    assert saved is not None
    before_api, before_db = saved["api"], saved["db"]
    assert len(before_api.runs()) >= 3 and {s for s, _, _ in before_api.runs()} == {0}
    assert {s for s, _, _ in before_db.runs()} == {2}
    assert before_db.history[-1][1:3] == ("timeout", "no answer")

    # a slow interval: the restarted checks have not run again when the state is read
    slow = CHECKS.replace("interval: 50ms", "interval: 1h")
    async with scripted_daemon(
        checks(tmp_path / "again", slow), state_file=path, startup_spread=3600
    ) as r:
        api, db = r.state("api"), r.state("db")
        assert runs_of(r, "api") == before_api.runs()
        assert db.runlog.uptime() == 0.0 and api.runlog.uptime() == 1.0
        assert list(db.history)[-1] == before_db.history[-1]
        assert api.last is None and not api.up  # the status comes from a live run
        status, body, _ = await r.get("/api/v1/checks/db")
        assert status == 200 and "no answer" in body


async def test_the_file_is_saved_periodically_while_running(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    async with scripted_daemon(checks(tmp_path), state_file=path, state_file_interval=0.05) as r:

        def saved_runs() -> int:
            saved = statefile.read(path)
            return len(saved["api"].runs()) if saved and "api" in saved else 0

        await r.runs("api", 1)
        await wait_for(lambda: saved_runs() >= 1, 10, "a first periodic save")
        first = saved_runs()
        await wait_for(lambda: saved_runs() > first, 10, "a later save with more runs")
        assert r.daemon.store.get("api") is not None


async def test_a_check_of_another_type_under_the_same_name_gets_no_history(
    tmp_path: Path,
) -> None:
    path = await first_life(tmp_path)
    other = "checks:\n  - {name: api, type: script, interval: 1h}\n"
    async with scripted_daemon(
        checks(tmp_path / "b", other), state_file=path, startup_spread=3600
    ) as r:
        assert runs_of(r, "api") == []
        assert len(r.state("api").history) == 0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "not JSON; truncated or corrupt"),  # truncated: filled in below
        (b"\x00\xffPNG binary", "not JSON"),
        (b'{"prometheus": "yes", "checks": {}}', "no probed_state key"),
        (b"[1, 2, 3]", "no probed_state key"),
        (b'{"probed_state": 99, "checks": {}}', "version '99', this probed reads 1"),
        (b'{"probed_state": 1, "checks": []}', "malformed: checks is not a mapping"),
        (b'{"probed_state": 1, "checks": {"a": {"type": "x", "runs": ["!!"]}}}', "malformed"),
        (b'{"probed_state": 1, "checks": {"a": {"type": "x", "history": [[9,"","",0,0]]}}}',
         "malformed"),
    ],
    ids=["truncated", "binary", "foreign", "not-a-mapping", "other-version", "bad-checks",
         "bad-runs", "bad-status"],
)  # fmt: skip
async def test_a_bad_state_file_is_logged_once_and_ignored_and_the_daemon_runs(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    path = tmp_path / "state.json"
    if content is None:  # a real file cut short, as a crash without atomic writes would leave
        content = (await first_life(tmp_path)).read_bytes()
        content = content[: len(content) // 2]
    path.write_bytes(content)
    with probed_logs() as logs:
        async with scripted_daemon(checks(tmp_path), state_file=path) as r:
            await r.runs("api", 2)
            assert runs_of(r, "api")[0][0] == 0
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    ignored = [x for x in lines if x.get("event") == "state_file_ignored"]
    assert len(ignored) == 1, ignored
    assert why in ignored[0]["msg"] and str(path) in ignored[0]["msg"]
    assert not any(x.get("level") == "error" for x in lines)
    saved = statefile.read(path)  # replaced by a good one on stop
    assert saved is not None and len(saved["api"].runs()) >= 2


def test_a_file_over_the_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with path.open("wb") as f:  # sparse: nothing is written or read
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(StateFileError, match=r"over the .* byte limit"):
        statefile.read(path)


def test_a_state_over_the_limit_is_not_written_and_the_old_file_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    statefile.write(path, b'{"probed_state": 1, "checks": {}}')
    monkeypatch.setattr(statefile, "MAX_BYTES", 100)
    with pytest.raises(StateFileError, match="over the 100 byte limit: not saved"):
        statefile.write(path, b" " * 101)
    assert path.read_bytes() == b'{"probed_state": 1, "checks": {}}'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.write(path, b"old")
    os.mkdir(path.with_name(f".{path.name}.{os.getpid()}.tmp"))  # the temporary cannot open
    with pytest.raises(IsADirectoryError):
        statefile.write(path, b"new")
    assert path.read_bytes() == b"old"


def test_no_file_is_a_first_start(tmp_path: Path) -> None:
    assert statefile.read(tmp_path / "none.json") is None


async def test_a_failing_save_is_logged_once_and_never_stops_the_daemon(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / "state.json"
    with probed_logs() as logs:
        async with scripted_daemon(
            checks(tmp_path), state_file=path, state_file_interval=0.05
        ) as r:
            await wait_for(lambda: "state_file_not_saved" in logs.getvalue(), 10, "a failed save")
            await r.runs("api", 3)
            await wait_for(lambda: sum(r.state("api").runs) >= 6, 10, "more runs")
    failed = [x for x in logs.getvalue().splitlines() if "state_file_not_saved" in x]
    assert len(failed) == 1
    assert "No such file or directory" in failed[0]


def test_state_file_is_relative_to_probed_yaml_and_the_interval_is_validated(
    tmp_path: Path,
) -> None:
    config = write(tmp_path / "probed.yaml", "state_file: var/state.json\n")
    settings = load_settings(config, {})
    assert settings.state_file == tmp_path / "var" / "state.json"
    assert settings.state_file_interval == 60.0
    bad = write(tmp_path / "bad.yaml", "state_file: s.json\nstate_file_interval: 100ms\n")
    with pytest.raises(ConfigErrors) as info:
        load_settings(bad, {})
    assert "bad.yaml:2" in str(info.value) and "at least 1s" in str(info.value)


def test_runs_round_trip_through_the_encoding_exactly() -> None:
    from probed._status_history import RunLog

    log = RunLog(4)
    for i, status in enumerate((0, 1, 2, 3, 2, 0)):
        log.add(status, 0.125 * i, 1_700_000_000 + i)
    snapshot = [("c", "tcp", log.snapshot(), [(2, "refused", "m", 0.5, 1.5)])]
    doc = json.loads(statefile.encode(snapshot, 1.0))
    assert doc["probed_state"] == statefile.VERSION
    got = statefile._saved(doc["checks"]["c"])
    assert got.runs() == list(log)
    assert got.history == ((2, "refused", "m", 0.5, 1.5),)


def test_a_shorter_history_setting_keeps_the_newest_saved_runs() -> None:
    from probed._status_history import RunLog

    log = RunLog(6)
    for i in range(6):
        log.add(i % 3, 0.5, 1_700_000_000 + i)
    doc = json.loads(statefile.encode([("c", "tcp", log.snapshot(), [])], 1.0))
    shorter = RunLog(4)
    got = statefile._saved(doc["checks"]["c"])
    shorter.restore(got.statuses, got.durations, got.times)
    assert list(shorter) == list(log)[-4:]
    shorter.add(3, 1.0, 1_800_000_000)  # and goes on as a ring
    assert list(shorter) == [*list(log)[-3:], (3, 1.0, 1_800_000_000)]


TOKEN = "st4te-Tok3n-s3cret-91"
PASSWORD = "hunter3-Pa55"


async def test_no_secret_is_written_to_the_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBED_TEST_STATE_TOKEN", TOKEN)
    text = f"""
    checks:
      - {{name: leaky, type: outcome, {FAST}, status: fail, reason: exception,
          message: "token ${{PROBED_TEST_STATE_TOKEN}} refused by https://bob:{PASSWORD}@db/x"}}
    """
    path = tmp_path / "state.json"
    async with scripted_daemon(checks(tmp_path, text), state_file=path) as r:
        await r.runs("leaky", 2)
    content = path.read_text()
    assert "refused by" in content and "***" in content  # the message is there, masked
    assert TOKEN not in content and PASSWORD not in content
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)  # readable by probed's user only


def test_probed_run_saves_on_sigterm_and_restores_on_the_next_start(tmp_path: Path) -> None:
    from probed.testing_daemon import start_daemon

    state = tmp_path / "state.json"
    config = f"state_file: {json.dumps(str(state))}\n"
    write(tmp_path / "checks" / "c.yaml", "checks:\n  - {name: mem, type: memory, interval: 1h}\n")
    with start_daemon(tmp_path / "checks", config=config) as d:
        d.wait_for(lambda: d.checks()["mem"]["status"] == "ok")
    saved = statefile.read(state)  # written by the SIGTERM stop
    assert saved is not None and len(saved["mem"].runs()) == 1
    with start_daemon(tmp_path / "checks", config=config) as d:
        d.wait_for(lambda: d.checks()["mem"]["status"] == "ok")  # its first live run
        history = d.get("/api/v1/checks/mem").json()["history"]
        assert len(history) == 2 and history[1]["time"] < history[0]["time"]  # new, then saved
        assert "history of 1 checks restored" in d.log()
