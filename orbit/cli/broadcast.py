"""`orbit broadcast`: send a message to every user, follow its delivery.

    orbit broadcast send --text TEXT [--yes]
    orbit broadcast status ID [--json]
    orbit broadcast resume ID

The text is plain (shown exactly as typed; the bot's admin panel keeps
Telegram formatting). It goes to everyone who has not blocked the bot and is
not banned, through the outbox: the bot's sender delivers it at Telegram's
rate. Without `--yes` the command shows the text and the audience and asks.
`resume` finishes a broadcast whose queueing was cut short (it never sends
anyone a message twice).
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

from orbit.admin.broadcasts import (
    Queued,
    audience_count,
    broadcast_progress,
    check_text,
    create_broadcast,
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
    parser = subparsers.add_parser("broadcast", help="message every user; follow a broadcast")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    send = actions.add_parser("send", help="queue a message to every reachable user")
    send.add_argument("--text", required=True, help="plain text, sent as typed")
    send.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    status = actions.add_parser("status", help="sent / pending / failed of a broadcast")
    status.add_argument("id", help="the broadcast's number")
    status.add_argument("--json", action="store_true", help="machine-readable output")

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
    state = "queued" if p.queued_at is not None else "STILL QUEUEING (cut short? `orbit broadcast resume`)"
    return (
        f"broadcast #{p.id} by {p.created_by or 'cli'} at {p.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC,"
        f" {state}:"
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


async def _send(args: argparse.Namespace, settings: Settings) -> int:
    text = check_text(html.escape(args.text.strip()))
    async with _connect(settings) as env:
        if not args.yes:
            count = await audience_count(env.pool)
            _out("---")
            _out(args.text.strip())
            _out("---")
            if not await _confirm(f"send this to {count} users? [y/N]"):
                _out("not sent")
                return 1
        done = await create_broadcast(
            env.pool,
            env.redis,
            text,
            created_by=CLI_ADMIN_ID,
            action_key=f"cli:{uuid.uuid4().hex}",
            rate_per_second=settings.outbox_rate_per_second,
        )
    _out(_queued(done))
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


_ACTIONS = {"send": _send, "status": _status, "resume": _resume}


async def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return await _ACTIONS[args.action](args, settings)
    except AdminError as exc:
        raise CommandError(str(exc)) from None
