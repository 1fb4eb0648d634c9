"""Telegram Stars end to end: the real bot process, the Telegram emulator paying the invoice."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from orbit import ledger
from tests.e2e.conftest import ADMIN_ID, Telegram
from tests.support.cli import orbit
from tests.support.journey import eventually
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
RECEIVED = "✅ Payment received: +300 ₽. Balance: 300 ₽."


async def _stars_invoice(user: TelegramUser, amount_button: str = "300 ₽") -> int:
    """/start → Balance → Top up → amount → Stars; returns the invoice message id."""
    await user.send("/start")
    await user.press("💰 Balance")
    await user.press("➕ Top up")
    await user.press(amount_button)
    # Not simply the last message: a notification from the outbox may arrive in between.
    buttons = [t for m in await user.messages() for t in m.button_texts]
    stars_button = next(t for t in reversed(buttons) if t.startswith("⭐ Telegram Stars"))
    before = {m.message_id for m in await user.messages()}
    await user.press(stars_button)
    [invoice] = [m for m in await user.messages() if m.kind == "invoice" and m.message_id not in before]
    assert invoice.invoice is not None
    return invoice.message_id


async def _texts(user: TelegramUser) -> list[str]:
    return [m.text or "" for m in await user.messages()]


async def test_stars_from_the_button_to_the_confirmation(
    start_bot: Callable[..., object], make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    await start_bot()
    ann = make_user(8101, first_name="Ann")
    invoice_id = await _stars_invoice(ann)
    invoice = next(m for m in await ann.messages() if m.message_id == invoice_id).invoice
    assert invoice is not None
    assert invoice.currency == "XTR" and invoice.total_amount == 223  # 300 ₽ / 1.35, rounded up
    payment = await db.fetchrow("SELECT id, status, amount_kop, currency_amount FROM payments")
    assert dict(payment) == {
        "id": payment["id"],
        "status": "pending",
        "amount_kop": 30_000,
        "currency_amount": 223,
    }
    assert invoice.payload == str(payment["id"])

    # The same successful_payment delivered twice: one credit, one message.
    outcome = await telegram.control.pay(ann.id, invoice_id, twice=True)
    assert outcome.status == "paid" and len(outcome.update_ids) == 2
    await ann.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    await eventually(lambda: db.fetchval("SELECT status = 'confirmed' FROM payments"))
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8101") == 30_000
    assert await db.fetchval("SELECT count(*) FROM ledger WHERE user_id = 8101") == 1
    assert await db.fetchval("SELECT external_id FROM payments") == outcome.telegram_payment_charge_id
    assert (await _texts(ann)).count(RECEIVED) == 1

    # The balance screen lists the top-up.
    await ann.send("/menu")
    await ann.press("💰 Balance")
    screen = await ann.last()
    assert screen.text is not None and "Balance: 300 ₽" in screen.text and "+300 ₽ · top-up" in screen.text


async def test_pre_checkout_refuses_what_does_not_match(
    start_bot: Callable[..., object], make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    await start_bot()
    bob = make_user(8102, first_name="Bob")
    cases = {
        "UPDATE payments SET expires_at = now() - interval '1 s' WHERE id = $1": "This invoice has expired.",
        "UPDATE payments SET status = 'confirmed' WHERE id = $1": "This invoice has already been paid.",
        "UPDATE payments SET currency_amount = 999 WHERE id = $1": "This invoice does not match its payment.",
        "DELETE FROM payments WHERE id = $1": "This invoice is unknown.",
    }
    for change, reason in cases.items():
        invoice_id = await _stars_invoice(bob, "100 ₽")
        payment_id = await db.fetchval("SELECT max(id) FROM payments")
        await db.execute(change, payment_id)
        outcome = await telegram.control.pay(bob.id, invoice_id)
        assert outcome.status == "rejected", change
        assert outcome.error_message is not None and outcome.error_message.startswith(reason)
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8102") == 0
    assert await db.fetchval("SELECT count(*) FROM ledger") == 0


async def test_refunds_by_an_admin_and_by_the_cli(
    start_bot: Callable[..., object],
    make_user: MakeUser,
    db: asyncpg.Pool,
    telegram: Telegram,
    bot_env: dict[str, str],
) -> None:
    await start_bot()
    ann = make_user(8103, first_name="Ann")
    admin = make_user(ADMIN_ID, first_name="Admin")
    first = await _stars_invoice(ann)
    assert (await telegram.control.pay(ann.id, first)).status == "paid"
    await ann.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    second = await _stars_invoice(ann)
    assert (await telegram.control.pay(ann.id, second)).status == "paid"
    await eventually(lambda: db.fetchval("SELECT balance_kop = 60000 FROM users WHERE id = 8103"))
    first_id, second_id = [r["id"] for r in await db.fetch("SELECT id FROM payments ORDER BY id")]

    # Not an admin: the command does nothing.
    await ann.send_silently(f"/refund {first_id}")
    await admin.send("/start")
    reply = await admin.send("/refund abc")
    assert reply.text == "Usage: /refund <payment id>"
    reply = await admin.send(f"/refund {first_id}")
    assert reply.text == f"↩️ Payment {first_id} refunded: −300 ₽ from user 8103, the Stars returned."
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8103") == 30_000
    await ann.wait_until(
        lambda shown: any((m.text or "").startswith("↩️ Your payment was refunded") for m in shown)
    )
    reply = await admin.send(f"/refund {first_id}")
    assert reply.text == f"Payment {first_id} was already refunded (−300 ₽ from user 8103)."

    # The operator's command line does the same.
    code, out, err = await orbit({**bot_env, "LOG_LEVEL": "WARNING"}, "payments", "refund", str(second_id))
    assert code == 0, err
    assert out.strip() == f"payment {second_id} refunded: -300 RUB from user 8103"
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8103") == 0

    assert [c.refunded for c in await telegram.control.charges()] == [True, True]
    assert len(await telegram.control.calls("refundStarPayment")) == 2
    assert await db.fetchval("SELECT array_agg(status) FROM payments") == ["refunded", "refunded"]
    kinds = [r["kind"] for r in await db.fetch("SELECT kind FROM ledger WHERE user_id = 8103 ORDER BY id")]
    assert kinds == ["topup", "topup", "refund", "refund"]


async def test_a_banned_users_payment_still_reaches_the_balance(
    start_bot: Callable[..., object], make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    await start_bot()
    ann = make_user(8104, first_name="Ann")
    invoice_id = await _stars_invoice(ann)
    await db.execute("UPDATE users SET is_banned = true WHERE id = 8104")  # banned after the invoice

    outcome = await telegram.control.pay(ann.id, invoice_id)
    assert outcome.status == "paid"  # the pre-checkout query was answered ok
    await ann.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8104") == 30_000
    # Everything else is refused.
    refused = (await ann.send("/menu")).text or ""
    assert refused.startswith("Sorry, your access to this bot has been restricted.")


async def test_a_refund_made_outside_the_bot_reaches_it_as_refunded_payment(
    start_bot: Callable[..., object], make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    await start_bot()
    ann = make_user(8105, first_name="Ann")
    eve = make_user(8106, first_name="Eve")
    admin = make_user(ADMIN_ID, first_name="Admin")
    await admin.send("/start")
    charges = {}
    for user in (ann, eve):
        invoice_id = await _stars_invoice(user)
        charges[user.id] = (await telegram.control.pay(user.id, invoice_id)).telegram_payment_charge_id
        await user.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    async with db.acquire() as conn, conn.transaction():  # Eve spent it
        await ledger.debit(conn, 8106, 30_000, "purchase", "test-spent")
    for charge_id in charges.values():
        await telegram.control.refund_charge(charge_id)  # support refunded both

    await ann.wait_until(
        lambda shown: any((m.text or "").startswith("↩️ Your payment was refunded") for m in shown)
    )
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8105") == 0
    statuses = await db.fetch("SELECT user_id, status FROM payments ORDER BY id")
    assert [(r["user_id"], r["status"]) for r in statuses] == [(8105, "refunded"), (8106, "confirmed")]
    alert = await admin.wait_until(
        lambda shown: any("Reconciliation could not fix" in (m.text or "") for m in shown)
    )
    assert any("user 8106 has already spent" in (m.text or "") for m in alert)
    assert await db.fetchval("SELECT kind FROM reconcile_issues") == "refund_uncovered"


async def test_a_refund_whose_answer_times_out_is_unconfirmed_then_settled_by_telegrams_message(
    start_bot: Callable[..., object], make_user: MakeUser, db: asyncpg.Pool, telegram: Telegram
) -> None:
    """Defect 5 in the bot: the admin is told the refund is unconfirmed, the debit stays,
    and Telegram's refunded_payment message confirms it."""
    await start_bot()
    ann = make_user(8107, first_name="Ann")
    admin = make_user(ADMIN_ID, first_name="Admin")
    await admin.send("/start")
    invoice_id = await _stars_invoice(ann)
    assert (await telegram.control.pay(ann.id, invoice_id)).status == "paid"
    await ann.wait_until(lambda shown: any(m.text == RECEIVED for m in shown))
    payment_id = await db.fetchval("SELECT id FROM payments")

    await telegram.control.hold_answers("refundStarPayment", 30)  # longer than the bot waits
    reply = await admin.send(f"/refund {payment_id}", timeout=40)
    assert reply.text == (
        f"⏳ Payment {payment_id}: −300 ₽ taken from user 8107, but Telegram did not answer."
        " The refund is marked unconfirmed; reconciliation settles it."
    )
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 8107") == 0
    await eventually(
        lambda: db.fetchval("SELECT details->>'refund_state' = 'confirmed' FROM payments"), timeout=15
    )
    assert await db.fetchval("SELECT status FROM payments") == "refunded"
    kinds = [r["kind"] for r in await db.fetch("SELECT kind FROM ledger WHERE user_id = 8107 ORDER BY id")]
    assert kinds == ["topup", "refund"]
