"""`orbit promo`: create, list and disable promo codes.

    orbit promo add CODE balance RUB [--max-uses N] [--expires WHEN]
    orbit promo add CODE days DAYS [--max-uses N] [--expires WHEN]
    orbit promo list [--all] [--json]
    orbit promo disable CODE

Codes are case-insensitive (stored upper-case). A `balance` code credits RUB
(up to two decimals: `99.50`), a `days` code adds days to the subscription.
WHEN is a date (`2026-12-31`: valid through that day, UTC) or an ISO datetime
(`2026-12-31T18:00+03:00`; UTC when it has no offset). Bad input is refused in
one line (exit code 2) and nothing is changed.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

import asyncpg
import msgspec

from orbit.audit import cli_actor
from orbit.cli.errors import CommandError
from orbit.connections import create_pool
from orbit.migrate import require_schema
from orbit.money import KOPECKS_PER_RUB, format_rub
from orbit.promos.queries import PromoRow
from orbit.promos.service import KINDS, PromoInputError, create_promo, disable_promo, list_promos
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("promo", help="manage promo codes")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    # Values are taken as text and checked by us, so every bad one is refused in one line.
    add = actions.add_parser("add", help="create a promo code")
    add.add_argument("code", help="3-32 characters: A-Z, 0-9, '_', '-' (case-insensitive)")
    add.add_argument("kind", metavar="KIND", help="balance (VALUE in RUB) or days (VALUE in days)")
    add.add_argument("value", metavar="VALUE", help="RUB for balance (e.g. 100 or 99.50), days for days")
    add.add_argument("--max-uses", help="how many users may redeem it (default: unlimited)")
    add.add_argument("--expires", help="a date (valid through it, UTC) or an ISO datetime")

    listing = actions.add_parser("list", help="usable promo codes")
    listing.add_argument("--all", action="store_true", help="also disabled, expired and used-up codes")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    disable = actions.add_parser("disable", help="stop a code from being redeemed")
    disable.add_argument("code")

    parser.set_defaults(func=run)


def _out(line: str = "") -> None:
    print(line)  # noqa: T201


def parse_value(kind: str, raw: str) -> int:
    """Kopecks for a balance code, days for a days code."""
    if kind == "days":
        try:
            days = int(raw)
        except ValueError:
            raise CommandError(f"days must be a whole number, got {raw!r}") from None
        if days <= 0:
            raise CommandError(f"days must be positive, got {raw}")
        return days
    try:
        rub = Decimal(raw)
    except InvalidOperation:
        raise CommandError(f"the amount must be RUB like 100 or 99.50, got {raw!r}") from None
    if not rub.is_finite() or rub <= 0:
        raise CommandError(f"the amount must be positive, got {raw}")
    kopecks = rub * KOPECKS_PER_RUB
    if kopecks != kopecks.to_integral_value():
        raise CommandError(f"the amount has more than two decimals: {raw}")
    return int(kopecks)


def parse_max_uses(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        uses = int(raw)
    except ValueError:
        raise CommandError(f"--max-uses must be a whole number, got {raw!r}") from None
    if uses <= 0:
        raise CommandError(f"--max-uses must be positive, got {raw}")
    return uses


def parse_expiry(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        pass
    else:  # valid through that whole day
        return datetime.combine(day + timedelta(days=1), time(), UTC)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--expires must be a date (2026-12-31) or an ISO datetime, got {raw!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def describe(promo: PromoRow) -> str:
    value = f"{format_rub(promo.value)} RUB" if promo.kind == "balance" else f"{promo.value} days"
    uses = f"{promo.uses}/{promo.max_uses}" if promo.max_uses is not None else f"{promo.uses}/unlimited"
    expires = promo.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if promo.expires_at else "never"
    state = "active" if promo.is_active else "disabled"
    return f"{promo.code:<20} {promo.kind:<8} {value:>14}  uses {uses:<14} expires {expires:<20} {state}"


@asynccontextmanager
async def _connect(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings, max_size=2)
    try:
        await require_schema(pool)
        yield pool
    finally:
        await pool.close()


async def _add(args: argparse.Namespace, settings: Settings) -> None:
    kind = args.kind.lower()
    if kind not in KINDS:
        raise CommandError(f"unknown kind {args.kind!r}: expected one of {', '.join(KINDS)}")
    # Everything is checked before we connect: bad input never reaches the database.
    value = parse_value(kind, args.value)
    max_uses = parse_max_uses(args.max_uses)
    expires_at = parse_expiry(args.expires)
    async with _connect(settings) as pool:
        promo = await create_promo(
            pool, args.code, kind, value, actor=cli_actor(), max_uses=max_uses, expires_at=expires_at
        )
    _out(f"added: {describe(promo)}")


async def _disable(args: argparse.Namespace, settings: Settings) -> None:
    async with _connect(settings) as pool:
        promo = await disable_promo(pool, args.code, actor=cli_actor())
    _out(f"disabled: {describe(promo)}")


async def _list(args: argparse.Namespace, settings: Settings) -> None:
    async with _connect(settings) as pool:
        promos = await list_promos(pool, include_unusable=args.all)
    if args.json:
        _out(msgspec.json.encode(promos).decode())
        return
    if not promos:
        _out("no promo codes" if args.all else "no usable promo codes (--all shows every one)")
    for promo in promos:
        _out(describe(promo))


_ACTIONS = {"add": _add, "disable": _disable, "list": _list}


async def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        await _ACTIONS[args.action](args, settings)
    except PromoInputError as exc:
        raise CommandError(str(exc)) from None
    return 0
