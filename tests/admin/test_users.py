"""User lookup, balance adjustments and bans on the real database."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import ledger
from orbit.admin import errors
from orbit.admin.users import (
    adjust_balance,
    check_reason,
    parse_amount,
    parse_user_ref,
    set_banned,
    user_card,
)
from orbit.marzban.provisioning import PanelDeps
from orbit.settings import Settings


async def balance(db: asyncpg.Pool, user_id: int) -> int:
    return await db.fetchval("SELECT balance_kop FROM users WHERE id = $1", user_id)


async def entries(db: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await db.fetch("SELECT user_id, amount_kop, kind, idempotency_key, note FROM ledger ORDER BY id")
    return [tuple(r) for r in rows]


@pytest.mark.parametrize(
    ("raw", "kopecks"),
    [
        ("100", 10_000),
        ("+100", 10_000),
        ("-50", -5_000),
        ("99.50", 9_950),
        ("-0,5", -50),
        (" 1 000 ", 100_000),
    ],
)
def test_parse_amount(raw: str, kopecks: int) -> None:
    assert parse_amount(raw) == kopecks


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("abc", errors.InvalidAmount),
        ("", errors.InvalidAmount),
        ("1.005", errors.InvalidAmount),
        ("1e5", errors.InvalidAmount),
        ("--5", errors.InvalidAmount),
        ("0", errors.ZeroAmount),
        ("-0.00", errors.ZeroAmount),
        ("1000001", errors.AmountTooLarge),
        ("-99999999", errors.AmountTooLarge),
    ],
)
def test_parse_amount_refuses(raw: str, error: type[errors.AdminError]) -> None:
    with pytest.raises(error):
        parse_amount(raw)


def test_parse_user_ref() -> None:
    assert parse_user_ref(" 12345 ") == 12345
    assert parse_user_ref("@Ann_1") == "Ann_1"
    assert parse_user_ref("ann_1") == "ann_1"
    for bad in ("0", "@", "@a b", "-5", "9" * 20, "<b>", "@_x"):
        with pytest.raises(errors.InvalidUserRef):
            parse_user_ref(bad)


async def test_adjustment_is_idempotent_and_noted(db: asyncpg.Pool) -> None:
    await db.execute("INSERT INTO users (id) VALUES (1)")
    first = await adjust_balance(db, 1, 15_000, reason="  refund for\nticket 7 ", actor="42", action_key="a1")
    assert (first.amount_kop, first.balance_after_kop, first.replayed) == (15_000, 15_000, False)
    again = await adjust_balance(db, 1, 15_000, reason="refund for ticket 7", actor="42", action_key="a1")
    assert again.replayed and again.entry_id == first.entry_id
    assert await balance(db, 1) == 15_000
    debit = await adjust_balance(db, 1, -5_000, reason="typo", actor="cli:root", action_key="a2")
    assert debit.balance_after_kop == 10_000
    assert await entries(db) == [
        (1, 15_000, "adjustment", "adjustment:a1", "admin 42: refund for ticket 7"),
        (1, -5_000, "adjustment", "adjustment:a2", "cli:root: typo"),
    ]


async def test_adjustment_refusals_change_nothing(db: asyncpg.Pool) -> None:
    await db.execute("INSERT INTO users (id, balance_kop) VALUES (1, 0)")
    async with db.acquire() as conn, conn.transaction():
        await ledger.credit(conn, 1, 3_000, "topup", "t1")
    before = await entries(db)

    with pytest.raises(errors.WouldGoNegative) as refused:
        await adjust_balance(db, 1, -3_001, reason="x", actor="42", action_key="n1")
    assert str(refused.value) == "refused: user 1 has 30 RUB, cannot take 30.01 RUB"
    assert refused.value.params == {"balance": "30", "needed": "30.01"}
    with pytest.raises(errors.UserNotFound):
        await adjust_balance(db, 2, 100, reason="x", actor="42", action_key="n2")
    with pytest.raises(errors.EmptyReason):
        await adjust_balance(db, 1, 100, reason=" \n ", actor="42", action_key="n3")
    with pytest.raises(errors.ZeroAmount):
        await adjust_balance(db, 1, 0, reason="x", actor="42", action_key="n4")
    with pytest.raises(errors.AmountTooLarge):
        await adjust_balance(db, 1, 100_000_001, reason="x", actor="42", action_key="n5")
    with pytest.raises(errors.EmptyReason):
        check_reason("x" * 201)

    assert await entries(db) == before
    assert await balance(db, 1) == 3_000
    # The refused key was not used up: the same action succeeds once the money is there.
    ok = await adjust_balance(db, 1, -3_000, reason="x", actor="42", action_key="n1")
    assert ok.balance_after_kop == 0 and not ok.replayed


async def test_user_card(db: asyncpg.Pool) -> None:
    await db.execute(
        "INSERT INTO marzban_instances (id, name, base_url, username, password)"
        " VALUES ('p1', 'p1', 'http://127.0.0.1:9', 'a', 'a')"
    )
    await db.execute(
        "INSERT INTO users (id, username, first_name, subscription_until)"
        " VALUES (7, 'Ann_Smith', 'Ann', now() + interval '3 days')"
    )
    await db.execute("INSERT INTO users (id, username) VALUES (8, 'bob')")
    for n in range(12):
        await adjust_balance(db, 7, 100 + n, reason=f"r{n}", actor="42", action_key=f"k{n}")
    for n in range(7):
        await db.execute(
            "INSERT INTO payments (user_id, method, amount_kop, currency, currency_amount, expires_at)"
            " VALUES (7, 'stars', $1, 'XTR', 1, now())",
            1000 + n,
        )
    await db.execute(
        "INSERT INTO configs (user_id, instance_id, panel_username, name, status)"
        " VALUES (7, 'p1', 'u7a', 'Phone', 'active'), (8, 'p1', 'u8a', 'Laptop', 'active')"
    )

    by_name = await user_card(db, "ann_smith")
    by_id = await user_card(db, 7)
    assert by_name.profile == by_id.profile
    card = by_id
    assert (card.profile.id, card.profile.username, card.profile.balance_kop) == (7, "Ann_Smith", 1266)
    assert [c.name for c in card.configs] == ["Phone"]
    assert [p.amount_kop for p in card.payments] == [1006, 1005, 1004, 1003, 1002]
    assert [e.note for e in card.ledger][:2] == ["admin 42: r11", "admin 42: r10"] and len(card.ledger) == 10

    for missing in (9, "nobody"):
        with pytest.raises(errors.UserNotFound):
            await user_card(db, missing)


async def test_ban_and_unban(db: asyncpg.Pool, redis: Redis, settings: Settings) -> None:
    async with aiohttp.ClientSession() as http:
        await _ban_and_unban(db, PanelDeps(db, redis, http, settings))


async def _ban_and_unban(db: asyncpg.Pool, deps: PanelDeps) -> None:
    await db.execute("INSERT INTO users (id) VALUES (1), (2)")
    assert await set_banned(deps, 1, True, actor="9", admin_ids=(2,)) is True
    assert await set_banned(deps, 1, True, actor="9", admin_ids=(2,)) is False
    assert await db.fetchval("SELECT is_banned FROM users WHERE id = 1") is True
    with pytest.raises(errors.CannotBanAdmin):
        await set_banned(deps, 2, True, actor="9", admin_ids=(2,))
    with pytest.raises(errors.UserNotFound):
        await set_banned(deps, 3, True, actor="9")
    assert await set_banned(deps, 1, False, actor="9") is True
    assert await db.fetchval("SELECT count(*) FROM users WHERE is_banned") == 0
