"""The Telegram emulator delivers a webhook as Telegram does: up to `max_connections`
requests at once (one chat's updates too), and an update answered non-2xx is sent
again with backoff while the others go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl

TOKEN = "4242:webhook-delivery"
ANN = 5101


@dataclass
class Receiver:
    """A webhook that holds every request until released, and fails chosen updates."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    most_in_flight: int = 0
    fail_times: dict[int, int] = field(default_factory=dict)  # update id → non-2xx answers left
    attempts: list[int] = field(default_factory=list)
    handled: list[int] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        update_id = (await request.json())["update_id"]
        self.attempts.append(update_id)
        if self.fail_times.get(update_id, 0) > 0:
            self.fail_times[update_id] -= 1
            return web.Response(status=500)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        self.handled.append(update_id)
        return web.Response()


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Bot, TelegramControl, Receiver, str]]:
    emulator = TelegramEmulator()
    url = await emulator.start()
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/wh", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = f"http://127.0.0.1:{runner.addresses[0][1]}/wh"
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    async with aiohttp.ClientSession() as http:
        yield bot, TelegramControl(url, http), receiver, hook
    receiver.release.set()
    await bot.session.close()
    await emulator.stop()
    await runner.cleanup()


async def _until(check: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_one_chats_updates_go_out_in_parallel_up_to_max_connections(
    setup: tuple[Bot, TelegramControl, Receiver, str],
) -> None:
    bot, control, receiver, hook = setup
    assert await bot.set_webhook(hook, max_connections=3)
    for number in range(7):
        await control.send_text(ANN, f"message {number}")
    await _until(lambda: receiver.in_flight == 3)
    await asyncio.sleep(0.3)  # no fourth request while three are open
    assert receiver.most_in_flight == 3
    receiver.release.set()
    await _until(lambda: len(receiver.handled) == 7)
    assert receiver.most_in_flight == 3
    assert (await bot.get_webhook_info()).pending_update_count == 0


async def test_an_update_answered_non_2xx_is_sent_again_while_the_others_go_on(
    setup: tuple[Bot, TelegramControl, Receiver, str],
) -> None:
    bot, control, receiver, hook = setup
    receiver.release.set()
    assert await bot.set_webhook(hook, max_connections=2)
    first = await control.send_text(ANN, "refused twice")
    receiver.fail_times[first.update_id] = 2
    for number in range(3):
        await control.send_text(ANN, f"then {number}")
    await _until(lambda: len(receiver.handled) == 4)
    assert receiver.attempts.count(first.update_id) == 3  # two 500s, then delivered
    assert receiver.handled[-1] == first.update_id  # the others did not wait for it
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
