#!/usr/bin/env bash
# PostgreSQL backup: one compressed pg_dump (custom format) per database, verified with
# pg_restore --list before it replaces anything, then old backups pruned.
#
# Usage: pg-backup.sh DATABASE...
#
# Connection: the usual libpq variables (PGHOST, PGPORT, PGUSER, and PGPASSFILE or
# PGPASSWORD); the password is never printed. Settings (environment):
#   BACKUP_DIR       where dumps go                     [/var/backups/postgres]
#   RETENTION_DAYS   delete dumps older than this       [14]
#   COMPRESS_LEVEL   pg_dump -Z level, 0-9              [6]
#   PG_BIN           directory of pg_dump/pg_restore    [from PATH]
#
# Files: $BACKUP_DIR/<database>-<UTC timestamp>.dump, written under a hidden temporary name
# and renamed only once verified, so a reader (probed's file_age check, see checks.d/ here)
# never sees a partial dump. Restore: pg_restore -d DATABASE FILE.
#
# Exit status: 0 when every database was backed up and verified; 1 on any failure, with a
# message on stderr naming the database and the step. Retention never runs for a database
# whose backup failed, and never deletes the dump just written.
set -euo pipefail
umask 077

BACKUP_DIR=${BACKUP_DIR:-/var/backups/postgres}
RETENTION_DAYS=${RETENTION_DAYS:-14}
COMPRESS_LEVEL=${COMPRESS_LEVEL:-6}
PG_DUMP=${PG_BIN:+$PG_BIN/}pg_dump
PG_RESTORE=${PG_BIN:+$PG_BIN/}pg_restore

log() { printf '%s pg-backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

partial=""
cleanup() { if [ -n "$partial" ]; then rm -f -- "$partial"; fi; }
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

[ "$#" -ge 1 ] || die "usage: pg-backup.sh DATABASE..."
case "$RETENTION_DAYS" in
  '' | *[!0-9]*) die "RETENTION_DAYS must be a whole number of days, got '$RETENTION_DAYS'" ;;
esac
case "$COMPRESS_LEVEL" in
  [0-9]) ;;
  *) die "COMPRESS_LEVEL must be 0-9, got '$COMPRESS_LEVEL'" ;;
esac
command -v "$PG_DUMP" >/dev/null || die "pg_dump not found (set PG_BIN or PATH)"
command -v "$PG_RESTORE" >/dev/null || die "pg_restore not found (set PG_BIN or PATH)"
mkdir -p -- "$BACKUP_DIR" || die "cannot create backup directory $BACKUP_DIR"
[ -w "$BACKUP_DIR" ] || die "backup directory $BACKUP_DIR is not writable"

backup_one() {
  local db=$1 stamp final entries
  case "$db" in
    '' | */* | .*) die "invalid database name '$db'" ;;
  esac
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  final="$BACKUP_DIR/$db-$stamp.dump"
  partial="$BACKUP_DIR/.$db-$stamp.dump.partial"

  log "dumping database $db"
  "$PG_DUMP" --format=custom --compress="$COMPRESS_LEVEL" --no-password \
    --file="$partial" -- "$db" \
    || die "pg_dump failed for database $db (see the message above); nothing was replaced"

  # A dump whose table of contents pg_restore cannot read, or that lists no entries, is not
  # a backup.
  entries=$("$PG_RESTORE" --list -- "$partial" | grep -cv '^;' || true)
  [ "${entries:-0}" -gt 0 ] \
    || die "verification failed for database $db: pg_restore --list cannot read $partial"

  sync -- "$partial" 2>/dev/null || true
  mv -- "$partial" "$final" || die "cannot move the verified dump of $db to $final"
  partial=""
  log "database $db: $final ($(wc -c <"$final") bytes, $entries entries) verified"

  # Retention: only this database's dumps, only after a verified new one, never the new one.
  find "$BACKUP_DIR" -maxdepth 1 -type f -name "$db-*.dump" ! -name "$(basename "$final")" \
    -mtime +"$RETENTION_DAYS" -print -delete \
    | while read -r old; do log "removed $old (older than $RETENTION_DAYS days)"; done
}

for db in "$@"; do
  backup_one "$db"
done
log "done: $# database(s) backed up to $BACKUP_DIR"
