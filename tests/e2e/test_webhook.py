"""Webhook mode through real bot processes and the Telegram emulator: one port for
several processes, setWebhook once, the secret header, back to polling."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit.bot.webhook import SECRET_HEADER
from tests.e2e.conftest import BOT_TOKEN, Panel, Telegram
from tests.support.bots import bot_fleet
from tests.support.telegram_user import TelegramUser

MakeUser = Callable[..., TelegramUser]
SECRET = "webhook-Secret_0123456789"
PATH = "/telegram/webhook"


@pytest.fixture
def webhook_env(bot_env: dict[str, str]) -> dict[str, str]:
    return {
        "WEBHOOK_URL": f"http://127.0.0.1:{bot_env['BOT_HTTP_PORT']}{PATH}",
        "WEBHOOK_SECRET": SECRET,
    }


async def _bot_api(http: aiohttp.ClientSession, telegram: Telegram, method: str) -> Any:
    async with http.post(f"{telegram.url}/bot{BOT_TOKEN}/{method}") as resp:
        body = await resp.json()
    assert body["ok"], body
    return body["result"]


def _start_update(update_id: int, user_id: int) -> dict[str, Any]:
    person = {"id": user_id, "is_bot": False, "first_name": "Eve", "language_code": "en"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private", "first_name": "Eve"},
            "from": person,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


async def test_two_processes_share_one_port_and_the_webhook_is_set_once(
    bot_env: dict[str, str],
    webhook_env: dict[str, str],
    redis: Redis,
    log_dir: Path,
    panels: list[Panel],
    telegram: Telegram,
    make_user: MakeUser,
    http_session: aiohttp.ClientSession,
) -> None:
    # The same BOT_HTTP_PORT for both: SO_REUSEPORT, no "address in use".
    async with bot_fleet(redis, log_dir, [{**bot_env, **webhook_env}] * 2):
        await _one_webhook_two_processes(webhook_env, telegram, make_user, http_session)


async def _one_webhook_two_processes(
    webhook_env: dict[str, str], telegram: Telegram, make_user: MakeUser, http_session: aiohttp.ClientSession
) -> None:
    [call] = await telegram.control.calls("setWebhook")
    assert call.params["url"] == webhook_env["WEBHOOK_URL"]
    assert call.params["secret_token"] == SECRET
    info = await _bot_api(http_session, telegram, "getWebhookInfo")
    assert info["url"] == webhook_env["WEBHOOK_URL"] and info["max_connections"] == 40
    # The dispatcher's own update types: what the routers handle, payments included.
    assert {"message", "callback_query", "pre_checkout_query"} <= set(info["allowed_updates"])
    assert "inline_query" not in info["allowed_updates"]

    ann = make_user(7101, first_name="Ann")
    shown = await ann.send("/start")
    assert shown.text is not None and shown.text.startswith("Welcome to Orbit VPN, Ann!")
    await ann.press("💰 Balance")
    assert "Balance: 0 ₽" in ((await ann.last()).text or "")


async def test_a_wrong_or_missing_secret_is_401_and_nothing_is_handled(
    bot_env: dict[str, str],
    webhook_env: dict[str, str],
    redis: Redis,
    log_dir: Path,
    panels: list[Panel],
    db: asyncpg.Pool,
    http_session: aiohttp.ClientSession,
) -> None:
    async with bot_fleet(redis, log_dir, [{**bot_env, **webhook_env}]):
        await _refuses_without_the_secret(webhook_env, db, http_session)


async def _refuses_without_the_secret(
    webhook_env: dict[str, str], db: asyncpg.Pool, http_session: aiohttp.ClientSession
) -> None:
    url = webhook_env["WEBHOOK_URL"]
    refused = [{}, {SECRET_HEADER: ""}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"},
               {SECRET_HEADER: SECRET[:-1]}, {SECRET_HEADER: SECRET.upper()}]  # fmt: skip
    for number, headers in enumerate(refused, start=1):
        async with http_session.post(url, json=_start_update(number, 7201), headers=headers) as resp:
            assert resp.status == 401, headers
    # Not UTF-8 either (aiohttp lets any byte through a header).
    async with http_session.post(
        url, json=_start_update(50, 7201), headers={SECRET_HEADER: "s\u00e9cret".encode().decode("latin-1")}
    ) as resp:
        assert resp.status == 401
    assert await db.fetchval("SELECT count(*) FROM users") == 0

    async with http_session.post(url, data=b"{not json", headers={SECRET_HEADER: SECRET}) as resp:
        assert resp.status == 400
    async with http_session.post(url, json=_start_update(60, 7201), headers={SECRET_HEADER: SECRET}) as resp:
        assert resp.status == 200
    # Answered after the handler ran: the row is there already, no waiting.
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = 7201") == 1


async def test_back_to_polling_deletes_the_webhook_and_gets_what_was_pending(
    bot_env: dict[str, str],
    webhook_env: dict[str, str],
    redis: Redis,
    log_dir: Path,
    panels: list[Panel],
    telegram: Telegram,
    make_user: MakeUser,
    http_session: aiohttp.ClientSession,
) -> None:
    async with bot_fleet(redis, log_dir, [{**bot_env, **webhook_env}]):
        pass  # started, set the webhook, stopped with SIGTERM (exit 0)
    ann = make_user(7301, first_name="Ann")
    await ann.send_silently("/start")  # pending at Telegram: the webhook points nowhere now
    async with bot_fleet(redis, log_dir, [bot_env]):  # polling, the default
        await ann.wait_until(
            lambda shown: any((m.text or "").startswith("Welcome to Orbit VPN") for m in shown), timeout=30
        )
    assert len(await telegram.control.calls("deleteWebhook")) == 1
    info = await _bot_api(http_session, telegram, "getWebhookInfo")
    assert info["url"] == ""
