"""TON reconciliation against the tonapi emulator: a transfer tonapi listed only after
the cursor had passed it is found and credited once; running again changes nothing."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit.cli.main import build_parser
from orbit.payments.audit import audit
from orbit.payments.ton_reconcile import ReconcileReport, reconcile_ton
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings
from tests.payments_core.conftest import TON_WALLET, Shop, orbit_cli, tonapi_client

MakeUser = Callable[..., Awaitable[int]]


async def _balance(db: asyncpg.Pool, user_id: int) -> int:
    return await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", user_id)


async def _reconcile(shop: Shop, **kw: object) -> ReconcileReport:
    return await reconcile_ton(
        shop.db,
        shop.redis,
        shop.http,
        shop.settings,
        translator=shop.translator,
        client=tonapi_client(shop.http, shop.tonapi),
        **kw,  # type: ignore[arg-type]
    )


async def _a_transfer_the_watcher_missed(shop: Shop, tonapi: TonapiEmulator) -> tuple[int, str]:
    """Three paid invoices of user 1; tonapi lists the middle transfer only after the
    watcher's cursor passed it. Returns (its payment id, its hash)."""
    first, missed, last = [await shop.invoice(1, 100) for _ in range(3)]
    tonapi.send_ton(TON_WALLET, first.nanotons, first.comment)
    lagging = tonapi.send_ton(TON_WALLET, missed.nanotons, missed.comment, hidden=True)
    tonapi.send_ton(TON_WALLET, last.nanotons, last.comment)
    await shop.poll()
    tonapi.reveal(lagging)
    assert (await shop.poll()).fetched == 0  # behind the cursor: the watcher never sees it
    return missed.payment.id, lagging


async def test_reconcile_credits_what_the_watcher_missed_exactly_once(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    payment_id, tx_hash = await _a_transfer_the_watcher_missed(shop, tonapi)
    assert await _balance(db, 1) == 20_000
    cursor = await db.fetchval("SELECT value FROM cursors")

    report = await _reconcile(shop)

    assert (report.read, report.fixed, report.matched, report.credited_kop) == (3, 1, 1, 10_000)
    assert report.from_lt == 0 and report.to_lt == int(cursor) and report.changed
    assert await _balance(db, 1) == 30_000
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == "confirmed"
    assert await db.fetchval("SELECT payment_id FROM ton_transactions WHERE hash = $1", tx_hash) == payment_id
    assert await db.fetchval("SELECT value FROM cursors") == cursor  # never moved
    async with db.acquire() as conn:
        assert await audit(conn) == []

    again = await _reconcile(shop)
    assert (again.read, again.fixed, again.credited_kop) == (3, 0, 0) and not again.changed
    assert await _balance(db, 1) == 30_000
    assert await db.fetchval("SELECT count(*) FROM ledger") == 3
    assert await db.fetchval("SELECT count(*) FROM outbox") == 3


async def test_reconcile_reads_only_the_look_back_window(
    db: asyncpg.Pool, tonapi: TonapiEmulator, shop: Shop, make_user: MakeUser
) -> None:
    await make_user(1)
    await _a_transfer_the_watcher_missed(shop, tonapi)
    # A day later, with a one-hour window: everything stored is older, nothing is re-read.
    later = await _reconcile(shop, clock=lambda: time.time() + 86_400, lookback=timedelta(hours=1))
    assert (later.read, later.fixed) == (0, 0) and later.from_lt == later.to_lt
    assert await _balance(db, 1) == 20_000
    nothing_yet = await reconcile_ton(db, shop.redis, shop.http, msgspec.structs.replace(
        shop.settings, ton_address="0:" + "77" * 32), client=tonapi_client(shop.http, tonapi))
    assert nothing_yet.read == 0 and nothing_yet.to_lt == 0  # no cursor: the watcher never ran


async def test_orbit_ton_reconcile(
    db: asyncpg.Pool,
    redis: Redis,
    tonapi: TonapiEmulator,
    shop: Shop,
    make_user: MakeUser,
    settings: Settings,
    base_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    await make_user(1)
    await _a_transfer_the_watcher_missed(shop, tonapi)
    env = {**base_env, "TON_ADDRESS": TON_WALLET, "TONAPI_URL": tonapi.base_url or "",
           "TONAPI_KEY": settings.tonapi_key or ""}
    code, out = await orbit_cli(env, "ton", "reconcile", "--json")
    assert code == 0, out
    report = msgspec.json.decode(out.strip().splitlines()[-1], type=ReconcileReport)
    assert (report.fixed, report.matched, report.credited_kop) == (1, 1, 10_000)
    assert await _balance(db, 1) == 30_000

    parsed = build_parser().parse_args(["ton", "reconcile", "--hours", "2"])
    assert await parsed.func(parsed, settings) == 0
    assert "0 missed" in capsys.readouterr().out


async def test_http_session_is_enough(http: aiohttp.ClientSession, db: asyncpg.Pool, redis: Redis,
                                      settings: Settings) -> None:
    """The lead wires `orbit reconcile` with a pool, Redis, an HTTP session and settings."""
    report = await reconcile_ton(db, redis, http, settings)
    assert report == ReconcileReport(seconds=report.seconds)
