"""TON top-ups keep being credited after the sandbox restarts its tonapi emulator.

The watcher's cursor (the last logical time it read) lives in Postgres and outlives
the sandbox; a restarted emulator used to count logical time from the start again,
below that cursor, so no transfer was ever seen again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec

from orbit.sandbox.state_files import StateFiles
from orbit.sandbox.tonapi import TonapiEmulator
from tests.payments_core.conftest import TON_WALLET, TONAPI_KEY, Shop

MakeUser = Callable[..., Awaitable[int]]


async def test_a_transfer_after_a_sandbox_restart_is_still_credited(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser, tmp_path: Path
) -> None:
    await make_user(1)
    tonapi.set_rate(200.0)
    first = await shop.invoice(1, 200)
    tonapi.send_ton(TON_WALLET, first.nanotons, first.comment)
    assert (await shop.poll()).matched == 1

    # The sandbox stops (saving its state) and starts again (loading it), as run.sh does.
    StateFiles(tmp_path, {"tonapi": tonapi}).save()
    await tonapi.stop()
    restarted = TonapiEmulator(api_key=TONAPI_KEY)
    StateFiles(tmp_path, {"tonapi": restarted}).load()
    await restarted.start()
    try:
        settings = msgspec.structs.replace(shop.settings, tonapi_url=restarted.base_url)
        shop = Shop(shop.db, shop.redis, shop.http, restarted, shop.translator, settings)
        second = await shop.invoice(1, 300)
        restarted.send_ton(TON_WALLET, second.nanotons, second.comment)
        result = await shop.poll()
        assert result.matched == 1, result
        status = await db.fetchval("SELECT status FROM payments WHERE id = $1", second.payment.id)
        assert status == "confirmed"
        assert await db.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 50_000
        # The restarted chain still shows what was paid before (a re-read finds it).
        assert len(restarted.transactions(TON_WALLET)) == 2
    finally:
        await restarted.stop()
