"""contrib/backup/pg-backup.sh end to end against a throwaway PostgreSQL: a verified,
restorable dump; retention; a clear non-zero exit on every failure; and the file_age check
that alerts when the newest backup is too old."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.contrib._tools import CONTRIB, ROOT, output, run
from tests.servers.postgres import PostgresServer

SCRIPT = CONTRIB / "backup" / "pg-backup.sh"
CHECKS = CONTRIB / "backup" / "checks.d"
DAY = 86400


def _env(server: PostgresServer, backup_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PGHOST": server.host,
        "PGPORT": str(server.port),
        "PGUSER": server.user,
        "PGPASSWORD": server.password,
        "PG_BIN": str(server.bin_dir),
        "BACKUP_DIR": str(backup_dir),
        **extra,
    }


def _psql(server: PostgresServer, database: str, sql: str) -> str:
    proc = subprocess.run(
        [str(server.bin_dir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
         "-h", server.host, "-p", str(server.port), "-U", server.user, "-d", database, "-c", sql],
        env={**os.environ, "PGPASSWORD": server.password},
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return proc.stdout.strip()


@pytest.fixture
def server(postgres_factory: Callable[..., PostgresServer]) -> PostgresServer:
    """A server of its own (tests stop it) with an ``app`` database holding one table."""
    pg = postgres_factory()
    _psql(pg, "postgres", "CREATE DATABASE app")
    _psql(pg, "app", "CREATE TABLE orders (id int PRIMARY KEY, item text)")
    _psql(pg, "app", "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 500) g")
    return pg


def _backup(server: PostgresServer, backup_dir: Path, *dbs: str, **env: str) -> Any:
    return subprocess.run(
        [str(SCRIPT), *dbs], env=_env(server, backup_dir, **env),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _dumps(backup_dir: Path) -> list[Path]:
    return sorted(backup_dir.glob("*.dump"))


def _leftovers(backup_dir: Path) -> list[Path]:
    return sorted(backup_dir.glob(".*"))


def test_backup_writes_a_verified_compressed_dump(server: PostgresServer, tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    proc = _backup(server, backups, "app")
    assert proc.returncode == 0, output(proc)
    [dump] = _dumps(backups)
    assert dump.name.startswith("app-") and dump.name.endswith("Z.dump")
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format
    listing = run([str(server.bin_dir / "pg_restore"), "--list", str(dump)])
    assert "TABLE public orders" in listing.stdout
    assert "Compression: " in listing.stdout
    assert "Compression: 0" not in listing.stdout
    assert _leftovers(backups) == []
    assert "verified" in proc.stderr
    assert server.password not in proc.stdout + proc.stderr
    assert dump.stat().st_mode & 0o077 == 0  # umask 077: only the owner reads backups


def test_dump_restores_into_an_empty_database(server: PostgresServer, tmp_path: Path) -> None:
    proc = _backup(server, tmp_path, "app")
    assert proc.returncode == 0, output(proc)
    _psql(server, "postgres", "CREATE DATABASE restored")
    restore = subprocess.run(
        [str(server.bin_dir / "pg_restore"), "-h", server.host, "-p", str(server.port),
         "-U", server.user, "-d", "restored", str(_dumps(tmp_path)[0])],
        env={**os.environ, "PGPASSWORD": server.password}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert restore.returncode == 0, output(restore)
    assert _psql(server, "restored", "SELECT count(*), max(item) FROM orders") == "500|item 99"


def test_retention_prunes_only_old_dumps_of_the_same_database(
    server: PostgresServer, tmp_path: Path
) -> None:
    now = time.time()
    old = tmp_path / "app-20000101T000000Z.dump"
    recent = tmp_path / "app-20000102T000000Z.dump"
    other = tmp_path / "billing-20000101T000000Z.dump"
    for path, age_days in ((old, 30), (recent, 1), (other, 30)):
        path.write_bytes(b"PGDMP old")
        os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    proc = _backup(server, tmp_path, "app", RETENTION_DAYS="14")
    assert proc.returncode == 0, output(proc)
    names = {p.name for p in _dumps(tmp_path)}
    assert old.name not in names
    assert {recent.name, other.name} <= names
    assert len(names) == 3  # recent, other and the new one
    assert f"removed {old}" in proc.stderr


def test_unreachable_server_fails_clearly_and_keeps_old_backups(
    server: PostgresServer, tmp_path: Path
) -> None:
    old = tmp_path / "app-20000101T000000Z.dump"
    old.write_bytes(b"PGDMP old")
    os.utime(old, (time.time() - 30 * DAY, time.time() - 30 * DAY))
    server.stop()
    proc = _backup(server, tmp_path, "app")
    assert proc.returncode == 1, output(proc)
    assert "ERROR: pg_dump failed for database app" in proc.stderr
    assert _dumps(tmp_path) == [old], "retention must not run after a failed backup"
    assert _leftovers(tmp_path) == []


def test_wrong_password_fails_without_printing_it(server: PostgresServer, tmp_path: Path) -> None:
    proc = _backup(server, tmp_path, "app", PGPASSWORD="Wr0ng-pass-XYZ")
    assert proc.returncode == 1, output(proc)
    assert "pg_dump failed for database app" in proc.stderr
    assert "Wr0ng-pass-XYZ" not in proc.stdout + proc.stderr
    assert _dumps(tmp_path) == []


def test_every_database_must_succeed(server: PostgresServer, tmp_path: Path) -> None:
    proc = _backup(server, tmp_path, "app", "no_such_db")
    assert proc.returncode == 1, output(proc)
    assert "pg_dump failed for database no_such_db" in proc.stderr
    assert [p.name.split("-")[0] for p in _dumps(tmp_path)] == ["app"]


def test_unreadable_dump_fails_verification(server: PostgresServer, tmp_path: Path) -> None:
    """pg_dump replaced by a program that writes a file that is not a dump: the real
    pg_restore --list must reject it before it is published."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text(
        '#!/bin/sh\nfor a; do case "$a" in --file=*) printf garbage > "${a#--file=}";; esac; done\n'
    )
    fake.chmod(0o755)
    (bin_dir / "pg_restore").symlink_to(server.bin_dir / "pg_restore")
    backups = tmp_path / "backups"
    proc = _backup(server, backups, "app", PG_BIN=str(bin_dir))
    assert proc.returncode == 1, output(proc)
    assert "verification failed for database app" in proc.stderr
    assert _dumps(backups) == []
    assert _leftovers(backups) == []


