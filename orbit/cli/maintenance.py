"""`orbit maintenance`: the switch of maintenance mode (orbit/maintenance.py).

    orbit maintenance on [--message TEXT]   users get this (or the default) once, payments go on
    orbit maintenance off
    orbit maintenance status [--json]

The message is plain text, shown as typed. Admins (ADMIN_IDS) use the bot as usual.
"""

from __future__ import annotations

import argparse
import getpass
import html
from datetime import UTC, datetime

import msgspec

from orbit import maintenance
from orbit.admin.broadcasts import check_text
from orbit.admin.errors import AdminError
from orbit.cli.errors import CommandError
from orbit.connections import check_redis, create_redis
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
    redis = create_redis(settings)
    try:
        await check_redis(redis, settings)
        if args.action == "on":
            state, was_on = await maintenance.switch_on(redis, message, by=f"cli:{getpass.getuser()}")
            # AUDIT: record(...) of maintenance on here once orbit/audit is on main.
            _out(("message replaced: " if was_on else "") + _describe(state))
        elif args.action == "off":
            ended = await maintenance.switch_off(redis)
            # AUDIT: record(...) of maintenance off here once orbit/audit is on main.
            _out("maintenance is off" + ("" if ended else " (it was not on)"))
        else:
            state = await maintenance.read(redis)
            _out(
                msgspec.json.encode({"on": state is not None, "state": state}).decode()
                if args.json
                else _describe(state)
            )
    finally:
        await redis.aclose()
    return 0
