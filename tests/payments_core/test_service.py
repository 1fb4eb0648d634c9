"""The payments core against the real database: create, confirm, referral bonus, reverse."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from orbit import ledger
from orbit.i18n import Translator
from orbit.payments import service
from orbit.payments.audit import audit
from orbit.settings import Settings

MakeUser = Callable[..., Awaitable[int]]


def _in(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


async def _payment(
    db: asyncpg.Pool, user_id: int, amount_kop: int = 30_000, method: str = "stars", **kw: object
) -> service.PaymentRow:
    async with db.acquire() as conn:
        return await service.create_payment(
            conn, user_id, method, amount_kop, "XTR", 223, kw.pop("expires_at", _in(10)), **kw  # type: ignore[arg-type]
        )


async def _confirm(
    db: asyncpg.Pool,
    t: Translator,
    payment_id: int,
    credited: int,
    settings: Settings | None = None,
    **kw: object,
) -> service.Confirmation:
    async with db.acquire() as conn, conn.transaction():
        return await service.confirm_payment(
            conn, t, payment_id, credited_kop=credited, settings=settings, **kw  # type: ignore[arg-type]
        )


async def _outbox(db: asyncpg.Pool) -> list[asyncpg.Record]:
    return await db.fetch("SELECT chat_id, kind, text, dedup_key FROM outbox ORDER BY id")


async def test_confirm_credits_once_and_tells_the_user(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(1)
    payment = await _payment(db, 1)
    assert payment.status == "pending" and payment.currency_amount == 223

    first = await _confirm(db, translator, payment.id, 30_000, settings, external_id="charge-1")
    again = await _confirm(db, translator, payment.id, 30_000, settings, external_id="charge-1")

    assert not first.replayed and again.replayed
    assert first.balance_after_kop == again.balance_after_kop == 30_000
    assert again.credited_kop == 30_000 and again.payment.status == "confirmed"
    assert first.payment.external_id == "charge-1" and first.payment.credited_kop == 30_000
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 30_000
    rows = await db.fetch("SELECT kind, idempotency_key, payment_id FROM ledger")
    assert [tuple(r) for r in rows] == [("topup", f"payment:{payment.id}", payment.id)]
    messages = await _outbox(db)
    assert len(messages) == 1
    assert messages[0]["chat_id"] == 1 and messages[0]["kind"] == "payment_confirmed"
    assert "+300 ₽" in messages[0]["text"] and "Balance: 300 ₽" in messages[0]["text"]
    assert await _audit(db) == []


async def _audit(db: asyncpg.Pool) -> list[object]:
    async with db.acquire() as conn:
        return list(await audit(conn))


async def test_the_message_is_in_the_users_language_and_says_under_over_and_late(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(1, language="ru")
    under = await _payment(db, 1, 10_000)
    over = await _payment(db, 1, 10_000)
    late = await _payment(db, 1, 10_000, expires_at=_in(-5))
    await _confirm(db, translator, under.id, 9_000, settings)
    await _confirm(db, translator, over.id, 12_000, settings)
    await _confirm(db, translator, late.id, 10_000, settings)
    texts = [m["text"] for m in await _outbox(db)]
    assert "зачислено 90 ₽ из 100 ₽" in texts[0]
    assert "зачислено 120 ₽ вместо 100 ₽" in texts[1]
    assert "после истечения срока" in texts[2] and "+100 ₽" in texts[2]
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 31_000
    assert await db.fetchval("SELECT details->>'late' FROM payments WHERE id = $1", late.id) == "true"


async def test_an_expired_or_failed_payment_is_still_confirmed(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(1)
    expired = await _payment(db, 1)
    failed = await _payment(db, 1)
    await db.execute("UPDATE payments SET status = 'expired' WHERE id = $1", expired.id)
    async with db.acquire() as conn:
        assert (await service.fail_payment(conn, failed.id, "invoice expired")) is not None
        assert (await service.fail_payment(conn, failed.id, "again")) is None  # only pending fails
    for p in (expired, failed):
        result = await _confirm(db, translator, p.id, 30_000, settings)
        assert not result.replayed and result.payment.status == "confirmed"
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 60_000


async def test_referral_bonus_on_the_first_top_up_only(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(10, language="ru")
    await make_user(11, referrer=10)
    first, second = await _payment(db, 11), await _payment(db, 11)

    result = await _confirm(db, translator, first.id, 30_000, settings)
    assert result.referrer_id == 10
    replay = await _confirm(db, translator, first.id, 30_000, settings)
    assert replay.referrer_id is None
    assert (await _confirm(db, translator, second.id, 30_000, settings)).referrer_id is None

    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 10") == 5_000
    bonus = await db.fetchrow("SELECT kind, idempotency_key FROM ledger WHERE user_id = 10")
    assert tuple(bonus) == ("referral_bonus", "referral:11")
    assert await db.fetchval("SELECT bonus_paid_at IS NOT NULL FROM referrals WHERE referee_id = 11")
    to_referrer = [m for m in await _outbox(db) if m["chat_id"] == 10]
    assert len(to_referrer) == 1 and "+50 ₽" in to_referrer[0]["text"] and "друг" in to_referrer[0]["text"]
    assert await _audit(db) == []


async def test_the_referral_bonus_waits_for_top_ups_worth_the_minimum(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    """Any method: a throwaway account's crumbs earn its referrer nothing; the bonus comes
    with the confirmation that brings the referee's confirmed top-ups to TOPUP_MIN_RUB."""
    await make_user(10)
    await make_user(11, referrer=10)
    minimum = settings.topup_min_rub * 100
    crumbs, enough_alone = [await _payment(db, 11) for _ in range(2)]
    assert (await _confirm(db, translator, crumbs.id, 1, settings)).referrer_id is None
    assert (await _confirm(db, translator, enough_alone.id, minimum, settings)).referrer_id == 10
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 10") == 5_000

    await make_user(12, referrer=10)
    small, returned, enough = [await _payment(db, 12) for _ in range(3)]
    assert (await _confirm(db, translator, small.id, minimum - 2, settings)).referrer_id is None
    assert (await _confirm(db, translator, returned.id, 1, settings)).referrer_id is None
    async with db.acquire() as conn, conn.transaction():
        await service.reverse_payment(conn, translator, returned.id)  # money sent back counts for nothing
    assert (await _confirm(db, translator, enough.id, 1, settings)).referrer_id is None
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 10") == 5_000
    extra = await _payment(db, 12)
    assert (await _confirm(db, translator, extra.id, 1, settings)).referrer_id == 10
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 10") == 10_000
    assert await _audit(db) == []


