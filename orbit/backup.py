"""Backups of the database: `pg_dump` custom-format files, and their restore.

- `make_backup` writes `orbit-YYYYMMDD-HHMMSS.dump` (mode 0600: it holds every user and
  payment) into `BACKUP_DIR` under a `.part` name, renames it when `pg_dump` succeeded,
  then keeps the newest `BACKUP_KEEP` files.
- `nightly_backup` is the janitor's: one backup per night across every host (a Redis
  claim per date, taken from `BACKUP_HOUR_UTC` on), given back when it failed so the
  next try makes it; sent to `BACKUP_CHAT_ID` when it is set and under Telegram's 50 MB
  upload limit.
- `restore` loads a file into an empty database and refuses a non-empty one unless
  forced (then what the file holds replaces what is there).

The password reaches `pg_dump` and `pg_restore` in their environment (PGPASSWORD),
never on a command line `ps` shows.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
from redis.asyncio import Redis

from orbit import keys
from orbit.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "orbit-"
SUFFIX = ".dump"
TELEGRAM_UPLOAD_LIMIT = 50 * 1024 * 1024  # the Bot API's sendDocument limit
CLAIM_SECONDS = 36 * 3600  # outlives the night it names
# While the dump runs the claim is short: a janitor killed mid-dump (no `finally` runs)
# leaves the night to the next try within the hour, not to the next night.
DUMP_CLAIM_SECONDS = 3600

SendDocument = Callable[[Path], Awaitable[None]]


class BackupError(Exception):
    """pg_dump or pg_restore failed, or the target refuses a restore; one line."""


def libpq_env(settings: Settings) -> dict[str, str]:
    """The connection as libpq's variables (PGHOST, ..., PGPASSWORD)."""
    url = urlsplit(settings.dsn)
    env = {
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": unquote(url.username or ""),
        "PGDATABASE": unquote(url.path.lstrip("/")),
    }
    if url.password:
        env["PGPASSWORD"] = unquote(url.password)
    return env


async def _run(settings: Settings, *argv: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **libpq_env(settings)}
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        raise BackupError(settings.scrub(f"{argv[0]} failed: {lines[-1] if lines else proc.returncode}"))
    return out.decode("utf-8", "replace")


def backups(folder: Path) -> list[Path]:
    """The backups in `folder`, oldest first (their names sort by time)."""
    return sorted(p for p in folder.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups; the deleted ones."""
    old = backups(folder)[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
    return old


def _new_part(settings: Settings, moment: datetime) -> tuple[Path, Path]:
    """The `.part` file (made 0600 before a byte is written; pg_dump writes into the
    existing file) and the final name."""
    folder = Path(settings.backup_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{moment:%Y%m%d-%H%M%S}{SUFFIX}"
    part = final.with_name(final.name + ".part")
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(part, 0o600)
    return part, final


def _finish(settings: Settings, part: Path, final: Path) -> None:
    part.rename(final)
    removed = prune(final.parent, settings.backup_keep)
    log.info("backup %s written (%d bytes); %d old ones removed", final, final.stat().st_size, len(removed))


async def make_backup(settings: Settings, moment: datetime | None = None) -> Path:
    """A new backup file in BACKUP_DIR (see the module's doc); its path."""
    part, final = _new_part(settings, moment or datetime.now(UTC))
    try:
        await _run(settings, "pg_dump", "--format=custom", "--no-owner", "--file", str(part))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _finish(settings, part, final)
    return final


async def database_is_empty(conn: asyncpg.Connection) -> bool:
    """No table in the public schema: nothing a restore could clash with."""
    return not await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")


async def restore(settings: Settings, file: Path, *, force: bool = False) -> None:
    """Load `file` into the database of `settings` (see the module's doc)."""
    await _run(settings, "pg_restore", "--list", str(file))  # refuses a missing file or not a dump
    conn = await asyncpg.connect(settings.dsn)
    try:
        empty = await database_is_empty(conn)
    finally:
        await conn.close()
    if not empty and not force:
        raise BackupError(
            "the database is not empty: restore into a new, empty database"
            " (or add --force to replace what it holds with the backup)"
        )
    argv = ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction"]
    if not empty:
        argv += ["--clean", "--if-exists"]
    await _run(settings, *argv, "--dbname", libpq_env(settings)["PGDATABASE"], str(file))
    log.info("restored %s", file)


async def nightly_backup(
    settings: Settings, redis: Redis, now: datetime, send: SendDocument | None = None
) -> int:
    """The night's backup if it is due and ours to make; 1 when made, else 0."""
    if now.astimezone(UTC).hour < settings.backup_hour_utc:
        return 0
    claim = keys.backup_claim(f"{now.astimezone(UTC):%Y-%m-%d}")
    if not await redis.set(claim, "making", nx=True, ex=DUMP_CLAIM_SECONDS):
        return 0
    try:
        path = await make_backup(settings, now)
    except BaseException:
        await redis.delete(claim)  # the next try (this janitor or another) makes it
        raise
    await redis.set(claim, "made", ex=CLAIM_SECONDS)
    if send is not None and settings.backup_chat_id is not None:
        size = path.stat().st_size
        if size < TELEGRAM_UPLOAD_LIMIT:
            try:
                await send(path)
            except Exception as exc:  # the file is made and kept: only the copy in Telegram is missing
                log.warning("backup %s not sent to BACKUP_CHAT_ID: %s", path, exc)
        else:
            log.warning("backup %s is %d bytes: over Telegram's upload limit, not sent", path, size)
    return 1
