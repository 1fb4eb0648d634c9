"""`orbit audit-log`: the admin audit trail, latest first.

    orbit audit-log [--user ID] [--admin ID|cli|cli:NAME] [--limit N] [--json]

`--admin` takes an admin's Telegram id, `cli:<os user>` for one operator, or
`cli` for every command-line operator. (`orbit audit` is the ledger check.)
"""

from __future__ import annotations

import argparse
from datetime import UTC

import msgspec

from orbit import audit
from orbit.admin.users import MAX_USER_ID
from orbit.audit import Entry
from orbit.audit.trail import CLI_PREFIX, MAX_LIMIT
from orbit.cli.errors import CommandError
from orbit.connections import create_pool
from orbit.migrate import require_schema
from orbit.settings import Settings

VALUE_SHOWN = 120


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit-log", help="who did what: the admin audit trail, latest first")
    parser.add_argument("--user", help="only actions on this user (Telegram id)")
    parser.add_argument("--admin", help="only actions by this admin: a Telegram id, cli:NAME, or cli")
    parser.add_argument("--limit", type=int, default=50, help="at most this many entries (default 50)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _short(value: object) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= VALUE_SHOWN else text[: VALUE_SHOWN - 1] + "…"


def render(entry: Entry) -> str:
    at = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [f"#{entry.id} {at} {entry.actor} {entry.action}"]
    if entry.target_user_id is not None:
        parts.append(f"user {entry.target_user_id}")
    if entry.target is not None:
        parts.append(entry.target)
    if entry.before is not None or entry.after is not None:
        parts.append(f"{_short(entry.before)} -> {_short(entry.after)}")
    return "  ".join(parts)


def _telegram_id(raw: str, flag: str) -> int:
    text = raw.strip()
    if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_USER_ID:
        return int(text)
    raise CommandError(f"{flag} takes a Telegram id, got {raw[:40]!r}")


def _actor(raw: str) -> str:
    text = raw.strip()
    if text == "cli" or (text.startswith(CLI_PREFIX) and len(text) > len(CLI_PREFIX)):
        return text
    if not (text.isascii() and text.isdigit()):
        raise CommandError(f"--admin takes a Telegram id, cli:NAME or cli, got {raw[:40]!r}")
    return str(_telegram_id(text, "--admin"))


async def run(args: argparse.Namespace, settings: Settings) -> int:
    # Checked before we connect: bad input never reaches the database.
    user_id = None if args.user is None else _telegram_id(args.user, "--user")
    actor = None if args.admin is None else _actor(args.admin)
    if not 1 <= args.limit <= MAX_LIMIT:
        raise CommandError(f"--limit must be 1..{MAX_LIMIT}")
    pool = await create_pool(settings, max_size=1)
    try:
        await require_schema(pool)
        entries = await audit.latest(pool, user_id=user_id, actor=actor, limit=args.limit)
    finally:
        await pool.close()
    if args.json:
        print(msgspec.json.encode(entries).decode())  # noqa: T201
    else:
        for entry in entries:
            print(render(entry))  # noqa: T201
        if not entries:
            print("no audit entries")  # noqa: T201
    return 0
