"""`orbit ton`: TON transfers the watcher could not match to a payment.

    orbit ton unmatched [--limit N] [--json]
    orbit ton credit HASH --user USER_ID --rub AMOUNT
    orbit ton dismiss HASH
    orbit ton reconcile [--hours N] [--json]

A transfer with an unknown or missing comment is kept as `unmatched`. When
support has found whose it is (the user sends the transaction link), `credit`
puts AMOUNT RUB on that user's balance once per transfer and tells them. Bad
input is refused in one line (exit code 2) and nothing is changed. `dismiss`
takes a transfer support looked at and found nothing to credit off the list;
housekeeping deletes it after 90 days. `reconcile`
re-reads the wallet's last N hours (`TON_RECONCILE_LOOKBACK_HOURS`) behind the
watcher's cursor and credits, once, anything it missed (docs/payments.md).
"""

from __future__ import annotations

import argparse
from datetime import timedelta

import aiohttp
import msgspec

from orbit import ledger, outbox
from orbit.cli.errors import CommandError
from orbit.connections import create_pool, create_redis
from orbit.i18n import create_translator
from orbit.money import format_rub
from orbit.payments import queries
from orbit.payments.service import PaymentError, parse_topup_amount
from orbit.payments.ton import format_ton
from orbit.payments.ton_reconcile import reconcile_ton
from orbit.payments.ton_watch import TransferNotUnmatched, credit_unmatched, list_unmatched
from orbit.payments.tonapi import TonapiError
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ton", help="TON transfers that matched no payment")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("unmatched", help="list unmatched incoming transfers, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    credit = actions.add_parser("credit", help="credit an unmatched transfer to a user")
    credit.add_argument("hash", help="the transaction hash, as `unmatched` shows it")
    credit.add_argument("--user", required=True, help="the Telegram id of the user to credit")
    credit.add_argument("--rub", required=True, help="RUB to credit, e.g. 300 or 149.50")
    dismiss = actions.add_parser("dismiss", help="take a reviewed transfer off the unmatched list")
    dismiss.add_argument("hash", help="the transaction hash, as `unmatched` shows it")
    reconcile = actions.add_parser(
        "reconcile", help="re-read the wallet behind the cursor, credit what was missed"
    )
    reconcile.add_argument(
        "--hours", type=int, default=None, help="look-back (default TON_RECONCILE_LOOKBACK_HOURS)"
    )
    reconcile.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "reconcile":
        return await _reconcile(args, settings)
    if args.action == "credit":
        try:
            user_id = int(args.user)
            amount_kop = parse_topup_amount(settings, args.rub)
        except (ValueError, PaymentError):
            raise CommandError(
                f"--user must be a Telegram id and --rub an amount from {settings.topup_min_rub}"
                f" to {settings.topup_max_rub} RUB"
            ) from None
    pool = await create_pool(settings, max_size=1)
    try:
        if args.action == "dismiss":
            if await pool.fetchval(queries.DISMISS_TON_TRANSACTION, args.hash) is None:
                raise CommandError(f"{args.hash} is not an unmatched transfer")
            print(f"{args.hash} dismissed: off the list, deleted after 90 days")  # noqa: T201
            return 0
        if args.action == "unmatched":
            transfers = await list_unmatched(pool, max(1, args.limit))
            if args.json:
                print(msgspec.json.encode(transfers).decode())  # noqa: T201
            for t in [] if args.json else transfers:
                when = f"{t.utime:%Y-%m-%d %H:%M}Z"
                line = f"{t.hash}  {format_ton(t.amount_nanoton)} TON  {when}  from {t.source or '?'}"
                print(f"{line}  comment {t.comment!r}")  # noqa: T201
                if t.status == "rejected":
                    print(f"    rejected: {t.reason}")  # noqa: T201
            if not args.json and not transfers:
                print("no unmatched transfers")  # noqa: T201
            return 0
        translator = create_translator()
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    entry = await credit_unmatched(conn, translator, args.hash, user_id, amount_kop)
            except TransferNotUnmatched:
                raise CommandError(f"{args.hash} is not an unmatched transfer") from None
            except ledger.UnknownUser:
                raise CommandError(f"no user {user_id}") from None
    finally:
        await pool.close()
    redis = create_redis(settings)
    try:
        await outbox.wake_sender(redis)
    finally:
        await redis.aclose()
    balance = format_rub(entry.balance_after_kop)
    print(f"credited {format_rub(amount_kop)} RUB to user {user_id}; balance {balance} RUB")  # noqa: T201
    return 0


async def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.ton_address:
        raise CommandError("TON_ADDRESS is not set: there is no wallet to reconcile")
    if args.hours is not None and args.hours <= 0:
        raise CommandError("--hours must be a positive number of hours")
    lookback = timedelta(hours=args.hours) if args.hours else None
    pool = await create_pool(settings, max_size=2)
    redis = create_redis(settings)
    try:
        async with aiohttp.ClientSession() as http:
            report = await reconcile_ton(pool, redis, http, settings, lookback=lookback)
    except TonapiError as exc:
        raise CommandError(f"tonapi could not be read: {exc}") from None
    finally:
        await redis.aclose()
        await pool.close()
    if args.json:
        print(msgspec.json.encode(report).decode())  # noqa: T201
    else:
        print(  # noqa: T201
            f"read {report.read} transactions (lt {report.from_lt}..{report.to_lt}): {report.fixed} missed"
            f" and stored now, {report.matched} credited ({format_rub(report.credited_kop)} RUB),"
            f" {report.unmatched} unmatched, {report.rejected} rejected"
        )
    return 0
