"""`orbit broadcast`: send a message to an audience, follow, stop and list broadcasts.

    orbit broadcast send (--text TEXT | --text-file F) [--audience A] [--language xx]
                         [--button TEXT=URL|TEXT=screen] [--yes]
    orbit broadcast cancel ID
    orbit broadcast list [--json]
    orbit broadcast show ID [--json]        (`status` is the same)
    orbit broadcast resume ID

The text is plain (shown exactly as typed; the bot's admin panel keeps
Telegram formatting). The audience is one of all, active, expired, trial,
never_paid (default all), optionally one language; users who blocked the bot or
are banned never get it. It goes through the outbox: the bot's sender delivers
it at Telegram's rate. Without `--yes` the command shows the text, the button and
how many it reaches, and asks. `cancel` stops it: nothing more is sent but what
is mid-send. `resume` finishes a broadcast whose queueing was cut short (it never
sends anyone a message twice).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC

import asyncpg
import msgspec
from redis.asyncio import Redis

from orbit import audit
from orbit.admin.broadcasts import (
    AUDIENCES,
    LANGUAGES,
    Queued,
    audience_count,
    broadcast_progress,
    cancel_broadcast,
    check_audience,
    check_text,
    create_broadcast,
    list_broadcasts,
    parse_button,
    resume_broadcast,
)
from orbit.admin.errors import AdminError
from orbit.admin.queries import Progress
from orbit.cli.errors import CommandError
from orbit.connections import check_redis, create_pool, create_redis
from orbit.migrate import require_schema
from orbit.settings import Settings

CLI_ADMIN_ID = 0  # `broadcasts.created_by` of a broadcast sent from the command line


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("broadcast", help="message an audience; follow, stop, list broadcasts")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    send = actions.add_parser("send", help="queue a message to an audience")
    given = send.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", help="plain text, sent as typed")
    given.add_argument("--text-file", help="a UTF-8 file holding the plain text ('-': stdin)")
    send.add_argument("--audience", default="all", help=f"one of {', '.join(AUDIENCES)} (default all)")
    send.add_argument("--language", help=f"only users with this language: {', '.join(LANGUAGES)}")
    send.add_argument("--button", help="TEXT=URL for a link, TEXT=screen for a bot screen (e.g. Plans=buy)")
    send.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    for name in ("show", "status"):
        status = actions.add_parser(name, help="sent / left / failed of a broadcast")
        status.add_argument("id", help="the broadcast's number")
        status.add_argument("--json", action="store_true", help="machine-readable output")

    cancel = actions.add_parser("cancel", help="stop a broadcast: nothing more of it is sent")
    cancel.add_argument("id", help="the broadcast's number")

    listing = actions.add_parser("list", help="the latest broadcasts with their progress")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    resume = actions.add_parser("resume", help="finish queueing a broadcast that was cut short")
    resume.add_argument("id", help="the broadcast's number")
    parser.set_defaults(func=run)


def _out(line: str = "") -> None:
    print(line)  # noqa: T201


@dataclass
class _Env:
    pool: asyncpg.Pool
    redis: Redis


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[_Env]:
    pool = await create_pool(settings, max_size=2)
    try:
        await require_schema(pool)
        redis = create_redis(settings)
        try:
            await check_redis(redis, settings)
            yield _Env(pool, redis)
        finally:
            await redis.aclose()
    finally:
        await pool.close()


def _broadcast_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 2**63:
        raise CommandError(f"a broadcast id is a positive number, got {raw!r}")
    return int(raw)


def describe(p: Progress) -> str:
    if p.cancelled_at is not None:
        state = f"CANCELLED ({p.cancelled} not sent)"
    elif p.queued_at is None:
        state = "STILL QUEUEING (cut short? `orbit broadcast resume`)"
    else:
        state = "finished" if p.finished else "sending"
    audience = p.audience + (f", language {p.language}" if p.language else "")
    return (
        f"broadcast #{p.id} by {p.created_by or 'cli'} at {p.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        f" to {audience}, {state}:"
        f" {p.total} recipients, sent {p.sent}, pending {p.pending}, failed {p.failed}, skipped {p.skipped}"
    )


def _queued(done: Queued) -> str:
    if done.replayed:
        return f"broadcast #{done.broadcast_id} was already queued: {done.queued} messages"
    follow = f"orbit broadcast status {done.broadcast_id}"
    return f"broadcast #{done.broadcast_id} queued: {done.queued} messages (follow it: `{follow}`)"


async def _confirm(prompt: str) -> bool:
    _out(prompt)
    answer = await asyncio.to_thread(sys.stdin.readline)
    return answer.strip().lower() in ("y", "yes")


def _read_text(args: argparse.Namespace) -> str:
    if args.text is not None:
        return str(args.text)
    try:
        if args.text_file == "-":
            return sys.stdin.read()
        with open(args.text_file, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read --text-file {args.text_file}: {exc}") from None


async def _send(args: argparse.Namespace, settings: Settings) -> int:
    from orbit.ui.callbacks import screen_buttons  # the bot owns its buttons' data

    plain = _read_text(args).strip()
    text = check_text(html.escape(plain))
    audience = check_audience(args.audience, args.language)
    markup = parse_button(args.button, screen_buttons()) if args.button else None
    async with _connect(settings) as env:
        if not args.yes:
            count = await audience_count(env.pool, audience)
            _out("---")
            _out(plain)
            if markup is not None:
                button = markup["inline_keyboard"][0][0]
                _out(f"[ {button['text']} ] -> {button.get('url') or button.get('callback_data')}")
            _out("---")
            who = audience.name + (f", language {audience.language}" if audience.language else "")
            if not await _confirm(f"send this to {count} users ({who})? [y/N]"):
                _out("not sent")
                return 1
        done = await create_broadcast(
            env.pool,
            env.redis,
            text,
            created_by=CLI_ADMIN_ID,
            action_key=f"cli:{uuid.uuid4().hex}",
            rate_per_second=settings.outbox_rate_per_second,
            audience=audience,
            reply_markup=markup,
        )
    _out(_queued(done))
    return 0


async def _cancel(args: argparse.Namespace, settings: Settings) -> int:
    broadcast_id = _broadcast_id(args.id)
    pool = await create_pool(settings, max_size=1)
    try:
        await require_schema(pool)
        already, stopped = await cancel_broadcast(pool, broadcast_id, actor=audit.cli_actor())
    finally:
        await pool.close()
    if already:
        _out(f"broadcast #{broadcast_id} was already cancelled ({stopped} more rows stopped)")
    else:
        _out(f"broadcast #{broadcast_id} cancelled: {stopped} messages will not be sent")
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    if not 0 < args.limit <= 1000:
        raise CommandError(f"--limit is 1..1000, got {args.limit}")
    pool = await create_pool(settings, max_size=1)
    try:
        found = await list_broadcasts(pool, args.limit)
    finally:
        await pool.close()
    if args.json:
        _out(msgspec.json.encode(found).decode())
    elif not found:
        _out("no broadcasts yet")
    else:
        for p in found:
            _out(describe(p))
    return 0


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    broadcast_id = _broadcast_id(args.id)
    pool = await create_pool(settings, max_size=1)
    try:
        progress = await broadcast_progress(pool, broadcast_id)
    finally:
        await pool.close()
    _out(msgspec.json.encode(progress).decode() if args.json else describe(progress))
    return 0


async def _resume(args: argparse.Namespace, settings: Settings) -> int:
    broadcast_id = _broadcast_id(args.id)
    async with _connect(settings) as env:
        done = await resume_broadcast(
            env.pool, env.redis, broadcast_id, rate_per_second=settings.outbox_rate_per_second
        )
    _out(_queued(done))
    return 0


_ACTIONS = {
    "send": _send,
    "status": _status,
    "show": _status,
    "resume": _resume,
    "cancel": _cancel,
    "list": _list,
}


async def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return await _ACTIONS[args.action](args, settings)
    except AdminError as exc:
        raise CommandError(str(exc)) from None
