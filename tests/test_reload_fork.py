"""Reloads loaded in a forked child (probed._forkload): what comes back equals an in-process
load, unchanged files and checks come back as the running objects, a reload of many checks
where one changed keeps every other check's job, state and schedule, and a child that fails
leaves the load to the daemon."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import pytest

from probed._forkload import dumps_against, load_in_child, loads_against
from probed.checkfile import LoadResult, load_checks
from probed.plugins import check_types, get_plugin_manager
from probed.settings import load_settings
from tests._require import requires
from tests.harness import running_daemon, wait_for, write

PLUGINS = Path(__file__).parent / "data" / "plugins"

pytestmark = requires(hasattr(os, "fork"), "forking a configuration loader needs POSIX (os.fork)")


def _entries(count: int, changed: int | None = None, start: int = 0) -> str:
    lines = []
    for i in range(start, start + count):
        message = "changed" if i == changed else "same"
        lines.append(f"  - {{name: c{i:05d}, type: outcome, message: {message}}}")
    return "\n".join(lines) + "\n"


def _checks_file(path: Path, count: int, changed: int | None = None) -> None:
    header = "defaults: {interval: 1s, timeout: 500ms}\nchecks:\n"
    path.write_text(header + _entries(count, changed))


def _loader(tmp_path: Path) -> tuple[object, object]:
    settings = load_settings(None, {"checks_dirs": (tmp_path,)})
    pm = get_plugin_manager(builtins=(), plugins_dirs=(PLUGINS,), entry_points=False)
    return settings, check_types(pm)


def test_a_load_in_a_child_equals_the_same_load_in_process(tmp_path: Path) -> None:
    _checks_file(tmp_path / "a.yaml", 50)
    _checks_file(tmp_path / "b.yaml", 0)
    write(tmp_path / "b.yaml", "checks:\n" + _entries(5, start=100))
    write(tmp_path / "gone.yaml", "checks:\n" + _entries(3, start=200))
    settings, types = _loader(tmp_path)
    first = load_checks(settings, types)  # type: ignore[arg-type]
    _checks_file(tmp_path / "a.yaml", 50, changed=7)
    (tmp_path / "gone.yaml").unlink()
    write(tmp_path / "new.yaml", "checks:\n" + _entries(2, start=300) + "  - {name: bad}\n")

    def load() -> LoadResult:
        return load_checks(settings, types, previous=first)  # type: ignore[arg-type]

    here = load()
    child = load_in_child(load, first)
    assert child is not None
    assert child.specs == here.specs
    assert list(child.specs) == list(here.specs)
    assert child.errors == here.errors and child.errors  # the invalid entry of new.yaml
    assert child.secrets == here.secrets and child.context == here.context
    assert set(child.files) == set(here.files)
    b = str(tmp_path / "b.yaml")
    assert child.files[b] is first.files[b]  # an unchanged file: the running object
    kept = [name for name in child.specs if name in first.specs and name != "c00007"]
    assert len(kept) == 54
    assert all(child.specs[name] is first.specs[name] for name in kept)
    assert child.specs["c00007"] is not first.specs["c00007"]
    assert child.specs["c00007"].options.message == "changed"  # type: ignore[attr-defined]
    assert "c00200" not in child.specs and "c00300" in child.specs


def test_only_what_changed_is_pickled_against_the_running_load(tmp_path: Path) -> None:
    _checks_file(tmp_path / "a.yaml", 1000)
    settings, types = _loader(tmp_path)
    first = load_checks(settings, types)  # type: ignore[arg-type]
    _checks_file(tmp_path / "a.yaml", 1000, changed=999)
    second = load_checks(settings, types, previous=first)  # type: ignore[arg-type]
    import pickle

    full = pickle.dumps(second, protocol=pickle.HIGHEST_PROTOCOL)
    against = dumps_against(second, first)
    assert len(against) < len(full) / 4, (len(against), len(full))
    back = loads_against(against, first)
    assert back.specs == second.specs
    assert sum(back.specs[n] is first.specs[n] for n in back.specs) == 999
    # a spec equal but defined on another line is not replaced by the running one
    elsewhere = replace(first.specs["c00000"], line=1)
    moved = replace(second, specs={**second.specs, "c00000": elsewhere})
    assert loads_against(dumps_against(moved, first), first).specs["c00000"].line == 1


def test_a_child_that_fails_or_sends_what_does_not_pickle_leaves_the_load_to_the_caller(
    tmp_path: Path,
) -> None:
    _checks_file(tmp_path / "a.yaml", 3)
    settings, types = _loader(tmp_path)
    first = load_checks(settings, types)  # type: ignore[arg-type]

    def fails() -> LoadResult:
        raise RuntimeError("broken loader")

    def unpicklable() -> LoadResult:
        return replace(first, secrets=frozenset({lambda: "x"}))  # type: ignore[arg-type]

    assert load_in_child(fails, first) is None
    assert load_in_child(unpicklable, first) is None


async def test_a_reload_of_2000_checks_where_one_changed_keeps_every_other_check_on_schedule(
    tmp_path: Path,
) -> None:
    count, changed = 2000, 1234
    path = tmp_path / "many.yaml"
    _checks_file(path, count)
    async with running_daemon(tmp_path, builtins=(), plugins_dirs=[PLUGINS]) as r:
        config = r.daemon.config
        config.fork_loads = True  # what `probed run` sets
        names = [f"c{i:05d}" for i in range(count)]
        await wait_for(
            lambda: all(sum(r.state(n).runs) >= 1 for n in names), 30, "every check ran once"
        )
        before = {n: (r.daemon.jobs[n], r.state(n), r.daemon.jobs[n].spec) for n in names}
        due = {n: r.daemon.jobs[n].due for n in names}
        runs = {n: sum(r.state(n).runs) for n in names}
        _checks_file(path, count, changed=changed)
        status, body = await r.post("/-/reload")
        assert status == 200, body
        assert config.loaded_in_child
        target = names[changed]
        assert r.daemon.jobs[target].spec.options.message == "changed"  # type: ignore[attr-defined]
        assert r.daemon.jobs[target] is not before[target][0]
        others = [n for n in names if n != target]
        for name in others:
            job, state, spec = before[name]
            assert r.daemon.jobs[name] is job and r.state(name) is state
            assert job.spec is spec
            # still on its own slots: the due time moved on by whole intervals, never reset
            steps = (job.due - due[name]) / spec.interval
            assert steps >= 0 and math.isclose(steps, round(steps), abs_tol=1e-6), name
        await wait_for(
            lambda: all(sum(r.state(n).runs) >= runs[n] + 2 for n in others),
            30,
            "every unchanged check ran twice more",
        )
        assert sum(r.state(n).skipped_runs for n in names) == 0


def test_a_large_configuration_with_errors_survives_compaction(tmp_path: Path) -> None:
    from probed._gc import compact

    write(tmp_path / "a.yaml", "checks:\n" + _entries(3) + "  - {name: bad, type: outcome, x: 1}\n")
    settings, types = _loader(tmp_path)
    loaded = load_checks(settings, types)  # type: ignore[arg-type]
    assert loaded.errors
    packed = compact(lambda: loaded, lambda _: True)
    assert packed is not loaded and packed.errors == loaded.errors
    assert [e.line for e in packed.errors] == [e.line for e in loaded.errors]


async def test_a_reload_applied_in_slices_adds_changes_and_removes_like_one_applied_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import probed.reload

    monkeypatch.setattr(probed.reload, "APPLY_SLICE", 2)
    path = tmp_path / "few.yaml"
    _checks_file(path, 9)
    async with running_daemon(tmp_path, builtins=(), plugins_dirs=[PLUGINS]) as r:
        before = dict(r.daemon.jobs)
        text = path.read_text().replace("c00008", "c00100")  # one removed, one added
        path.write_text(
            text.replace(
                "{name: c00003, type: outcome, message: same}",
                "{name: c00003, type: outcome, message: new}",
            )
        )
        status, body = await r.post("/-/reload")
        assert status == 200, body
        jobs = r.daemon.jobs
        assert list(jobs) == [f"c{i:05d}" for i in range(8)] + ["c00100"]
        assert [n for n in jobs if n in before and jobs[n] is before[n]] == [
            f"c{i:05d}" for i in range(8) if i != 3
        ]
        assert jobs["c00003"].spec.options.message == "new"  # type: ignore[attr-defined]
        assert before["c00008"].removed and before["c00003"].removed
        assert {state.spec.name for state in r.daemon.store} == set(jobs)
        await r.runs("c00100", 1)


def test_probed_run_loads_and_reloads_its_checks_in_a_child_process(tmp_path: Path) -> None:
    import json
    import signal

    from tests.servers._util import wait_until
    from tests.test_cli import Daemon

    checks = tmp_path / "checks.d"
    write(checks / "a.yaml", "checks:\n  - {name: t1, type: tcp, address: '127.0.0.1:1'}\n")
    env = {"PROBED_LOG_FORMAT": "json", "PROBED_LOG_LEVEL": "DEBUG"}
    daemon = Daemon("run", "--checks-dir", str(checks), cwd=tmp_path, env=env)
    try:
        write(checks / "b.yaml", "checks:\n  - {name: t2, type: tcp, address: '127.0.0.1:1'}\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: '"t2"' in daemon.get("/api/v1/checks")[1], 20, "reload via SIGHUP")
    finally:
        code, err = daemon.stop()
    assert code == 0, err
    events = [json.loads(line).get("event") for line in err.splitlines() if line.startswith("{")]
    assert events.count("reload_child") == 2, err  # the first load and the reload
    assert "reload_child_failed" not in events
