"""The outbox sender against the Telegram emulator, real Postgres and Redis."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from orbit import keys
from orbit.bot_client import create_bot
from orbit.outbox import sender as sender_module
from orbit.outbox.limiter import SendLimiter
from orbit.outbox.sender import OutboxSender
from orbit.sandbox.telegram_control import TelegramControl
from orbit.settings import Settings
from tests.outbox.conftest import BOT_TOKEN, SenderFactory, add_users, enqueue


async def _statuses(db: asyncpg.Pool) -> Counter[str]:
    return Counter(r["status"] for r in await db.fetch("SELECT status FROM outbox"))


async def test_two_senders_deliver_every_row_exactly_once(
    db: asyncpg.Pool, control: TelegramControl, make_sender: SenderFactory
) -> None:
    users = list(range(1001, 1041))
    await add_users(db, control, *users)
    for user_id in users:
        await enqueue(db, user_id, f"hello {user_id}")
    for n in range(3):  # one chat with three messages: at most one a second
        await enqueue(db, 1001, f"more {n}")

    # Two senders = two bot processes: they share the rows (SKIP LOCKED) and the Redis limits.
    await asyncio.gather(make_sender().tick(), make_sender().tick())

    assert await _statuses(db) == {"sent": 43}
    calls = await control.calls("sendMessage")
    assert len(calls) == 43 and all(c.ok for c in calls)
    texts = Counter(c.params["text"] for c in calls)
    assert max(texts.values()) == 1  # nothing sent twice
    per_chat = Counter(int(c.params["chat_id"]) for c in calls)
    assert per_chat[1001] == 4 and all(per_chat[u] == 1 for u in users[1:])
    stats = await control.rate_stats()
    assert stats.max_per_chat_window == 1  # the emulator saw at most one message a second per chat
    assert stats.max_global_window <= 30
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL OR attempts <> 1") == 0


async def test_429_pauses_every_sender_for_retry_after(
    db: asyncpg.Pool, control: TelegramControl, make_sender: SenderFactory
) -> None:
    users = list(range(2001, 2011))
    await add_users(db, control, *users)
    for user_id in users:
        await enqueue(db, user_id, f"news for {user_id}")
    # Telegram allows 3 a second here; the senders try 5: they must get 429s and obey them.
    # (5/s leaves 200 ms between sends for the 429 to be heard before the next one leaves.)
    await control.set_rate_limits(enabled=True, global_per_sec=3, per_chat_per_sec=1)

    await asyncio.gather(make_sender(5.0).tick(), make_sender(5.0).tick())

    stats = await control.rate_stats()
    assert stats.too_many_requests, "the emulator never said 429: the test proves nothing"
    assert stats.early_retries == 0  # nobody sent before retry_after passed
    assert await _statuses(db) == {"sent": 10}
    accepted = [c for c in await control.calls("sendMessage") if c.ok]
    assert sorted(int(c.params["chat_id"]) for c in accepted) == users
    # A 429 is not the message's fault: it does not use up an attempt.
    assert await db.fetchval("SELECT max(attempts) FROM outbox") == 1


async def test_403_marks_the_user_blocked_and_skips_their_rows(
    db: asyncpg.Pool, control: TelegramControl, make_sender: SenderFactory
) -> None:
    await add_users(db, control, 3001, 3002)
    await control.block(3001)
    first = await enqueue(db, 3001, "one")
    second = await enqueue(db, 3001, "two")
    other = await enqueue(db, 3002, "three")

    await make_sender().tick()

    assert await db.fetchval("SELECT blocked_at IS NOT NULL FROM users WHERE id = 3001")
    rows = {r["id"]: r for r in await db.fetch("SELECT id, status, last_error FROM outbox")}
    assert rows[first]["status"] == "skipped" and "blocked" in rows[first]["last_error"]
    assert rows[second]["status"] == "skipped"
    assert rows[other]["status"] == "sent"
    to_blocked = [c for c in await control.calls("sendMessage") if c.params["chat_id"] == "3001"]
    assert len(to_blocked) == 1 and to_blocked[0].error_code == 403

    # Later rows for a blocked user are skipped without asking Telegram.
    late = await enqueue(db, 3001, "four")
    await make_sender().tick()
    assert await db.fetchval("SELECT status FROM outbox WHERE id = $1", late) == "skipped"
    assert len([c for c in await control.calls("sendMessage") if c.params["chat_id"] == "3001"]) == 1


async def test_a_refused_message_fails_at_once(
    db: asyncpg.Pool, control: TelegramControl, make_sender: SenderFactory
) -> None:
    row = await enqueue(db, 4242, "to a chat that never wrote to the bot")
    bad_html = await enqueue(db, 4243, "<b>unclosed")
    await add_users(db, control, 4243)

    await make_sender().tick()

    failed = {r["id"]: r for r in await db.fetch("SELECT id, status, attempts, last_error FROM outbox")}
    assert failed[row]["status"] == "failed" and failed[row]["attempts"] == 1
    assert "chat not found" in failed[row]["last_error"]
    assert failed[bad_html]["status"] == "failed" and "parse entities" in failed[bad_html]["last_error"]


async def test_unreachable_telegram_is_retried_with_backoff_then_failed(
    db: asyncpg.Pool, redis: Redis, settings: Settings
) -> None:
    await db.execute("INSERT INTO users (id) VALUES (5001)")
    row = await enqueue(db, 5001, "hi")
    spent = await enqueue(db, 5001, "last try", attempts=sender_module.MAX_ATTEMPTS - 1)
    # Nothing listens there: the connection is refused, so Telegram surely has nothing.
    dead = create_bot(
        msgspec.structs.replace(settings, bot_token=BOT_TOKEN, telegram_api_url="http://127.0.0.1:9")
    )
    try:
        sender = OutboxSender(dead, db, SendLimiter(redis, 50.0), asyncio.Event())
        await sender.tick()
    finally:
        await dead.session.close()

    rows = {
        r["id"]: r
        for r in await db.fetch(
            "SELECT id, status, attempts, last_error, next_attempt_at > now() AS later FROM outbox"
        )
    }
    assert rows[row]["status"] == "pending" and rows[row]["attempts"] == 1 and rows[row]["later"]
    assert rows[row]["last_error"].startswith("network")
    assert rows[spent]["status"] == "failed" and rows[spent]["last_error"].startswith("gave up after 5")


async def test_a_row_left_mid_send_is_failed_never_resent(
    db: asyncpg.Pool, control: TelegramControl, make_sender: SenderFactory
) -> None:
    await add_users(db, control, 6001)
    # A sender claimed this row and died before marking it: did Telegram get it? Unknown.
    row = await enqueue(db, 6001, "maybe delivered", status="sending", attempts=1)
    await db.execute("UPDATE outbox SET next_attempt_at = now() - interval '10 minutes' WHERE id = $1", row)
    fresh = await enqueue(db, 6001, "claimed just now", status="sending", attempts=1)

    await make_sender().tick()

    rows = {r["id"]: r for r in await db.fetch("SELECT id, status, last_error FROM outbox")}
    assert rows[row]["status"] == "failed" and "not resent" in rows[row]["last_error"]
    assert rows[fresh]["status"] == "sending"  # its sender may still be at work
    assert await control.calls("sendMessage") == []


async def test_markup_is_delivered_and_a_stopping_sender_takes_nothing(
    db: asyncpg.Pool, control: TelegramControl, make_sender: SenderFactory
) -> None:
    await add_users(db, control, 7001)
    markup = {"inline_keyboard": [[{"text": "Open", "callback_data": "m:main"}]]}
    await enqueue(db, 7001, "with a button", reply_markup=markup)
    await make_sender().tick()
    [shown] = await control.messages(7001)
    assert shown.text == "with a button" and shown.button_texts == ["Open"]

    stopping = asyncio.Event()
    stopping.set()
    row = await enqueue(db, 7001, "after SIGTERM")
    await make_sender(stopping=stopping).tick()
    assert await db.fetchval("SELECT status FROM outbox WHERE id = $1", row) == "pending"


async def test_limiter_paces_windows_and_pauses(redis: Redis) -> None:
    limiter = SendLimiter(redis, 10.0)
    assert await limiter.try_slot("a") == 0
    wait = await limiter.try_slot("b")
    assert 0.05 < wait <= 0.1  # the next slot is 100 ms later (taken up to 5 ms early)

    # The window: 10 sends in flight or answered within a second, whatever the pace says.
    limiter.interval_us = 1
    await redis.delete(keys.OUTBOX_RATE)
    for n in range(9):
        assert await limiter.try_slot(f"t{n}") == 0
    assert 0 < await limiter.try_slot("over") <= 0.002  # all ten in flight: ask again soon
    await limiter.done("a", None)
    assert 0.9 < await limiter.try_slot("over") <= 1.0  # a second after the first answer
    await limiter.release("t0")  # never sent: its place is free at once
    assert await limiter.try_slot("over") == 0

    await limiter.pause(2)
    assert 1.5 < await limiter.try_slot("x") <= 2.0

    assert await limiter.take_chat(1) == 0
    assert await limiter.take_chat(1) == 1.0  # in flight: try again in an interval
    await limiter.done("over", 1)
    assert 0.9 < await limiter.take_chat(1) <= 1.0  # an interval from the answer
    assert await limiter.take_chat(2) == 0


class _RedisGoneAtTheChatSlot(SendLimiter):
    """Redis goes away once, between the claim of a row and its chat's slot."""

    failed = False

    async def take_chat(self, chat_id: int) -> float:
        if not self.failed:
            self.failed = True
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379")
        return await super().take_chat(chat_id)


async def test_a_row_claimed_when_redis_goes_away_is_put_back_not_lost(
    db: asyncpg.Pool, redis: Redis, control: TelegramControl, bot: object
) -> None:
    await add_users(db, control, 6101)
    row = await enqueue(db, 6101, "not sent yet")
    limiter = _RedisGoneAtTheChatSlot(redis, 30.0)
    sender = OutboxSender(bot, db, limiter, asyncio.Event(), lanes=1)  # type: ignore[arg-type]
    with pytest.raises(RedisConnectionError):  # the unit fails; the runtime retries it
        await sender.tick()
    status, attempts = await db.fetchrow("SELECT status, attempts FROM outbox WHERE id = $1", row)
    assert (status, attempts) == ("pending", 0)  # back in the queue, not `sending` until failed unsent
    await db.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = $1", row)
    await sender.tick()
    assert await db.fetchval("SELECT status FROM outbox WHERE id = $1", row) == "sent"
    assert [c.params["text"] for c in await control.calls("sendMessage")] == ["not sent yet"]
