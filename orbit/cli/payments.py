"""`orbit payments`: operator actions on payments.

    orbit payments refund PAYMENT_ID

Refunds a Telegram Stars top-up: the credit is reversed (a `refund` ledger
entry) and Telegram returns the Stars (`refundStarPayment`), or neither happens.
Refused (exit 1, nothing changed) when the user has already spent the money,
the payment is not a confirmed Stars payment, or Telegram refuses.
Running it again on a refunded payment changes nothing.
"""

from __future__ import annotations

import argparse

from orbit import ledger
from orbit.audit import cli_actor
from orbit.cli.errors import CommandError
from orbit.connections import check_redis, create_pool, create_redis
from orbit.migrate import require_schema
from orbit.money import format_rub
from orbit.payments import service
from orbit.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("payments", help="refund payments")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    refund = actions.add_parser("refund", help="refund a Telegram Stars top-up")
    refund.add_argument("payment_id", help="the payment's id (payments.id)")
    parser.set_defaults(func=run)


def _out(line: str) -> None:
    print(line)  # noqa: T201


async def run(args: argparse.Namespace, settings: Settings) -> int:
    raw = str(args.payment_id).strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise CommandError(f"PAYMENT_ID must be a number, got {raw!r}")
    if not settings.bot_token:
        raise CommandError("BOT_TOKEN is required: Telegram returns the Stars")
    # aiogram is slow to import (seconds): only this command needs it.
    from aiogram.exceptions import TelegramAPIError

    from orbit.bot_client import create_bot
    from orbit.i18n import create_translator
    from orbit.payments import stars

    pool = await create_pool(settings, max_size=2)
    redis = create_redis(settings)
    bot = create_bot(settings)
    try:
        await require_schema(pool)
        await check_redis(redis, settings)
        try:
            refund = await stars.refund_stars(
                pool,
                redis,
                create_translator(),
                bot,
                int(raw),
                note="orbit payments refund",
                actor=cli_actor(),
            )
        except ledger.InsufficientFunds as exc:
            _out(
                f"payment {raw} not refunded: the user has spent the money "
                f"(balance {format_rub(exc.balance_kop)} RUB, needed {format_rub(exc.needed_kop)} RUB)"
            )
            return 1
        except service.PaymentError as exc:
            _out(f"payment {raw} not refunded: {type(exc).__name__}")
            return 1
        except TelegramAPIError as exc:
            _out(f"payment {raw} not refunded: Telegram said {exc.message}")
            return 1
    finally:
        await bot.session.close()
        await redis.aclose()
        await pool.close()
    entry = refund.entry
    if not refund.confirmed:
        _out(
            f"payment {raw} refund unconfirmed: -{format_rub(-entry.amount_kop)} RUB from user"
            f" {entry.user_id}; Telegram did not answer, `orbit reconcile` settles it"
        )
        return 0
    verb = "was already refunded" if entry.replayed else "refunded"
    _out(f"payment {raw} {verb}: -{format_rub(-entry.amount_kop)} RUB from user {entry.user_id}")
    return 0
