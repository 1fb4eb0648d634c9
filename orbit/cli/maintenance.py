"""`orbit maintenance`: the switch of maintenance mode (orbit/maintenance.py).

    orbit maintenance on [--message TEXT]   users get this (or the default) once, payments go on
    orbit maintenance off
    orbit maintenance status [--json]

The message is plain text, shown as typed. Admins (ADMIN_IDS) use the bot as usual.
"""

from __future__ import annotations

import argparse
import html
from datetime import UTC, datetime

import msgspec

from orbit import audit, maintenance
from orbit.admin.broadcasts import check_text
from orbit.admin.errors import AdminError
from orbit.cli.errors import CommandError
from orbit.connections import check_redis, create_pool, create_redis
from orbit.migrate import require_schema
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("maintenance", help="maintenance mode: users get one polite message")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    on = actions.add_parser("on", help="switch it on (or replace its message)")
    on.add_argument("--message", help="plain text users get once (default: the bot's own, localized)")
    actions.add_parser("off", help="switch it off")
    status = actions.add_parser("status", help="on or off, since when, by whom")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _out(line: str) -> None:
    print(line)  # noqa: T201


def _describe(state: maintenance.Maintenance | None) -> str:
    if state is None:
        return "maintenance is off"
    since = datetime.fromtimestamp(state.since, UTC)
    shown = html.unescape(state.message) if state.message else "(the default message)"
    return f"maintenance is ON since {since:%Y-%m-%d %H:%M} UTC by {state.by}: {shown}"


async def run(args: argparse.Namespace, settings: Settings) -> int:
    message = ""
    if args.action == "on" and args.message is not None:
        try:
            message = check_text(html.escape(args.message.strip()))
        except AdminError as exc:
            raise CommandError(str(exc)) from None
    pool = await create_pool(settings, max_size=1)
    redis = create_redis(settings)
    try:
        await require_schema(pool)
        await check_redis(redis, settings)
        if args.action == "on":
            state, was_on = await maintenance.switch_on(pool, redis, message, actor=audit.cli_actor())
            _out(("message replaced: " if was_on else "") + _describe(state))
        elif args.action == "off":
            ended = await maintenance.switch_off(pool, redis, actor=audit.cli_actor())
            _out("maintenance is off" + ("" if ended else " (it was not on)"))
        else:
            state = await maintenance.read(redis)
            if args.json:
                _out(msgspec.json.encode({"on": state is not None, "state": state}).decode())
            else:
                _out(_describe(state))
    finally:
        await redis.aclose()
        await pool.close()
    return 0
