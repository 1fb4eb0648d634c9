"""Maintenance mode and the new admin buttons through the real dispatcher (the in-process
harness): who gets what, what stays open, and that forged presses change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import keys, maintenance
from orbit.settings import Settings
from tests.support.bot_harness import BotHarness, running_bot

ADMIN = 900_000_001
ANN = 5_000_101
BOB = 5_000_102
STALE = "This button is out of date. Open the menu again: /menu"
DEFAULT = (
    "🛠 The bot is under maintenance for a short while. Payments you make still arrive;"
    " everything else is back soon. Thank you for your patience!"
)


@pytest.fixture
async def harness(db: asyncpg.Pool, redis: Redis, settings: Settings) -> AsyncIterator[BotHarness]:
    settings = msgspec.structs.replace(settings, admin_ids=(ADMIN,), rate_limit_scale=0.001)
    async with aiohttp.ClientSession() as http, running_bot(settings, db, redis, http) as bot:
        yield bot


async def texts(harness: BotHarness, chat_id: int) -> list[str]:
    return [m.text or "" for m in await harness.control.messages(chat_id) if m.from_bot]


async def last_buttons(harness: BotHarness, chat_id: int) -> dict[str, str]:
    shown = (await harness.control.messages(chat_id))[-1]
    return {b.text: b.callback_data or "" for row in shown.buttons for b in row}


async def wait_past_cache() -> None:
    import asyncio

    from orbit.bot.middlewares.maintenance import CACHE_SECONDS

    await asyncio.sleep(CACHE_SECONDS + 0.05)  # the bot reads the switch at most once a second


async def test_maintenance_one_message_per_user_and_period_payments_and_admins_go_on(
    harness: BotHarness, db: asyncpg.Pool, redis: Redis
) -> None:
    await harness.send(ANN, "/start", first_name="Ann")
    await harness.send(BOB, "/start", first_name="Bob")
    await harness.send(ADMIN, "/admin", first_name="Admin")
    await harness.press(ADMIN, "adm:maint")
    assert (await texts(harness, ADMIN))[-1].startswith("🛠 Maintenance mode is off")
    await harness.press(ADMIN, "admmt:on")
    await harness.send(ADMIN, "Back at <noon>")
    shown = (await texts(harness, ADMIN))[-1]
    assert shown.startswith("🔧 Maintenance mode switched on.") and shown.endswith("\nBack at <noon>")
    state = await maintenance.read(redis)  # stored as Telegram HTML: what was typed, escaped
    assert state is not None and state.message == "Back at &lt;noon&gt;" and state.by == f"admin {ADMIN}"
    await wait_past_cache()

    before = len(await texts(harness, ANN))
    await harness.send(ANN, "/menu")
    await harness.send(ANN, "/balance")
    await harness.send(ANN, "hello?")
    answer = await harness.press(ANN, "m:buy")
    after = await texts(harness, ANN)
    assert after[before:] == ["Back at <noon>"]  # once, however much she sends
    assert answer.answered and answer.text in (None, "")  # a press is answered, silently
    # Bob's first update while in maintenance is a press: he is told in the alert, once.
    first = await harness.press(BOB, "m:main")
    second = await harness.press(BOB, "m:main")
    assert (first.text, first.show_alert) == ("Back at <noon>", True)
    assert second.text in (None, "")

    # A payment Telegram reports still completes (the router behind the gate handles it).
    payment_id = await db.fetchval(
        "INSERT INTO payments (user_id, method, amount_kop, currency, currency_amount, expires_at)"
        " VALUES ($1, 'stars', 10000, 'XTR', 75, now() + interval '10 minutes') RETURNING id",
        ANN,
    )
    sender = {"id": ANN, "is_bot": False, "first_name": "Ann"}
    await harness.control.inject_update(
        {
            "pre_checkout_query": {
                "id": "pcq-1", "from": sender, "currency": "XTR", "total_amount": 75,
                "invoice_payload": str(payment_id),
            }
        }
    )  # fmt: skip
    await harness._feed_next()
    calls = await harness.control.calls("answerPreCheckoutQuery")
    assert [c.params.get("ok") in (True, "true") for c in calls] == [True]
    await harness.control.inject_update(
        {
            "message": {
                "message_id": 900, "date": 1, "chat": {"id": ANN, "type": "private"}, "from": sender,
                "successful_payment": {
                    "currency": "XTR", "total_amount": 75, "invoice_payload": str(payment_id),
                    "telegram_payment_charge_id": "charge-1", "provider_payment_charge_id": "p-1",
                },
            }
        }
    )  # fmt: skip
    await harness._feed_next()
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "confirmed"
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", ANN) == 10_000

    # The admin uses everything meanwhile.
    await harness.send(ADMIN, "/admin")
    assert (await texts(harness, ADMIN))[-1] == "🛠 Admin panel"
    await harness.press(ADMIN, "adm:maint")
    await harness.press(ADMIN, "admmt:off")
    assert (await texts(harness, ADMIN))[-1].startswith("✅ Maintenance mode switched off.")
    assert await redis.get(keys.MAINTENANCE) is None
    await wait_past_cache()
    await harness.send(ANN, "/menu")
    assert "Balance: 100 ₽" in (await texts(harness, ANN))[-1]

    # A new period: told again, once, now with the default text (the CLI's switch).
    await maintenance.switch_on(db, redis, "", actor="cli:test")
    await wait_past_cache()
    before = len(await texts(harness, ANN))
    await harness.send(ANN, "/menu")
    await harness.send(ANN, "/menu")
    assert (await texts(harness, ANN))[before:] == [DEFAULT]
    trail = await db.fetch("SELECT actor, action, before, after FROM admin_audit ORDER BY id")
    assert [(r["actor"], r["action"]) for r in trail] == [
        (str(ADMIN), "maintenance.on"),
        (str(ADMIN), "maintenance.off"),
        ("cli:test", "maintenance.on"),
    ]
    assert trail[0]["before"] is None and trail[0]["after"]["message"] == "Back at &lt;noon&gt;"
    assert trail[1]["before"]["by"] == f"admin {ADMIN}" and trail[1]["after"] is None


async def test_non_admin_pressing_the_new_admin_buttons_gets_nothing(
    harness: BotHarness, db: asyncpg.Pool, redis: Redis
) -> None:
    await harness.send(ANN, "/start", first_name="Mallory")
    await db.execute(
        "INSERT INTO marzban_instances (id, name, base_url, username, password, excluded_node_names)"
        " VALUES ('p1', 'P1', 'http://127.0.0.1:9', 'a', 'a', '{n1}')"
    )
    await db.execute("INSERT INTO users (id) VALUES (7), (8)")
    broadcast_id = await db.fetchval("INSERT INTO broadcasts (text, created_by) VALUES ('x', 1) RETURNING id")
    await db.execute(
        "INSERT INTO outbox (chat_id, kind, text, broadcast_id) VALUES (7, 'broadcast', 'x', $1)",
        broadcast_id,
    )

    async def world() -> list[object]:
        return [
            await db.fetchval("SELECT cancelled_at FROM broadcasts"),
            await db.fetchval("SELECT count(*) FROM broadcasts"),
            [tuple(r) for r in await db.fetch("SELECT status FROM outbox")],
            await db.fetchval("SELECT count(*) FROM jobs"),
            [
                tuple(r)
                for r in await db.fetch("SELECT is_active, excluded_node_names FROM marzban_instances")
            ],
            await redis.get(keys.MAINTENANCE),
        ]

    before = await world()
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.channel(redis, keys.BALANCER_POKE_CHANNEL))
    shown = len(await texts(harness, ANN))
    for data in (
        "adm:maint",
        "admmt:on",
        "admmt:default",
        "admmt:off",
        "adm:bc",
        "admbc:aud:all:0",
        "admbc:lang:ru:0",
        "admbc:nobutton::0",
        f"admbc:cancel::{broadcast_id}",
        f"admbc:progress::{broadcast_id}",
        "admi:drain_yes:p1",
        "admn:exclude:p1:0",
        "admn:include:p1:0",
        "admn:poke:p1:0",
        "adm:stats",
        "adm:inst",
    ):
        answer = await harness.press(ANN, data)
        assert (answer.text, answer.show_alert) == (STALE, True), data
    assert await world() == before
    assert len(await texts(harness, ANN)) == shown
    assert await pubsub.get_message(timeout=0.2) is not None  # the subscribe confirmation
    assert await pubsub.get_message(timeout=0.2) is None  # no poke
    await pubsub.aclose()
    assert harness.handler_errors() == []


async def test_instances_screen_scores_exclude_include_and_refresh(
    harness: BotHarness, db: asyncpg.Pool, redis: Redis
) -> None:
    import time

    await db.execute(
        "INSERT INTO marzban_instances (id, name, base_url, username, password, excluded_node_names)"
        " VALUES ('p1', 'P1', 'http://127.0.0.1:9', 'a', 'a', '{old-node}')"
    )
    await redis.zadd(keys.BALANCER_SCORES, {"p1:core": 1.25, "p1:de-1": 0.5})
    health = {"status": "up", "checked_at": str(time.time()), "nodes_usable": "2", "nodes_total": "3"}
    await redis.hset(keys.balancer_instance("p1"), mapping=health)
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.channel(redis, keys.BALANCER_POKE_CHANNEL))
    assert (await pubsub.get_message(timeout=1))["type"] == "subscribe"

    await harness.send(ADMIN, "/admin", first_name="Admin")
    await harness.press(ADMIN, "adm:inst")
    shown = (await texts(harness, ADMIN))[-1]
    assert "p1 (P1) — active" in shown and "up, 2/3 nodes" in shown
    assert "⚖️ Scores (lowest wins): de-1 0.50, core 1.25" in shown
    assert "⛔ Excluded nodes: old-node" in shown
    buttons = await last_buttons(harness, ADMIN)
    assert buttons["⛔ Exclude a node of p1"] == "admn:exclude:p1:0"
    assert buttons["✅ Include old-node"] == "admn:include:p1:0"

    answer = await harness.press(ADMIN, buttons["⚖️ Ask the balancer now"])
    assert answer.text == "⚖️ The balancer scores every instance now; refresh in a few seconds."
    assert (await pubsub.get_message(timeout=1))["channel"] == keys.channel(redis, keys.BALANCER_POKE_CHANNEL)

    await harness.press(ADMIN, "admn:exclude:p1:0")
    await harness.send(ADMIN, "   ")
    assert (await texts(harness, ADMIN))[-1].startswith("❌ No such node to change")
    await harness.send(ADMIN, "de-1")
    assert (await texts(harness, ADMIN))[-1].startswith("⛔ p1: excluded nodes now old-node, de-1.")
    answer = await harness.press(ADMIN, "admn:include:p1:0")
    assert answer.text == "✅ p1: node old-node is scored again."
    assert await db.fetchval("SELECT excluded_node_names FROM marzban_instances") == ["de-1"]
    stale = await harness.press(ADMIN, "admn:include:p1:5")  # no sixth excluded node
    assert stale.show_alert
    assert await db.fetchval("SELECT excluded_node_names FROM marzban_instances") == ["de-1"]
    trail = await db.fetch("SELECT actor, action, target, after FROM admin_audit ORDER BY id")
    assert [(r["actor"], r["action"], r["target"]) for r in trail] == [
        (str(ADMIN), "balancer.refresh", None),
        (str(ADMIN), "instance.exclude_node", "instance:p1"),
        (str(ADMIN), "instance.include_node", "instance:p1"),
    ]
    assert trail[2]["after"] == {"excluded_node_names": ["de-1"]}
    await pubsub.aclose()
    assert harness.handler_errors() == []
