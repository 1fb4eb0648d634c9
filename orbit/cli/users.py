"""`orbit users`: look a user up, correct a balance, ban or unban.

    orbit users show <id|@username> [--json]
    orbit users adjust <id> <±RUB> --reason TEXT [--key KEY]
    orbit users grant-days <id> <±DAYS> --reason TEXT [--key KEY]   (negative removes)
    orbit users ban <id>      (also disables the user's configs on their panels)
    orbit users unban <id>    (and enables them again)

An adjustment is a ledger entry (kind `adjustment`) with the reason in its
note; `--key` makes a retried command harmless (the same key adjusts once).
A debit larger than the balance is refused. Bad input is refused in one line
(exit code 2) and nothing is changed.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
import asyncpg
import msgspec

from orbit.admin.card_queries import ReferralLink
from orbit.admin.days import grant_days, parse_days
from orbit.admin.errors import AdminError
from orbit.admin.users import (
    UserCard,
    adjust_balance,
    check_reason,
    config_usage,
    parse_amount,
    parse_user_ref,
    set_banned,
    user_card,
)
from orbit.audit import cli_actor
from orbit.cli.audit_log import render as audit_line
from orbit.cli.errors import CommandError
from orbit.connections import check_redis, create_pool, create_redis
from orbit.marzban.provisioning import PanelDeps, Usage
from orbit.migrate import require_schema
from orbit.money import format_rub
from orbit.settings import Settings

NOTE_SHOWN = 80


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("users", help="look up users, adjust balances, ban")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    show = actions.add_parser("show", help="balance, subscription, configs, payments, ledger of a user")
    show.add_argument("user", help="a Telegram id or @username")
    show.add_argument("--json", action="store_true", help="machine-readable output")

    adjust = actions.add_parser("adjust", help="add to or take from a balance (a ledger entry)")
    adjust.add_argument("user", help="the user's Telegram id")
    adjust.add_argument("amount", help="RUB: 100 adds, -50 takes, 99.50 has kopecks")
    adjust.add_argument("--reason", required=True, help="why (kept in the ledger entry's note)")
    adjust.add_argument("--key", help="idempotency key: the same key adjusts once (default: a new one)")

    grant = actions.add_parser("grant-days", help="add (or, negative, remove) subscription days")
    grant.add_argument("user", help="the user's Telegram id")
    grant.add_argument("days", help="30 adds 30 days, -7 takes 7 away")
    grant.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    grant.add_argument("--key", help="idempotency key: the same key grants once (default: a new one)")

    for action, text in (("ban", "refuse the user everything in the bot"), ("unban", "lift a ban")):
        actions.add_parser(action, help=text).add_argument("user", help="the user's Telegram id")
    parser.set_defaults(func=run)


def _out(line: str = "") -> None:
    print(line)  # noqa: T201


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _signed(kopecks: int) -> str:
    return ("+" if kopecks > 0 else "") + format_rub(kopecks)


def _user_id(raw: str) -> int:
    ref = parse_user_ref(raw)
    if not isinstance(ref, int):
        raise CommandError(f"expected a numeric Telegram id, got {raw!r} (`orbit users show` finds the id)")
    return ref


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings, max_size=2)
    try:
        await require_schema(pool)
        yield pool
    finally:
        await pool.close()


def _usage(usage: Usage | None) -> str:
    if usage is None:
        return "usage unknown (panel did not answer)"
    used = f"{usage.used_traffic / 2**30:.2f} GiB used"
    return f"{used}, last online {_when(usage.online_at) if usage.online_at else 'never'}"


def _link(link: ReferralLink) -> str:
    name = f" @{link.username}" if link.username else ""
    bonus = f", bonus paid {_when(link.bonus_paid_at)}" if link.bonus_paid_at else ", no bonus yet"
    return f"{link.id}{name} (joined {_when(link.created_at)}{bonus})"


def render(card: UserCard, usage: dict[int, Usage | None] | None = None) -> list[str]:
    p = card.profile
    name = f"@{p.username}" if p.username else "(no username)"
    lines = [
        f"user {p.id} {name} ({p.first_name or '-'}), language {p.language},"
        f" joined {_when(p.created_at)}, last seen {_when(p.last_seen_at)}",
        f"balance       {format_rub(p.balance_kop)} RUB",
    ]
    until = p.subscription_until
    if until is None:
        lines.append("subscription  none")
    elif until <= datetime.now(UTC):
        lines.append(f"subscription  ended {_when(until)}")
    else:
        renew = "on" if p.auto_renew else "off"
        lines.append(f"subscription  until {_when(until)} (plan {card.plan_id or '-'}, auto-renew {renew})")
    flags = ["BANNED"] if p.is_banned else []
    if p.blocked_at is not None:
        flags.append(f"blocked the bot {_when(p.blocked_at)}")
    if flags:
        lines.append(f"flags         {', '.join(flags)}")
    lines.append(f"configs ({len(card.configs)}):")
    usage = usage or {}
    lines += [
        f"  #{c.id} {c.name!r} on {c.instance_id}, {c.status}, {c.subscription_url or 'no link yet'}"
        + ("" if c.id not in usage else f"; {_usage(usage[c.id])}")
        for c in card.configs
    ]
    r = card.referrals
    lines.append(f"invited by    {_link(r.invited_by) if r.invited_by else '-'}")
    lines.append(f"invited       {r.invited_total} users, bonuses earned {format_rub(r.bonus_kop)} RUB")
    lines += [f"  {_link(link)}" for link in r.invited]
    lines.append(f"payments (last {len(card.payments)}):")
    lines += [
        f"  #{pay.id} {pay.method} {format_rub(pay.amount_kop)} RUB {pay.status}, {_when(pay.created_at)}"
        for pay in card.payments
    ]
    lines.append(f"ledger (last {len(card.ledger)}):")
    lines += [
        f"  #{e.id} {_signed(e.amount_kop)} {e.kind} -> {format_rub(e.balance_after_kop)},"
        f" {_when(e.created_at)}{'  ' + e.note[:NOTE_SHOWN] if e.note else ''}"
        for e in card.ledger
    ]
    lines.append(f"admin actions (last {len(card.audit)}):")
    lines += [f"  {audit_line(e)}" for e in card.audit]
    return lines


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    ref = parse_user_ref(args.user)
    async with _panel_deps(settings) as deps:
        card = await user_card(deps.pool, ref)
        usage = await config_usage(deps, card.configs)
    if args.json:
        # The card with each config's usage as its panel said (null: it did not answer).
        _out(msgspec.json.encode({**msgspec.to_builtins(card), "usage": usage}).decode())
    else:
        for line in render(card, usage):
            _out(line)
    return 0


async def _adjust(args: argparse.Namespace, settings: Settings) -> int:
    # Everything is checked before we connect: bad input never reaches the database.
    user_id = _user_id(args.user)
    amount = parse_amount(args.amount)
    key = args.key if args.key is not None else f"cli:{uuid.uuid4().hex}"
    if not key.strip():
        raise CommandError("--key is empty")
    async with _connect(settings) as pool:
        done = await adjust_balance(
            pool, user_id, amount, reason=args.reason, actor=cli_actor(), action_key=key
        )
    if done.replayed:
        _out(
            f"already applied with key {key!r} (ledger entry {done.entry_id}): nothing changed;"
            f" balance {format_rub(done.balance_after_kop)} RUB"
        )
    else:
        _out(
            f"user {user_id}: {_signed(done.amount_kop)} RUB (ledger entry {done.entry_id}),"
            f" balance now {format_rub(done.balance_after_kop)} RUB"
        )
    return 0


@asynccontextmanager
async def _panel_deps(settings: Settings) -> AsyncIterator[PanelDeps]:
    """What a ban needs to reach the user's panels (their panel users are disabled)."""
    async with _connect(settings) as pool:
        redis = create_redis(settings)
        try:
            await check_redis(redis, settings)
            async with aiohttp.ClientSession() as http:
                yield PanelDeps(pool, redis, http, settings)
        finally:
            await redis.aclose()


