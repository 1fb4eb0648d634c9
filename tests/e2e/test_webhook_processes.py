"""Two bot processes in webhook mode behind a round-robin proxy (as nginx would be),
fed by the Telegram emulator's parallel delivery: one user's updates reach both
processes at once, and one process dies with SIGKILL in the middle of a journey.
Nothing may be done twice and nothing lost: what the user was shown, the ledger,
the panels."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.promos.service import create_promo
from tests.e2e.conftest import Panel, Telegram, free_port
from tests.e2e.test_configs import text
from tests.e2e.test_payments_stars import _stars_invoice
from tests.support.bots import bot_fleet
from tests.support.cli import orbit
from tests.support.journey import eventually
from tests.support.processes import WorkerProcess
from tests.support.telegram_user import TelegramUser
from tests.support.webhook_proxy import Forwarded, WebhookProxy

MakeUser = Callable[..., TelegramUser]
SECRET = "two-processes_Secret"
PATH = "/telegram/webhook"


@dataclass
class Fleet:
    proxy: WebhookProxy
    bots: list[WorkerProcess]


@pytest.fixture
async def fleet(
    bot_env: dict[str, str], redis: Redis, log_dir: Path, panels: list[Panel]
) -> AsyncIterator[Fleet]:
    ports = [free_port(), free_port()]
    proxy = WebhookProxy([f"http://127.0.0.1:{port}" for port in ports])
    url = await proxy.start()
    hook = {"WEBHOOK_URL": url + PATH, "WEBHOOK_SECRET": SECRET}
    try:
        envs = [{**bot_env, **hook, "BOT_HTTP_PORT": str(port)} for port in ports]
        async with bot_fleet(redis, log_dir, envs) as bots:
            yield Fleet(proxy, bots())
    finally:
        await proxy.stop()


def _overlapped(proxy: WebhookProxy, update_ids: set[int]) -> bool:
    """Were two of these updates in two processes at the same time?"""
    items: list[Forwarded] = [f for f in proxy.log if f.update_id in update_ids and f.status == 200]
    return any(
        a.upstream != b.upstream and a.started < b.ended and b.started < a.ended
        for a in items
        for b in items
        if a is not b
    )


async def _double_press(user: TelegramUser, button: str, telegram: Telegram) -> set[int]:
    """The same button pressed twice at once (two updates); returns their update ids."""
    message = await user.last_with_button(button)
    first, second = await asyncio.gather(
        telegram.control.press(user.id, message_id=message.message_id, button_text=button),
        telegram.control.press(user.id, message_id=message.message_id, button_text=button),
    )
    for pressed in (first, second):
        answer = await telegram.control.callback_answer(pressed.callback_query_id, timeout=20)
        assert answer.answered, f"{button} left spinning"
    return {first.update_id, second.update_id}


async def _menu(user: TelegramUser) -> None:
    """/menu, waiting for the menu itself (a late screen of a double press may come first)."""
    await user.send_silently("/menu")
    await user.wait_until(lambda shown: "🛒 Buy a plan" in shown[-1].button_texts, timeout=20)


async def _press(user: TelegramUser, button: str) -> None:
    """Press `button` once a message shows it (the screen may follow its press's answer)."""
    await user.wait_until(lambda shown: any(button in m.button_texts for m in shown), timeout=20)
    await user.press(button)


async def _texts(user: TelegramUser) -> list[str]:
    """Every text the user was shown: each message as it is now and before each edit
    (a double press's second screen may replace the first's)."""
    shown = []
    for message in await user.messages():
        shown += [version.text or version.caption or "" for version in message.edits]
        shown.append(text(message))
    return shown


async def test_one_users_presses_at_two_processes_at_once_act_once(
    fleet: Fleet, make_user: MakeUser, db: asyncpg.Pool, panels: list[Panel], telegram: Telegram
) -> None:
    await create_promo(db, "TWICE", "balance", 15_000, actor="cli:test")
    ann = make_user(7401, first_name="Ann")
    await ann.send("/start")
    pairs = [await _double_press(ann, "🎁 Free trial", telegram)]
    assert await db.fetchval("SELECT trial_used_at IS NOT NULL FROM users WHERE id = 7401")

    # FSM state written by one process is read by the other (RedisStorage): the press
    # and the code that follows go to different processes.
    await ann.send("/menu")
    await ann.press("🎟 Promo code")
    applied = await ann.send("TWICE")
    assert text(applied).startswith("✅ Promo code TWICE applied: +150 ₽")

    await ann.press("« Menu")
    await ann.press("🔑 My configs")
    pairs.append(await _double_press(ann, "➕ New config", telegram))
    await ann.wait_until(lambda shown: any("is ready" in text(m) for m in shown), timeout=20)

    await _menu(ann)
    await ann.press("🛒 Buy a plan")
    await _press(ann, "1 month — 150 ₽")
    await ann.wait_until(lambda shown: any("✅ Pay 150 ₽" in m.button_texts for m in shown), timeout=20)
    pairs.append(await _double_press(ann, "✅ Pay 150 ₽", telegram))
    await ann.wait_until(lambda shown: any(text(m).startswith("✅ Paid 150 ₽") for m in shown))

    # The presses really were in both processes at once.
    assert any(_overlapped(fleet.proxy, pair) for pair in pairs), fleet.proxy.log
    assert len(fleet.proxy.handled_by()) == 2
    # Done once each: the trial, the config (rows and panels), the purchase and its debit.
    await asyncio.sleep(1.0)  # a second handler, had it gone on, would have shown by now
    assert await db.fetchval("SELECT count(*) FROM configs WHERE user_id = 7401") == 1
    assert sum(len(p.emulator.usernames) for p in panels) == 1
    assert await db.fetchval("SELECT count(*) FROM purchases WHERE user_id = 7401") == 1
    ledger = [tuple(r) for r in await db.fetch("SELECT kind, amount_kop FROM ledger ORDER BY id")]
    assert ledger == [("promo", 15_000), ("purchase", -15_000)]
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 7401") == 0
    texts = await _texts(ann)
    assert sum("is ready" in t for t in texts) == 1
    assert sum(t.startswith("✅ Paid 150 ₽") for t in texts) == 1
    assert sum(t.startswith("🎁 Your free trial runs until") for t in texts) == 1


async def test_a_process_killed_mid_journey_loses_nothing_and_does_nothing_twice(
    fleet: Fleet,
    make_user: MakeUser,
    db: asyncpg.Pool,
    redis: Redis,
    panels: list[Panel],
    telegram: Telegram,
    bot_env: dict[str, str],
) -> None:
    ann = make_user(7501, first_name="Ann")
    shown = await ann.send("/start")
    assert text(shown).startswith("Welcome to Orbit VPN, Ann!")
    await ann.press("🎁 Free trial")
    await ann.press("« Menu")
    await ann.press("🔑 My configs")
    await ann.press("➕ New config")
    await ann.wait_until(lambda shown: any("is ready" in text(m) for m in shown), timeout=20)

    # A Stars top-up whose successful_payment is in one process when it dies: the test
    # holds the payment's row, so the handler waits inside its transaction.
    invoice = await _stars_invoice(ann)
    payment_id = await db.fetchval("SELECT id FROM payments")
    async with db.acquire() as blocker:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", payment_id)
        outcome = await telegram.control.pay(ann.id, invoice)
        assert outcome.status == "paid"
        [paid_update] = [u for u in outcome.update_ids]
        holder = await eventually(lambda: _holder(fleet.proxy, paid_update))
        victim = fleet.bots[holder - 1]
        victim.proc.send_signal(signal.SIGKILL)
        assert await victim.proc.wait() == -signal.SIGKILL
        await lock.rollback()

    # Telegram delivers it again; the other process credits it, once.
    await ann.wait_until(lambda shown: any(text(m).startswith("✅ Payment received: +300 ₽") for m in shown))
    await ann.send("/menu")
    await _press(ann, "🛒 Buy a plan")
    await _press(ann, "1 month — 150 ₽")
    await _press(ann, "✅ Pay 150 ₽")
    await ann.wait_until(lambda shown: any(text(m).startswith("✅ Paid 150 ₽") for m in shown))

    texts = await _texts(ann)
    assert sum(t.startswith("✅ Payment received: +300 ₽") for t in texts) == 1
    assert sum(t.startswith("✅ Paid 150 ₽") for t in texts) == 1
    assert sum("is ready" in t for t in texts) == 1
    ledger = [tuple(r) for r in await db.fetch("SELECT kind, amount_kop FROM ledger ORDER BY id")]
    assert ledger == [("topup", 30_000), ("purchase", -15_000)]
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "confirmed"
    [config] = await db.fetch("SELECT panel_username, instance_id, status FROM configs WHERE user_id = 7501")
    assert config["status"] == "active"
    assert {p.id: p.emulator.usernames for p in panels if p.emulator.usernames} == {
        config["instance_id"]: [config["panel_username"]]
    }
    until = await db.fetchval("SELECT subscription_until FROM users WHERE id = 7501")
    panel = next(p for p in panels if p.id == config["instance_id"]).emulator
    assert panel.user(config["panel_username"])["expire"] == int(until.timestamp())  # type: ignore[index]
    # Every update Telegram sent was answered 2xx exactly once; only the one in the
    # killed process was answered otherwise (502), then delivered again.
    answered: dict[int, int] = {}
    for item in fleet.proxy.log:
        if item.status == 200:
            answered[item.update_id] = answered.get(item.update_id, 0) + 1
    assert set(answered.values()) == {1}
    assert [f.update_id for f in fleet.proxy.log if f.status != 200] == [paid_update]
    assert answered.keys() >= {paid_update}
    code, out, err = await orbit(bot_env, "audit")
    assert code == 0, out + err


async def _holder(proxy: WebhookProxy, update_id: int) -> int | None:
    """1-based index of the process handling `update_id` now (None: none yet)."""
    index = proxy.in_flight.get(update_id)
    return None if index is None else index + 1
