"""The chat page's JSON API: who may call it, what it refuses, what it does to the emulators.

The page runs in process against real emulators on 127.0.0.1; what a browser shows
is tests/browser's job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from orbit.sandbox import config
from orbit.sandbox.page import Endpoints, PageServer
from orbit.sandbox.telegram import TelegramEmulator
from orbit.sandbox.telegram_control import TelegramControl
from orbit.sandbox.tonapi import TonapiEmulator

SHOP = "0:" + "cd" * 32


@dataclass
class World:
    page: str
    telegram: TelegramControl
    tonapi: TonapiEmulator
    http: aiohttp.ClientSession


@pytest.fixture
async def world() -> AsyncIterator[World]:
    telegram = TelegramEmulator()
    tonapi = TonapiEmulator()
    telegram_url = await telegram.start()
    tonapi_url = await tonapi.start()
    endpoints = Endpoints(
        telegram_url=telegram_url,
        tonapi_url=tonapi_url,
        cryptobot_url="http://127.0.0.1:9",  # nothing listens: the page must say so, not hang
        ton_address=SHOP,
        panels=(),
    )
    page = PageServer(endpoints, config.SANDBOX_ADMIN_ID)
    url = await page.start()
    async with aiohttp.ClientSession() as http:
        yield World(url, TelegramControl(telegram_url, http), tonapi, http)
    await page.stop()
    await tonapi.stop()
    await telegram.stop()


async def _post(world: World, path: str, body: object, **kwargs: object) -> tuple[int, dict]:
    async with world.http.post(world.page + path, json=body, **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.json()


async def test_the_admin_is_listed_and_marked_and_new_users_are_checked(world: World) -> None:
    async with world.http.get(world.page + "/api/users") as resp:
        users = await resp.json()
    assert users == [
        {"id": 1000, "first_name": "Admin", "username": "sandbox_admin", "language": "en", "admin": True}
    ]
    for bad, error in (
        ({"first_name": "  "}, "first name"),
        ({"first_name": "Ann", "username": "a!"}, "username"),
        ({"first_name": "Ann", "username": "sandbox_admin"}, "taken"),
        ({"first_name": "Ann", "language": "de"}, "language"),
        ({"first_name": "Ann", "admin": True}, "bad request"),  # nobody makes themselves admin
    ):
        status, answer = await _post(world, "/api/users", bad)
        assert status == 400 and error in answer["error"], bad
    status, ann = await _post(world, "/api/users", {"first_name": " Ann  Lee ", "username": "@ann_lee"})
    assert status == 201
    assert ann == {
        "id": 2001,
        "first_name": "Ann Lee",
        "username": "ann_lee",
        "language": "en",
        "admin": False,
    }

    # A user the bot met elsewhere (curl, a page before a restart) is listed too.
    await world.telegram.send_text(77, "/start", first_name="Zed", language_code="ru")
    async with world.http.get(world.page + "/api/users") as resp:
        listed = [(u["id"], u["first_name"], u["language"]) for u in await resp.json()]
    assert listed == [(1000, "Admin", "en"), (77, "Zed", "ru"), (2001, "Ann Lee", "en")]


async def test_only_local_json_requests_are_served(world: World) -> None:
    async with world.http.get(world.page + "/api/users", headers={"Host": "evil.example"}) as resp:
        assert resp.status == 403
    # A form post is what another site's page could send without a CORS preflight.
    async with world.http.post(world.page + "/api/users", data="first_name=Eve") as resp:
        assert resp.status == 415
    async with world.http.get(world.page + "/") as resp:
        assert resp.status == 200 and "<title>Orbit sandbox</title>" in await resp.text()
    async with world.http.get(world.page + "/static/app.js") as resp:
        assert resp.status == 200 and "innerHTML" not in await resp.text()


async def test_sending_bad_text_changes_nothing_and_good_text_reaches_the_bot(world: World) -> None:
    _, ann = await _post(world, "/api/users", {"first_name": "Ann", "language": "ru"})
    chat = f"/api/chats/{ann['id']}"
    for bad in ("", "   ", "x" * 4097):
        status, answer = await _post(world, f"{chat}/send", {"text": bad})
        assert status == 400 and "1 to 4096" in answer["error"]
    assert await world.telegram.messages(ann["id"], include_user=True) == []
    status, _ = await _post(world, "/api/chats/4242/send", {"text": "hi"})
    assert status == 404  # not a test user of this page

    status, sent = await _post(world, f"{chat}/send", {"text": "/start"})
    assert status == 200
    [shown] = await world.telegram.messages(ann["id"], include_user=True)
    assert shown.text == "/start" and shown.message_id == sent["message_id"]
    [known] = await world.telegram.users()
    assert (known.first_name, known.language_code) == ("Ann", "ru")


async def test_the_wallet_sends_ton_from_the_users_wallet_to_the_shop(world: World) -> None:
    _, ann = await _post(world, "/api/users", {"first_name": "Ann"})
    for bad in ("", "abc", "-1", "0", "1.0000000001", "nan"):
        status, answer = await _post(world, "/api/wallet/ton", {"user_id": ann["id"], "amount": bad})
        assert status == 400 and "amount" in answer["error"], bad
    assert world.tonapi.transactions(SHOP) == []

    status, sent = await _post(
        world, "/api/wallet/ton", {"user_id": ann["id"], "amount": "1,5", "comment": "ORB1"}
    )
    assert status == 200
    [tx] = world.tonapi.transactions(SHOP)
    assert tx["hash"] == sent["hash"]
    assert tx["in_msg"]["value"] == 1_500_000_000
    assert tx["in_msg"]["decoded_body"]["text"] == "ORB1"
    assert tx["in_msg"]["source"]["address"] == f"0:{ann['id']:064x}"

    status, answer = await _post(world, "/api/wallet/cryptopay", {"link": "https://evil.example/pay"})
    assert status == 400 and "Crypto Pay invoice link" in answer["error"]
    status, answer = await _post(
        world, "/api/wallet/cryptopay", {"link": "https://t.me/CryptoBot?start=IVabc"}
    )
    assert status == 502 and "did not answer" in answer["error"]
