"""Messages people read (issue 13, findings 7 and 8): each says what is wrong and what to do.

Most run the command line as users do (``probed validate``, ``probed once``) in a subprocess.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probed import Status, gate
from probed._interpolate import InterpolationError, Interpolator
from probed.config import load_settings
from probed.plugins import get_plugin_manager
from tests.fakes import CONTROL, ScriptPlugin
from tests.harness import running_daemon, wait_for, write
from tests.servers._util import free_port

SCRIPT = [("script", ScriptPlugin())]

PROBED = [sys.executable, "-m", "probed"]
ROOT = Path(__file__).parent.parent


def probed(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
    # This tree's probed, whether or not (and wherever) a copy is installed.
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    full_env.update(env or {})
    return subprocess.run(
        [*PROBED, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


# -- unset environment variables -----------------------------------------------------------------


def test_unset_secret_variable_suggests_the_set_name_and_a_file_never_a_default(
    tmp_path: Path,
) -> None:
    secret = "Redis-s3cret-value-42"
    write(
        tmp_path / "checks.d" / "cache.yaml",
        """
        checks:
          - name: cache
            type: redis
            url: redis://:${REDIS_PASWORD}@127.0.0.1:6379/0
        """,
    )
    env = {"REDIS_PASSWORD": secret}
    result = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert (
        "checks.d/cache.yaml:4: checks[0].url: environment variable 'REDIS_PASWORD' is not set; "
        "did you mean REDIS_PASSWORD? (set it, or read the secret from a file: "
        "${file:/run/secrets/...})"
    ) in result.stderr
    assert ":-default" not in result.stderr
    assert secret not in result.stdout + result.stderr


def test_unset_plain_variable_suggests_the_set_name_and_a_default() -> None:
    interpolator = Interpolator({"LISTEN_HOST": "10.1.2.3", "HOME": "/root"})
    with pytest.raises(InterpolationError) as info:
        interpolator.string("${LISTEN_HSOT}:9333")
    assert str(info.value) == (
        "environment variable 'LISTEN_HSOT' is not set; did you mean LISTEN_HOST? "
        "(set it, or give a default: ${LISTEN_HSOT:-default})"
    )
    assert "10.1.2.3" not in str(info.value)


@pytest.mark.parametrize("name", ["API_TOKEN", "DB_PASSWORD", "SIGNING_KEY", "CLIENT_SECRET"])
def test_unset_secret_variable_is_never_advised_a_default(name: str) -> None:
    with pytest.raises(InterpolationError) as info:
        Interpolator({}).string(f"${{{name}}}")
    message = str(info.value)
    assert ":-default" not in message and "did you mean" not in message
    assert "${file:" in message


# -- postgres expect_role ------------------------------------------------------------------------


def test_postgres_expect_role_master_says_which_words_to_use(tmp_path: Path) -> None:
    write(
        tmp_path / "checks.d" / "db.yaml",
        """
        checks:
          - name: db
            type: postgres
            dsn: postgresql://probe@127.0.0.1:5432/postgres
            expect_role: master
          - name: db-standby
            type: postgres
            dsn: postgresql://probe@127.0.0.1:5432/postgres
            expect_role: replca
        """,
    )
    result = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "checks.d/db.yaml:5: checks[0].expect_role: 'master' is not a role; "
        "use 'primary' (master) or 'replica' (standby)"
    ) in result.stderr
    assert (
        "checks.d/db.yaml:9: checks[1].expect_role: 'replca' is not a role (did you mean "
        "'replica'?); use 'primary' (master) or 'replica' (standby)"
    ) in result.stderr
    assert "Input should be" not in result.stderr


# -- redis INFO fields ---------------------------------------------------------------------------


def test_misspelt_redis_info_field_fails_validation_with_did_you_mean(tmp_path: Path) -> None:
    path = write(
        tmp_path / "checks.d" / "cache.yaml",
        """
        checks:
          - name: cache
            type: redis
            url: redis://127.0.0.1:6379/0
            info_fields:
              used_memry: {warn_above: 512MB}
        """,
    )
    result = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "checks.d/cache.yaml:5: checks[0].info_fields: unknown INFO field 'used_memry' "
        "(did you mean 'used_memory'?)"
    ) in result.stderr
    path.write_text(path.read_text() + "    allow_unknown_info_fields: true\n")
    allowed = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


# -- daemon log records --------------------------------------------------------------------------


class _Records(logging.Handler):
    """Collects the real log records of the ``probed`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, event: str) -> list[logging.LogRecord]:
        found = []
        for record in self.records:
            fields = getattr(record, "fields", None)
            name = fields.get("event") if isinstance(fields, dict) else None
            if getattr(record, "event", name) == event:
                found.append(record)
        return found


@pytest.fixture
def records() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("probed")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


async def test_check_going_down_logs_a_warning_and_recovering_logs_info(
    tmp_path: Path, records: _Records
) -> None:
    write(
        tmp_path / "a.yaml",
        """
        checks:
          - {name: flips, type: script, interval: 50ms, timeout: 40ms, failure_threshold: 1}
        """,
    )
    try:
        async with running_daemon(tmp_path, builtins=(), plugins=SCRIPT) as r:
            await wait_for(lambda: "flips" in r.daemon.store and r.state("flips").up)
            CONTROL["flips"] = "fail"
            await wait_for(lambda: r.state("flips").status is Status.FAIL)
            CONTROL["flips"] = "ok"
            await wait_for(lambda: r.state("flips").status is Status.OK)
    finally:
        CONTROL.clear()
    changes = [
        (rec.fields["old"], rec.fields["new"], rec.levelno)  # type: ignore[attr-defined]
        for rec in records.events("check_state_changed")
    ]
    assert ("ok", "fail", logging.WARNING) in changes
    assert ("fail", "ok", logging.INFO) in changes
    assert ("unknown", "ok", logging.INFO) in changes


async def test_one_edit_reloaded_by_sighup_and_seen_by_the_watcher_is_applied_once(
    tmp_path: Path, records: _Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    import probed.watch

    write(tmp_path / "a.yaml", "checks:\n  - {name: one, type: script, interval: 1s}\n")
    ticks = [0]
    fingerprint = probed.watch.fingerprint

    def counted(settings: Any) -> Any:
        ticks[0] += 1
        return fingerprint(settings)

    monkeypatch.setattr(probed.watch, "fingerprint", counted)
    async with running_daemon(
        tmp_path, builtins=(), plugins=SCRIPT, watch=True, watch_interval=0.02
    ) as r:
        daemon = r.daemon
        await wait_for(lambda: ticks[0] >= 3, what="the watcher to run")  # startup + 2 ticks
        before = len(records.events("config_applied"))

        # Edit, then reload the way SIGHUP does, then let the watcher look several times.
        write(tmp_path / "b.yaml", "checks:\n  - {name: two, type: script, interval: 1s}\n")
        ok, _ = await daemon.reload()
        assert ok and "two" in daemon.jobs
        seen = ticks[0]
        await wait_for(lambda: ticks[0] >= seen + 5, what="five watcher ticks")
        assert len(records.events("config_applied")) == before + 1
        assert records.events("reload") == []

        # The other order: the watcher applies the edit, then an explicit reload finds
        # nothing new to apply.
        write(tmp_path / "c.yaml", "checks:\n  - {name: three, type: script, interval: 1s}\n")
        await wait_for(lambda: "three" in daemon.jobs, what="the watcher to apply c.yaml")
        ok, _ = await daemon.reload()
        assert ok
        seen = ticks[0]
        await wait_for(lambda: ticks[0] >= seen + 5, what="five watcher ticks")
        assert len(records.events("config_applied")) == before + 2
        assert len(records.events("config_unchanged")) == 1


# -- probed once: --readiness-only, unknown --check names ----------------------------------------


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback TCP port that accepts connections (the kernel completes the handshake)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def readiness_dir(tmp_path: Path, port: int) -> Path:
    write(
        tmp_path / "checks.d" / "app.yaml",
        f"""
        defaults:
          timeout: 1s
        checks:
          - name: payment-api
            type: tcp
            address: 127.0.0.1:{port}
          - name: batch-worker
            type: tcp
            readiness: false
            address: 127.0.0.1:{free_port()}
        """,
    )
    return tmp_path / "checks.d"


def test_once_readiness_only_runs_just_the_readiness_checks(
    tmp_path: Path, listening_port: int
) -> None:
    readiness_dir(tmp_path, listening_port)
    everything = probed("once", "--checks-dir", "checks.d", cwd=tmp_path)
    assert everything.returncode == 2 and "batch-worker" in everything.stdout
    ready = probed("once", "--checks-dir", "checks.d", "--readiness-only", cwd=tmp_path)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "payment-api" in ready.stdout and "batch-worker" not in ready.stdout
    by_env = probed(
        "once", "--checks-dir", "checks.d", cwd=tmp_path, env={"PROBED_READINESS_ONLY": "1"}
    )
    assert by_env.returncode == 0 and "batch-worker" not in by_env.stdout
    named = probed(
        "once", "--checks-dir", "checks.d", "--readiness-only", "--check", "batch-worker",
        cwd=tmp_path,
    )  # fmt: skip
    assert named.returncode == 3
    assert "check 'batch-worker' is not a readiness check (readiness: false at " in named.stderr
    (tmp_path / "checks.d" / "app.yaml").write_text(
        "checks:\n  - {name: batch, type: tcp, readiness: false, address: '127.0.0.1:1'}\n"
    )
    none = probed("once", "--checks-dir", "checks.d", "--readiness-only", cwd=tmp_path)
    assert none.returncode == 3
    assert "no check has readiness: true: --readiness-only has nothing to run" in none.stderr


def test_once_with_an_unknown_check_name_suggests_a_configured_one_and_exits_3(
    tmp_path: Path, listening_port: int
) -> None:
    readiness_dir(tmp_path, listening_port)
    result = probed("once", "--checks-dir", "checks.d", "--check", "payments-api", cwd=tmp_path)
    assert result.returncode == 3
    assert (
        "no check named 'payments-api' (did you mean 'payment-api'?); "
        "configured checks: payment-api, batch-worker"
    ) in result.stderr
    assert result.stdout == ""


# -- unknown types that a plugin provides --------------------------------------------------------


def test_validate_without_plugins_dir_hints_at_the_plugin_defining_the_type() -> None:
    result = probed("validate", "--checks-dir", "checks.d", cwd=ROOT)
    assert result.returncode == 1
    assert (
        "checks[0].type: unknown type 'file_age'; is it a plugin? plugins/file_age.py defines "
        "it: add --plugins-dir plugins; registered types: "
    ) in result.stderr
    fixed = probed("validate", "--checks-dir", "checks.d", "--plugins-dir", "plugins", cwd=ROOT)
    assert fixed.returncode == 0, fixed.stderr


def test_unknown_type_of_a_shipped_plugin_is_named_without_its_file(tmp_path: Path) -> None:
    write(
        tmp_path / "checks.d" / "files.yaml",
        """
        checks:
          - {name: backup, type: file_age, path: /var/backups/db.dump}
          - {name: web, type: htpp, url: http://127.0.0.1/}
        """,
    )
    result = probed("validate", "--checks-dir", "checks.d", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "unknown type 'file_age'; is it a plugin? 'file_age' is the drop-in plugin "
        "plugins/file_age.py of the probed repository: add --plugins-dir"
    ) in result.stderr
    assert "unknown type 'htpp' (did you mean 'http'?); registered types: " in result.stderr


# -- probed gate honours its window --------------------------------------------------------------


def test_round_offsets_end_at_the_window() -> None:
    assert gate.round_offsets(20, 10) == [0, 10, 20]
    assert gate.round_offsets(20, 7) == [0, 7, 14, 20]
    assert gate.round_offsets(0.6, 0.2) == pytest.approx([0, 0.2, 0.4, 0.6])
    assert gate.round_offsets(5, 10) == [0, 5]


async def test_gate_passes_only_after_its_whole_window(tmp_path: Path, listening_port: int) -> None:
    readiness_dir(tmp_path, listening_port)
    settings = load_settings(None, {"checks_dirs": (tmp_path / "checks.d",)})
    pm = get_plugin_manager(builtins=("probed.checks.tcp",), entry_points=False)
    started = time.monotonic()
    code, report = await gate.run_gate(
        settings, pm, ["payment-api"], window=3.0, every=1.0, max_failure_ratio=0.0
    )
    elapsed = time.monotonic() - started
    assert code == 0, report.errors
    assert elapsed >= 3.0  # a correctness bound: the window is watched to its end
    assert report.rounds == 4 and report.elapsed >= 3.0
    assert not report.aborted


def test_gate_verdict_says_how_long_it_watched(tmp_path: Path, listening_port: int) -> None:
    readiness_dir(tmp_path, listening_port)
    result = probed(
        "gate", "--checks-dir", "checks.d", "--check", "payment-api", "--for", "1s",
        "--every", "500ms", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(
        r"gate passed: 0/3 runs failed .* over 3 round\(s\) in (\d+\.\d)s", result.stdout
    )
    assert match is not None, result.stdout
    assert float(match.group(1)) >= 1.0
