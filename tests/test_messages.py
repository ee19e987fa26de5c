"""Messages people read (issue 13, findings 7 and 8): each says what is wrong and what to do.

Most run the command line as users do (``probed validate``, ``probed once``) in a subprocess.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probed import Status
from probed._interpolate import InterpolationError, Interpolator
from tests.fakes import CONTROL, ScriptPlugin
from tests.harness import running_daemon, wait_for, write

SCRIPT = [("script", ScriptPlugin())]

PROBED = [sys.executable, "-m", "probed"]
ROOT = Path(__file__).parent.parent


def probed(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROBED_")}
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
    tmp_path: Path, records: _Records
) -> None:
    write(tmp_path / "a.yaml", "checks:\n  - {name: one, type: script, interval: 1s}\n")
    async with running_daemon(
        tmp_path, builtins=(), plugins=SCRIPT, watch=True, watch_interval=0.02
    ) as r:
        daemon = r.daemon
        ticks = [0]
        fingerprint = daemon._fingerprint

        def counted() -> Any:
            ticks[0] += 1
            return fingerprint()

        daemon._fingerprint = counted  # type: ignore[method-assign]
        await wait_for(lambda: ticks[0] >= 2, what="the watcher to run")
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