async def _ban(args: argparse.Namespace, settings: Settings) -> int:
    user_id = _user_id(args.user)
    banned = args.action == "ban"
    async with _panel_deps(settings) as deps:
        changed = await set_banned(deps, user_id, banned, actor=cli_actor(), admin_ids=settings.admin_ids)
    word = "banned" if banned else "unbanned"
    _out(f"user {user_id} {word}" if changed else f"user {user_id} was already {word}")
    return 0


async def _grant_days(args: argparse.Namespace, settings: Settings) -> int:
    user_id = _user_id(args.user)
    days = parse_days(args.days)
    check_reason(args.reason)
    key = args.key if args.key is not None else f"cli:{uuid.uuid4().hex}"
    if not key.strip():
        raise CommandError("--key is empty")
    async with _panel_deps(settings) as deps:
        done = await grant_days(deps, user_id, days, reason=args.reason, actor=cli_actor(), action_key=key)
    if done.replayed:
        _out(f"already applied with key {key!r}: nothing changed; subscription until {_when(done.after)}")
    else:
        verb = "granted" if days > 0 else "removed"
        _out(f"user {user_id}: {abs(days)} days {verb}, subscription until {_when(done.after)}")
    return 0


_ACTIONS = {"show": _show, "adjust": _adjust, "grant-days": _grant_days, "ban": _ban, "unban": _ban}


async def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return await _ACTIONS[args.action](args, settings)
    except AdminError as exc:
        raise CommandError(str(exc)) from None
