"""`orbit backup` and `orbit restore FILE` (orbit/backup.py).

orbit backup                      # a pg_dump file in BACKUP_DIR; the newest BACKUP_KEEP stay
orbit restore FILE [--force]      # into an empty database; --force replaces a non-empty one
"""

from __future__ import annotations

import argparse
from pathlib import Path

import asyncpg

from orbit import backup
from orbit.cli.errors import CommandError
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    made = subparsers.add_parser("backup", help="write a database backup (pg_dump) into BACKUP_DIR")
    made.set_defaults(func=run_backup)
    back = subparsers.add_parser("restore", help="restore a backup file into an empty database")
    back.add_argument("file", help="a file `orbit backup` wrote")
    back.add_argument(
        "--force", action="store_true", help="replace what a non-empty database holds with the backup"
    )
    back.set_defaults(func=run_restore)


async def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    try:
        path = await backup.make_backup(settings)
    except (backup.BackupError, OSError, asyncpg.PostgresError) as exc:
        raise CommandError(str(exc)) from None
    print(f"backup written: {path} ({path.stat().st_size} bytes)")  # noqa: T201
    return 0


async def run_restore(args: argparse.Namespace, settings: Settings) -> int:
    try:
        await backup.restore(settings, Path(args.file), force=args.force)
    except (backup.BackupError, OSError, asyncpg.PostgresError) as exc:
        raise CommandError(str(exc)) from None
    print(f"restored {args.file}; check it with `orbit audit`")  # noqa: T201
    return 0
