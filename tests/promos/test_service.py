"""Redeeming and creating promo codes against the real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from orbit.configs import service as configs
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import Plans
from orbit.promos import queries
from orbit.promos.service import (
    PromoAlreadyUsed,
    PromoError,
    PromoExhausted,
    PromoExpired,
    PromoInactive,
    PromoInputError,
    PromoNotFound,
    create_promo,
    disable_promo,
    list_promos,
    redeem,
)
from tests.configs.conftest import Panels, add_user


async def _state(db: asyncpg.Pool) -> dict[str, object]:
    """Everything a redemption may change."""
    return {
        "balances": [tuple(r) for r in await db.fetch("SELECT id, balance_kop FROM users ORDER BY id")],
        "until": [tuple(r) for r in await db.fetch("SELECT id, subscription_until FROM users ORDER BY id")],
        "uses": [tuple(r) for r in await db.fetch("SELECT code, uses FROM promocodes ORDER BY code")],
        "activations": await db.fetchval("SELECT count(*) FROM promocode_activations"),
        "ledger": await db.fetchval("SELECT count(*) FROM ledger"),
    }


async def test_balance_code_credits_once_through_the_ledger(deps: PanelDeps) -> None:
    await add_user(deps.pool, 1, balance_kop=500)
    await create_promo(deps.pool, "welcome", "balance", 15_050, actor="9")

    done = await redeem(deps, 1, "  Welcome ")  # case-insensitive, spaces ignored
    assert (done.code, done.kind, done.value, done.balance_kop) == ("WELCOME", "balance", 15_050, 15_550)
    entry = await deps.pool.fetchrow(
        "SELECT amount_kop, kind, balance_after_kop FROM ledger WHERE idempotency_key = 'promo:WELCOME:1'"
    )
    assert dict(entry) == {"amount_kop": 15_050, "kind": "promo", "balance_after_kop": 15_550}
    assert await deps.pool.fetchval("SELECT balance_kop FROM users WHERE id = 1") == 15_550
    assert await deps.pool.fetchval("SELECT uses FROM promocodes WHERE code = 'WELCOME'") == 1

    before = await _state(deps.pool)
    with pytest.raises(PromoAlreadyUsed):
        await redeem(deps, 1, "WELCOME")
    assert await _state(deps.pool) == before


async def test_days_code_extends_the_subscription_and_the_panels(
    deps: PanelDeps, plans: Plans, panels: Panels
) -> None:
    until = await add_user(deps.pool, 1, days=10)
    assert until is not None
    config = (await configs.create_config(deps, plans, 1)).config
    await create_promo(deps.pool, "MONTH", "days", 30, actor="9")

    done = await redeem(deps, 1, "month")
    assert done.until == until + timedelta(days=30)
    assert await deps.pool.fetchval("SELECT subscription_until FROM users WHERE id = 1") == done.until
    panel_user = panels.p1.user(config.panel_username)
    assert panel_user is not None and panel_user["expire"] == int(done.until.timestamp())
    assert await deps.pool.fetchval("SELECT needs_sync FROM configs WHERE id = $1", config.id) is False


async def test_days_code_without_a_subscription_starts_today(deps: PanelDeps) -> None:
    await add_user(deps.pool, 1, days=None)
    await create_promo(deps.pool, "TRYME", "days", 3, actor="9")
    started = datetime.now(UTC)
    done = await redeem(deps, 1, "tryme")
    assert done.until is not None
    assert started + timedelta(days=3) <= done.until <= datetime.now(UTC) + timedelta(days=3)


async def test_unusable_codes_are_refused_and_change_nothing(deps: PanelDeps) -> None:
    await add_user(deps.pool, 1, balance_kop=100)
    await add_user(deps.pool, 2)
    past = datetime.now(UTC) - timedelta(minutes=1)
    await queries.insert(deps.pool, "OLD", "balance", 1000, None, past, None)  # create_promo refuses this
    await create_promo(deps.pool, "OFF", "balance", 1000, actor="9")
    await disable_promo(deps.pool, "off", actor="9")
    await create_promo(deps.pool, "ONCE", "days", 5, max_uses=1, actor="9")
    await redeem(deps, 2, "ONCE")  # user 2 took the only use

    before = await _state(deps.pool)
    cases: list[tuple[str, type[PromoError]]] = [
        ("NOPE", PromoNotFound),
        ("", PromoNotFound),
        ("drop table;", PromoNotFound),
        ("x" * 500, PromoNotFound),
        ("old", PromoExpired),
        ("Off", PromoInactive),
        ("once", PromoExhausted),
    ]
    for code, error in cases:
        with pytest.raises(error):
            await redeem(deps, 1, code)
    assert await _state(deps.pool) == before


async def test_two_users_racing_for_the_last_use_one_gets_it(deps: PanelDeps) -> None:
    users = range(1, 11)
    for user_id in users:
        await add_user(deps.pool, user_id)
    await create_promo(deps.pool, "LAST", "balance", 5000, max_uses=3, actor="9")
    await redeem(deps, 1, "LAST")
    await redeem(deps, 2, "LAST")  # one use left

    results = await asyncio.gather(*(redeem(deps, u, "LAST") for u in users[2:]), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1, results
    assert all(isinstance(r, PromoExhausted) for r in results if isinstance(r, BaseException))
    assert await deps.pool.fetchval("SELECT uses FROM promocodes WHERE code = 'LAST'") == 3
    assert await deps.pool.fetchval("SELECT count(*) FROM promocode_activations") == 3
    assert await deps.pool.fetchval("SELECT count(*) FROM ledger WHERE kind = 'promo'") == 3
    assert await deps.pool.fetchval("SELECT sum(balance_kop) FROM users") == 3 * 5000


async def test_one_user_sending_a_code_many_times_at_once_gets_it_once(deps: PanelDeps) -> None:
    await add_user(deps.pool, 1)
    await create_promo(deps.pool, "MANY", "days", 7, actor="9")
    results = await asyncio.gather(*(redeem(deps, 1, "many") for _ in range(8)), return_exceptions=True)
    assert len([r for r in results if not isinstance(r, BaseException)]) == 1, results
    assert all(isinstance(r, PromoAlreadyUsed) for r in results if isinstance(r, BaseException))
    assert await deps.pool.fetchval("SELECT uses FROM promocodes WHERE code = 'MANY'") == 1


async def test_create_refuses_bad_input(deps: PanelDeps) -> None:
    await create_promo(deps.pool, "TAKEN", "balance", 100, actor="9")
    future = datetime.now(UTC) + timedelta(days=1)
    bad = [
        ("x", "balance", 100, {}, "bad code"),
        ("_LEADING", "balance", 100, {}, "bad code"),
        ("GOOD", "money", 100, {}, "unknown kind"),
        ("GOOD", "balance", 0, {}, "positive"),
        ("GOOD", "days", -3, {}, "positive"),
        ("GOOD", "days", 100_000, {}, "at most"),
        ("GOOD", "days", 3, {"max_uses": 0}, "max uses"),
        ("GOOD", "days", 3, {"expires_at": datetime.now(UTC) - timedelta(days=1)}, "past"),
        ("GOOD", "days", 3, {"expires_at": future.replace(tzinfo=None)}, "timezone"),
        ("taken", "days", 3, {}, "already exists"),
    ]
    for code, kind, value, extra, message in bad:
        with pytest.raises(PromoInputError, match=message):
            await create_promo(deps.pool, code, kind, value, **extra, actor="9")  # type: ignore[arg-type]
    assert [p.code for p in await list_promos(deps.pool, include_unusable=True)] == ["TAKEN"]
    with pytest.raises(PromoInputError, match="no promo code"):
        await disable_promo(deps.pool, "MISSING", actor="9")


async def test_list_hides_unusable_codes_unless_asked(deps: PanelDeps) -> None:
    await create_promo(deps.pool, "LIVE", "balance", 100, actor="9")
    await create_promo(deps.pool, "DEAD", "balance", 100, actor="9")
    await disable_promo(deps.pool, "DEAD", actor="9")
    assert [p.code for p in await list_promos(deps.pool)] == ["LIVE"]
    assert sorted(p.code for p in await list_promos(deps.pool, include_unusable=True)) == ["DEAD", "LIVE"]
