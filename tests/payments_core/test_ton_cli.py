"""`orbit ton`: listing and crediting transfers the watcher could not match."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.cli.errors import CommandError
from orbit.cli.main import build_parser
from orbit.i18n import Translator
from orbit.payments import ton
from orbit.payments.audit import audit
from orbit.payments.ton_watch import poll_wallet
from orbit.payments.tonapi import TonapiClient
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings
from tests.payments_core.conftest import TON_WALLET, TONAPI_KEY, orbit_cli
from tests.payments_core.test_ton_watcher_process import _pending_payments

MakeUser = Callable[..., Awaitable[int]]


async def _orbit_ton(env: dict[str, str], *args: str) -> tuple[int, str]:
    return await orbit_cli(env, "ton", *args)


async def _ton(settings: Settings, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    parsed = build_parser().parse_args(["ton", *args])
    assert await parsed.func(parsed, settings) == 0
    return capsys.readouterr().out.strip()


async def test_list_and_credit_an_unmatched_transfer(
    db: asyncpg.Pool,
    redis: Redis,
    tonapi: TonapiEmulator,
    translator: Translator,
    settings: Settings,
    make_user: MakeUser,
    base_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    await make_user(1, language="ru")
    await _pending_payments(db, 1, 1, 10_000)  # a TON payment exists: new transfers are not history
    lost = tonapi.send_ton(TON_WALLET, 2 * 10**9, "for vpn, user 1")
    async with aiohttp.ClientSession() as http:
        client = TonapiClient(http, tonapi.base_url or "", TONAPI_KEY)
        await poll_wallet(db, redis, client, translator, settings)

    # In-process (the same `run`) but for one real `orbit ton credit`, to keep the test fast.
    out = await _ton(settings, capsys, "unmatched")
    assert lost in out and "2 TON" in out and "'for vpn, user 1'" in out
    [listed] = msgspec.json.decode(await _ton(settings, capsys, "unmatched", "--json"))
    assert listed["hash"] == lost and listed["amount_nanoton"] == 2 * 10**9

    for bad in (["nope", "--user", "1", "--rub", "100"], [lost, "--user", "2", "--rub", "100"],
                [lost, "--user", "x", "--rub", "100"], [lost, "--user", "1", "--rub", "-5"]):
        with pytest.raises(CommandError):
            await _ton(settings, capsys, "credit", *bad)
    assert await db.fetchval("SELECT count(*) FROM ledger") == 0

    code, out = await _orbit_ton(base_env, "credit", lost, "--user", "1", "--rub", "440")
    assert code == 0 and "credited 440 RUB to user 1; balance 440 RUB" in out, out
    with pytest.raises(CommandError, match="not an unmatched transfer"):  # once per transfer
        await _ton(settings, capsys, "credit", lost, "--user", "1", "--rub", "440")
    assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 44_000
    assert await db.fetchval("SELECT status FROM ton_transactions WHERE hash = $1", lost) == "matched"
    text = await db.fetchval("SELECT text FROM outbox WHERE chat_id = 1")
    assert "Поддержка нашла ваш перевод TON: +440 ₽" in text
    assert await _ton(settings, capsys, "unmatched") == "no unmatched transfers"
    async with db.acquire() as conn:
        assert await audit(conn) == []
    assert ton.format_ton(2 * 10**9) == "2"
