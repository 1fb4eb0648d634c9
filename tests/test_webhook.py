"""orbit/bot/webhook.py in-process: what Telegram is answered for each outcome of an
update, and setWebhook called once for many processes (the emulator over real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import ErrorEvent, Message
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from orbit import keys
from orbit.bot import webhook
from orbit.metrics import Metrics
from orbit.sandbox.telegram import TelegramEmulator
from orbit.settings import Settings

TOKEN = "123456:TEST-token"
SECRET = "the-Secret_1"


def _update(update_id: int, text: str) -> dict[str, Any]:
    chat = {"id": 5, "type": "private", "first_name": "Eve"}
    sender = {"id": 5, "is_bot": False, "first_name": "Eve"}
    message = {"message_id": update_id, "date": 0, "chat": chat, "from": sender, "text": text}
    return {"update_id": update_id, "message": message}


@dataclass
class Served:
    client: TestClient[web.Request, web.Application]
    seen: list[str]
    hook: webhook.TelegramWebhook


@pytest.fixture
async def client(redis: Redis) -> AsyncIterator[Served]:
    """A dispatcher whose one handler fails as the text says; its error handler
    takes everything, as orbit/bot/errors.py does."""
    seen: list[str] = []
    dp = Dispatcher()

    @dp.message(F.text)
    async def handler(message: Message) -> None:
        seen.append(message.text or "")
        if message.text == "postgres":
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        if message.text == "bug":
            raise ValueError("a poison update")
        if message.text == "slow":
            await asyncio.sleep(0.5)
            seen.append("slow:done")

    @dp.errors()
    async def on_error(event: ErrorEvent) -> bool:
        seen.append(f"error:{type(event.exception).__name__}")
        return True

    webhook.install(dp)
    bot = Bot(TOKEN)
    hook = webhook.TelegramWebhook(dp, bot, SECRET, Metrics(), redis)
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    async with TestClient(TestServer(app)) as test_client:
        yield Served(test_client, seen, hook)
    await bot.session.close()


async def _post(test_client: TestClient[web.Request, web.Application], body: dict[str, Any]) -> int:
    resp = await test_client.post("/hook", json=body, headers={webhook.SECRET_HEADER: SECRET})
    return resp.status


async def test_answers_follow_the_outcome_of_the_update(client: Served) -> None:
    test_client, seen = client.client, client.seen
    assert await _post(test_client, _update(1, "hello")) == 200
    # A dependency away: 503 after the error handler told the user, so Telegram sends it again.
    assert await _post(test_client, _update(2, "postgres")) == 503
    # A bug: 200 after the error handler, or Telegram would redeliver it for ever.
    assert await _post(test_client, _update(3, "bug")) == 200
    assert seen == ["hello", "postgres", "error:ConnectionDoesNotExistError", "bug", "error:ValueError"]
    resp = await test_client.post("/hook", json=_update(4, "hello"))
    assert resp.status == 401 and len(seen) == 5
    # Sent again after a lost answer: a handled update is answered without a second run;
    # the one answered 503 was not marked, so it runs again.
    assert await _post(test_client, _update(1, "hello")) == 200
    assert await _post(test_client, _update(3, "bug")) == 200
    assert len(seen) == 5
    assert await _post(test_client, _update(2, "postgres")) == 503
    assert seen[5:] == ["postgres", "error:ConnectionDoesNotExistError"]


async def test_a_stopping_process_finishes_what_it_holds_and_refuses_the_rest(client: Served) -> None:
    test_client, seen, hook = client.client, client.seen, client.hook
    slow = asyncio.create_task(_post(test_client, _update(1, "slow")))
    while seen != ["slow"]:
        await asyncio.sleep(0.01)
    await hook.drain(timeout=5)  # returns only once the slow one was handled
    assert seen == ["slow", "slow:done"]
    assert await slow == 200
    assert await _post(test_client, _update(2, "hello")) == 503
    assert seen == ["slow", "slow:done"]


@pytest.fixture
async def emulator() -> AsyncIterator[str]:
    telegram = TelegramEmulator()
    url = await telegram.start()
    yield url
    await telegram.stop()


async def _calls(http: aiohttp.ClientSession, url: str, method: str) -> list[dict[str, Any]]:
    async with http.get(f"{url}/control/calls", params={"method": method}) as resp:
        return list(await resp.json())


async def test_set_webhook_is_called_once_for_many_processes_and_again_on_a_change(
    emulator: str, redis: Redis, settings: Settings
) -> None:
    hooked = msgspec_replace(settings, webhook_url="https://bot.example.com/tg", webhook_secret=SECRET)
    bots = [Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emulator))) for _ in range(4)]
    allowed = ["message", "callback_query"]
    try:
        done = await asyncio.gather(*(webhook.register(bot, redis, hooked, allowed) for bot in bots))
        assert sorted(done) == [False, False, False, True]
        assert await webhook.register(bots[0], redis, hooked, allowed) is False  # a restart
        wider = msgspec_replace(hooked, webhook_max_connections=80)
        assert await webhook.register(bots[1], redis, wider, allowed) is True
        assert await webhook.register(bots[2], redis, wider, [*allowed, "pre_checkout_query"]) is True
        async with aiohttp.ClientSession() as http:
            calls = await _calls(http, emulator, "setWebhook")
        assert [c["params"].get("max_connections") for c in calls] == ["40", "80", "80"]
        assert not await redis.exists(keys.lease(webhook.LEASE_NAME))  # released after use
        # Back to polling: the webhook goes, and its fingerprint with it.
        await webhook.unregister(bots[3], redis)
        assert (await bots[3].get_webhook_info()).url == ""
        assert not await redis.exists(keys.WEBHOOK_FINGERPRINT)
    finally:
        for bot in bots:
            await bot.session.close()


def msgspec_replace(settings: Settings, **changes: Any) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)