def test_unusable_backup_directory_fails(server: PostgresServer, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = _backup(server, blocker / "backups", "app")
    assert proc.returncode == 1, output(proc)
    assert "cannot create backup directory" in proc.stderr


def test_bad_settings_fail_before_touching_anything(server: PostgresServer, tmp_path: Path) -> None:
    proc = _backup(server, tmp_path / "b", "app", RETENTION_DAYS="two weeks")
    assert proc.returncode == 1, output(proc)
    assert "RETENTION_DAYS must be a whole number" in proc.stderr
    assert not (tmp_path / "b").exists()
    proc = _backup(server, tmp_path / "b")
    assert proc.returncode == 1
    assert "usage" in proc.stderr


def _file_age_check(backup_dir: Path) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "probed", "once", "--plugins-dir", str(ROOT / "plugins"),
         "--checks-dir", str(CHECKS), "--format", "text"],
        env={**os.environ, "BACKUP_DIR": str(backup_dir)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_file_age_check_passes_on_fresh_backup_and_fails_when_too_old(
    server: PostgresServer, tmp_path: Path
) -> None:
    proc = _backup(server, tmp_path, "app")
    assert proc.returncode == 0, output(proc)
    fresh = _file_age_check(tmp_path)
    assert fresh.returncode == 0, output(fresh)  # Nagios-style: 0 ok
    [dump] = _dumps(tmp_path)
    three_days_ago = time.time() - 3 * DAY
    os.utime(dump, (three_days_ago, three_days_ago))
    stale = _file_age_check(tmp_path)
    assert stale.returncode == 2, output(stale)  # 2 fail: older than max_age
    assert "backup-app-db" in stale.stdout
