"""`orbit migrate`: upgrade the schema to head (or to/down to a given revision)."""

from __future__ import annotations

import argparse
import asyncio

from orbit import migrate
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help="upgrade the database schema")
    parser.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    parser.add_argument("--down", action="store_true", help="downgrade to REVISION instead")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    step = migrate.downgrade if args.down else migrate.upgrade
    # Alembic's env.py runs its own event loop: keep it off ours.
    await asyncio.to_thread(step, settings.dsn, args.revision)
    print(f"schema {'downgraded' if args.down else 'upgraded'} to {args.revision}")  # noqa: T201
    return 0
