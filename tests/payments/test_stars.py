"""Telegram Stars business functions against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import ledger
from orbit.i18n import Translator
from orbit.payments import service, stars
from orbit.settings import Settings
from tests.payments.conftest import MakeUser, balance


def test_stars_are_rounded_up() -> None:
    assert stars.stars_for(30_000, 1.35) == 223  # 222.2…: never less than the price
    assert stars.stars_for(13_500, 1.35) == 100
    assert stars.stars_for(1, 1.35) == 1
    assert stars.parse_payload("42") == 42
    assert stars.parse_payload("-1") is None and stars.parse_payload("٤٢") is None
    assert stars.parse_payload("9" * 30) is None


async def test_pre_checkout_accepts_only_the_payment_as_created(
    db: asyncpg.Pool, make_user: MakeUser, settings: Settings, redis: Redis, translator: Translator
) -> None:
    await make_user(1)
    await make_user(2)
    invoice = await stars.create_stars_payment(db, settings, 1, 30_000)
    assert invoice.stars == 223 and invoice.payment.currency == "XTR"
    assert invoice.payment.currency_amount == 223 and invoice.payload == str(invoice.payment.id)

    ok = await stars.check_pre_checkout(db, 1, "XTR", 223, invoice.payload)
    assert ok.id == invoice.payment.id

    async def refused(user: int, currency: str, total: int, payload: str) -> str:
        with pytest.raises(stars.PreCheckoutRefused) as caught:
            await stars.check_pre_checkout(db, user, currency, total, payload)
        return caught.value.message_key

    assert await refused(1, "XTR", 223, "999999") == "stars-refused-unknown"
    assert await refused(1, "XTR", 223, "not-a-number") == "stars-refused-unknown"
    assert await refused(2, "XTR", 223, invoice.payload) == "stars-refused-mismatch"  # someone else's
    assert await refused(1, "XTR", 222, invoice.payload) == "stars-refused-mismatch"  # amount
    assert await refused(1, "USD", 223, invoice.payload) == "stars-refused-mismatch"  # currency

    await db.execute(
        "UPDATE payments SET expires_at = now() - interval '1 second' WHERE id = $1", invoice.payment.id
    )
    assert await refused(1, "XTR", 223, invoice.payload) == "stars-refused-expired"

    fresh = await stars.create_stars_payment(db, settings, 1, 30_000)
    await stars.confirm_stars(db, redis, translator, settings, 1, "XTR", 223, fresh.payload, "stx-1")
    assert await refused(1, "XTR", 223, fresh.payload) == "stars-refused-paid"

    # A TON or CryptoBot payment id is not a Stars invoice.
    async with db.acquire() as conn:
        other = await service.create_payment(
            conn, 1, "cryptobot", 30_000, "RUB", 30_000, datetime.now(UTC) + timedelta(minutes=5)
        )
    assert await refused(1, "XTR", 30_000, str(other.id)) == "stars-refused-unknown"
    assert await balance(db, 1) == 30_000  # only the paid one credited


async def test_the_same_successful_payment_twice_credits_once(
    db: asyncpg.Pool, make_user: MakeUser, settings: Settings, redis: Redis, translator: Translator
) -> None:
    await make_user(1)
    invoice = await stars.create_stars_payment(db, settings, 1, 15_000)
    first = await stars.confirm_stars(
        db, redis, translator, settings, 1, "XTR", invoice.stars, invoice.payload, "stx-A"
    )
    again = await stars.confirm_stars(
        db, redis, translator, settings, 1, "XTR", invoice.stars, invoice.payload, "stx-A"
    )
    assert not first.replayed and again.replayed
    assert first.credited_kop == 15_000 and first.payment.external_id == "stx-A"
    assert await balance(db, 1) == 15_000
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE user_id = 1") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE chat_id = 1") == 1


async def test_a_second_charge_for_one_invoice_is_credited_on_its_own_row(
    db: asyncpg.Pool, make_user: MakeUser, settings: Settings, redis: Redis, translator: Translator
) -> None:
    await make_user(1)
    invoice = await stars.create_stars_payment(db, settings, 1, 15_000)
    await stars.confirm_stars(
        db, redis, translator, settings, 1, "XTR", invoice.stars, invoice.payload, "stx-1"
    )
    second = await stars.confirm_stars(
        db, redis, translator, settings, 1, "XTR", invoice.stars, invoice.payload, "stx-2"
    )
    assert not second.replayed and second.payment.id != invoice.payment.id
    assert second.payment.external_id == "stx-2"
    assert await balance(db, 1) == 30_000


async def test_a_charge_naming_no_payment_of_the_payer_credits_nothing(
    db: asyncpg.Pool, make_user: MakeUser, settings: Settings, redis: Redis, translator: Translator
) -> None:
    await make_user(1)
    await make_user(2)
    invoice = await stars.create_stars_payment(db, settings, 1, 15_000)
    for user, payload in ((1, "777777"), (2, invoice.payload), (1, "junk")):
        with pytest.raises(service.PaymentNotFound):
            await stars.confirm_stars(
                db, redis, translator, settings, user, "XTR", invoice.stars, payload, "stx-x"
            )
    assert await balance(db, 1) == 0 and await balance(db, 2) == 0


async def test_refund_is_refused_when_the_money_was_spent(
    db: asyncpg.Pool, make_user: MakeUser, settings: Settings, redis: Redis, translator: Translator
) -> None:
    await make_user(1)
    invoice = await stars.create_stars_payment(db, settings, 1, 15_000)
    await stars.confirm_stars(
        db, redis, translator, settings, 1, "XTR", invoice.stars, invoice.payload, "stx-1"
    )
    async with db.acquire() as conn, conn.transaction():
        await ledger.debit(conn, 1, 10_000, "purchase", "test-purchase")

    # Refused before Telegram is asked: no Bot is needed to prove it.
    with pytest.raises(ledger.InsufficientFunds) as caught:
        await stars.refund_stars(db, redis, translator, None, invoice.payment.id, actor="9")  # type: ignore[arg-type]
    assert caught.value.missing_kop == 10_000
    assert await balance(db, 1) == 5_000
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", invoice.payment.id) == "confirmed"

    with pytest.raises(stars.NotAStarsPayment):
        async with db.acquire() as conn:
            other = await service.create_payment(
                conn, 1, "cryptobot", 30_000, "RUB", 30_000, datetime.now(UTC) + timedelta(minutes=5)
            )
        await stars.refund_stars(db, redis, translator, None, other.id, actor="9")  # type: ignore[arg-type]
    with pytest.raises(service.PaymentNotFound):
        await stars.refund_stars(db, redis, translator, None, 424242, actor="9")  # type: ignore[arg-type]


async def test_amount_limits_apply(db: asyncpg.Pool, make_user: MakeUser, settings: Settings) -> None:
    await make_user(1)
    for amount in (0, 4_999, 10_000_001):
        with pytest.raises(service.AmountOutOfRange):
            await stars.create_stars_payment(db, settings, 1, amount)
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
