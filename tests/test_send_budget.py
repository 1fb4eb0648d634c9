"""The bot's replies under Telegram's limits: the send budget against the Telegram
emulator (limits on, real HTTP) and the shared Redis limiter."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import Message
from redis.asyncio import Redis

from orbit import keys
from orbit.bot.send_budget import SendBudget
from orbit.metrics import Metrics
from orbit.outbox.limiter import BROADCAST, NOTIFY, PAUSED, SendLimiter
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl

TOKEN = "123456:TEST-token"


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator()  # Telegram's limits: on by default
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def control(telegram: TelegramEmulator) -> AsyncIterator[TelegramControl]:
    assert telegram.base_url is not None
    async with aiohttp.ClientSession() as http:
        yield TelegramControl(telegram.base_url, http)


def _bot(telegram: TelegramEmulator) -> Bot:
    assert telegram.base_url is not None
    return Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url)))


@pytest.fixture
async def bare(telegram: TelegramEmulator) -> AsyncIterator[Bot]:
    """The same bot without a budget: how the old code sent."""
    bot = _bot(telegram)
    yield bot
    await bot.session.close()


@pytest.fixture
async def budgeted(telegram: TelegramEmulator, redis: Redis) -> AsyncIterator[tuple[Bot, Metrics]]:
    bot = _bot(telegram)
    metrics = Metrics()
    bot.session.middleware(SendBudget(SendLimiter(redis, 30.0), metrics, max_wait=20))
    yield bot, metrics
    await bot.session.close()


async def _users(control: TelegramControl, *ids: int) -> None:
    for user_id in ids:
        await control.unblock(user_id)


async def test_a_crowd_of_replies_is_paced_with_no_429(
    control: TelegramControl, budgeted: tuple[Bot, Metrics], bare: Bot
) -> None:
    bot, _ = budgeted
    chats = list(range(1, 61))
    await _users(control, *chats)
    # 60 chats at once plus three replies to one chat: twice the global budget.
    started = time.monotonic()
    await asyncio.gather(
        *(bot.send_message(chat, f"hello {chat}") for chat in chats),
        *(bot.send_message(1, f"again {n}") for n in range(3)),
    )
    elapsed = time.monotonic() - started
    stats = await control.rate_stats()
    assert stats.too_many_requests == [] and stats.early_retries == 0
    assert stats.accepted_total == 63 and stats.max_global_window <= 30 and stats.max_per_chat_window == 1
    assert 1.5 < elapsed < 6  # 63 sends at 30/s, and chat 1's four a second apart
    # The old way, for contrast: the same crowd without a budget is refused.
    await _users(control, *range(100, 160))
    results = await asyncio.gather(
        *(bare.send_message(chat, "x") for chat in range(100, 160)), return_exceptions=True
    )
    assert any(isinstance(r, TelegramRetryAfter) for r in results)


async def test_a_429_pauses_the_whole_bot_and_the_reply_goes_after_it(
    control: TelegramControl, budgeted: tuple[Bot, Metrics], redis: Redis
) -> None:
    bot, metrics = budgeted
    await _users(control, 7)
    await control.flood(2, chat_id=None)  # Telegram imposed a flood wait on the bot
    started = time.monotonic()
    sent = await bot.send_message(7, "after the flood")
    assert isinstance(sent, Message) and time.monotonic() - started >= 1.5
    stats = await control.rate_stats()
    assert len(stats.too_many_requests) == 1  # told once; nobody retried before retry_after
    assert stats.early_retries == 0
    assert metrics.value("telegram_retry_after_total", outcome="paused") == 1


async def test_another_process_honours_the_pause(
    control: TelegramControl, budgeted: tuple[Bot, Metrics], redis: Redis, telegram: TelegramEmulator
) -> None:
    """A 429 seen by one process holds every other's replies and outbox lanes."""
    bot, _ = budgeted
    other = _bot(telegram)
    other.session.middleware(SendBudget(SendLimiter(redis, 30.0), Metrics(), max_wait=20))
    try:
        await _users(control, 8, 9)
        await control.flood(2, chat_id=None)
        first = asyncio.create_task(bot.send_message(8, "one"))
        await asyncio.sleep(0.3)  # the first got its 429 and paused everybody
        assert await SendLimiter(redis, 30.0).try_slot("row", NOTIFY) > 1  # the outbox too
        await asyncio.gather(first, other.send_message(9, "two"))
    finally:
        await other.session.close()
    stats = await control.rate_stats()
    assert len(stats.too_many_requests) == 1 and stats.early_retries == 0


async def test_edits_of_one_message_waiting_together_coalesce(
    control: TelegramControl, budgeted: tuple[Bot, Metrics]
) -> None:
    bot, metrics = budgeted
    await _users(control, 11)
    message = await bot.send_message(11, "screen 0")
    # The chat just had its message: these wait for its second, and only the newest goes out.
    results = await asyncio.gather(
        *(bot.edit_message_text(f"screen {n}", chat_id=11, message_id=message.message_id) for n in (1, 2, 3))
    )
    assert all(isinstance(r, Message) and r.text == "screen 3" for r in results)
    edits = await control.calls("editMessageText")
    assert [call.params["text"] for call in edits] == ["screen 3"]
    assert metrics.value("telegram_edits_coalesced_total") == 2
    [shown] = [m for m in await control.messages(11) if m.from_bot]
    assert shown.text == "screen 3"


async def test_replies_go_before_notifications_and_broadcasts(redis: Redis) -> None:
    limiter = SendLimiter(redis, 10.0)
    waits = [await limiter.reserve() for _ in range(5)]  # five replies in line: 0, .1, ... .4 s
    assert [paused for paused, _ in waits] == [False] * 5
    assert [round(wait, 1) for _, wait in waits] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert await limiter.try_slot("broadcast", BROADCAST) > 0.3  # only what is left
    assert await limiter.try_slot("notice", NOTIFY) == 0  # its small share of a queue
    assert await limiter.try_slot("notice 2", NOTIFY) > 0  # but only that share
    paused, wait = await limiter.reserve()
    assert not paused and wait > 0.5  # the notice pushed the line one slot later
    await limiter.pause(3)
    assert (await limiter.reserve())[0] is True
    code, wait = await limiter.admit("late")
    assert code == PAUSED and wait > 2  # a reserved slot that comes in a pause is void
    await redis.delete(keys.OUTBOX_PAUSE)


async def test_without_redis_the_process_paces_alone(
    control: TelegramControl, telegram: TelegramEmulator
) -> None:
    """Redis down (nothing listens on its port): the replies still go, at Telegram's pace."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    dead = Redis(port=dead_port, socket_connect_timeout=1)
    bot = _bot(telegram)
    metrics = Metrics()
    bot.session.middleware(SendBudget(SendLimiter(dead, 30.0), metrics, max_wait=20))
    try:
        chats = list(range(200, 250))
        await _users(control, *chats)
        started = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(
                *(bot.send_message(chat, "hi") for chat in chats),
                *(bot.send_message(200, f"again {n}") for n in range(2)),
            ),
            timeout=15,
        )
        assert time.monotonic() - started > 1.0
    finally:
        await bot.session.close()
        await dead.aclose()
    stats = await control.rate_stats()
    assert stats.accepted_total == 52 and stats.early_retries == 0
    assert metrics.value("send_budget_redis_errors_total") >= 1