async def test_no_bonus_when_disabled_or_without_a_referrer(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(10)
    await make_user(11, referrer=10)
    await make_user(12)
    off = msgspec.structs.replace(settings, referral_bonus=0)
    assert (await _confirm(db, translator, (await _payment(db, 11)).id, 100, off)).referrer_id is None
    assert (await _confirm(db, translator, (await _payment(db, 12)).id, 100, settings)).referrer_id is None
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 10") == 0


async def test_concurrent_confirmations_credit_once(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    import asyncio

    await make_user(10)
    await make_user(1, referrer=10)
    payment = await _payment(db, 1)
    results = await asyncio.gather(
        *(_confirm(db, translator, payment.id, 30_000, settings) for _ in range(6))
    )
    assert sum(not r.replayed for r in results) == 1
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 30_000
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 10") == 5_000
    assert await db.fetchval("SELECT count(*) FROM outbox") == 2


async def test_external_id_belongs_to_one_payment(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(1)
    a, b = await _payment(db, 1), await _payment(db, 1)
    await _confirm(db, translator, a.id, 100, settings, external_id="ch-1")
    with pytest.raises(service.ExternalIdTaken):
        await _confirm(db, translator, b.id, 100, settings, external_id="ch-1")
    async with db.acquire() as conn:
        assert (await service.find_payment(conn, "stars", "ch-1")).id == a.id  # type: ignore[union-attr]
        with pytest.raises(service.ExternalIdTaken):
            await service.create_payment(conn, 1, "stars", 100, "XTR", 1, _in(5), external_id="ch-1")
        with pytest.raises(service.ExternalIdTaken):
            await service.attach_invoice(conn, b.id, external_id="ch-1")
        attached = await service.attach_invoice(conn, b.id, external_id="inv-9", pay_url="https://pay/9")
        assert attached.pay_url == "https://pay/9" and attached.status == "pending"
    assert (await service.get_payment(db, b.id)).status == "pending"  # type: ignore[union-attr]
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 100


async def test_bad_input_changes_nothing(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(1)
    payment = await _payment(db, 1)
    with pytest.raises(service.PaymentNotFound):
        await _confirm(db, translator, 999, 100, settings)
    with pytest.raises(ValueError):
        await _confirm(db, translator, payment.id, 0, settings)
    async with db.acquire() as conn:
        with pytest.raises(RuntimeError):
            await service.confirm_payment(conn, translator, payment.id, credited_kop=1)
        for method, amount, currency_amount in (("cash", 1, 1), ("ton", 0, 1), ("ton", 1, -1)):
            with pytest.raises(ValueError):
                await service.create_payment(conn, 1, method, amount, "TON", currency_amount, _in(5))
    assert await db.fetchval("SELECT count(*) FROM ledger") == 0
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment.id) == "pending"


@pytest.mark.parametrize(
    ("text", "kopecks"),
    [("300", 30_000), ("149.50", 14_950), ("1 500,5", 150_050), ("50 ₽", 5_000), ("100000", 10_000_000)],
)
def test_parse_topup_amount(settings: Settings, text: str, kopecks: int) -> None:
    assert service.parse_topup_amount(settings, text) == kopecks


@pytest.mark.parametrize(
    "text", ["", "abc", "-100", "+100", "1e5", "10.555", "1" * 40, "NaN", "٣٠٠", "0x100"]
)
def test_parse_topup_amount_refuses_garbage(settings: Settings, text: str) -> None:
    with pytest.raises(service.InvalidAmount):
        service.parse_topup_amount(settings, text)


@pytest.mark.parametrize("text", ["0", "49.99", "100000.01", "999999999"])
def test_parse_topup_amount_refuses_out_of_range(settings: Settings, text: str) -> None:
    with pytest.raises(service.AmountOutOfRange) as info:
        service.parse_topup_amount(settings, text)
    assert (info.value.min_kop, info.value.max_kop) == (5_000, 10_000_000)


async def test_reverse_payment(
    db: asyncpg.Pool, make_user: MakeUser, translator: Translator, settings: Settings
) -> None:
    await make_user(1)
    kept, spent = await _payment(db, 1, 10_000), await _payment(db, 1, 10_000)
    await _confirm(db, translator, kept.id, 10_000, settings)
    await _confirm(db, translator, spent.id, 10_000, settings)
    async with db.acquire() as conn, conn.transaction():
        await ledger.debit(conn, 1, 15_000, "purchase", "buy:1")

    # 5,000 left after the purchase: taking back 10,000 is refused and changes nothing.
    with pytest.raises(ledger.InsufficientFunds):
        async with db.acquire() as conn, conn.transaction():
            await service.reverse_payment(conn, translator, spent.id)
    assert (await service.get_payment(db, spent.id)).status == "confirmed"  # type: ignore[union-attr]

    topped = await _payment(db, 1, 10_000)
    await _confirm(db, translator, topped.id, 10_000, settings)
    async with db.acquire() as conn, conn.transaction():
        entry = await service.reverse_payment(conn, translator, kept.id, note="admin")
    async with db.acquire() as conn, conn.transaction():
        again = await service.reverse_payment(conn, translator, kept.id)
    assert (entry.amount_kop, entry.kind, entry.replayed) == (-10_000, "refund", False)
    assert again.replayed and again.id == entry.id
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 5_000
    assert (await service.get_payment(db, kept.id)).status == "refunded"  # type: ignore[union-attr]
    # A refunded payment is not confirmed (nor credited) again.
    assert (await _confirm(db, translator, kept.id, 10_000, settings)).replayed
    pending = await _payment(db, 1)
    with pytest.raises(service.PaymentNotConfirmable):
        async with db.acquire() as conn, conn.transaction():
            await service.reverse_payment(conn, translator, pending.id)
    refunds = [m for m in await _outbox(db) if m["kind"] == "payment_refunded"]
    assert len(refunds) == 1 and "−100 ₽" in refunds[0]["text"]
    assert await _audit(db) == []
