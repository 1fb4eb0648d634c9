"""`orbit audit` as an operator runs it: a real process against the test database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
import pytest

from orbit import ledger
from orbit.cli.main import build_parser
from orbit.i18n import Translator
from orbit.payments import service
from orbit.settings import Settings
from tests.payments_core.conftest import orbit_cli

MakeUser = Callable[..., Awaitable[int]]


async def orbit_audit(env: dict[str, str], *args: str) -> tuple[int, str]:
    return await orbit_cli(env, "audit", *args)


async def test_audit_passes_then_names_every_mismatch(
    db: asyncpg.Pool,
    base_env: dict[str, str],
    make_user: MakeUser,
    translator: Translator,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for user_id in (1, 2, 3):
        await make_user(user_id)
    async with db.acquire() as conn, conn.transaction():
        payment = await service.create_payment(
            conn, 1, "stars", 10_000, "XTR", 75, service.payment_expires_at(settings)
        )
        await service.confirm_payment(conn, translator, payment.id, credited_kop=10_000, settings=settings)
        await ledger.debit(conn, 1, 4_000, "purchase", "buy:1")
        await ledger.credit(conn, 2, 500, "promo", "promo:X:2")

    parsed = build_parser().parse_args(["audit"])  # in-process: the same `run`, faster
    assert await parsed.func(parsed, settings) == 0
    assert "audited 3 users: all balances match the ledger" in capsys.readouterr().out

    # Someone "fixes" balances by hand, and a payment claims a credit it never got.
    await db.execute("UPDATE users SET balance_kop = balance_kop + 100 WHERE id = 2")
    await db.execute("UPDATE users SET balance_kop = 999 WHERE id = 3")
    await db.execute("UPDATE payments SET credited_kop = 20000 WHERE id = $1", payment.id)
    code, out = await orbit_audit(base_env)
    assert code == 1, out
    lines = out.strip().splitlines()
    assert any(line.startswith("balance") and "user 2" in line and "balance 6, ledger 5" in line
               for line in lines)
    assert any("user 3" in line and "ledger 0" in line for line in lines)
    assert any(line.startswith("last_entry") and "user 2" in line for line in lines)
    assert any(line.startswith("payment") and f"payment {payment.id}" in line for line in lines)
    assert lines[-1] == "audited 3 users: 4 mismatch(es)"

    parsed = build_parser().parse_args(["audit", "--json"])  # in-process: the same `run`, faster
    assert await parsed.func(parsed, settings) == 1
    report = msgspec.json.decode(capsys.readouterr().out)
    assert report["ok"] is False and report["users"] == 3 and len(report["mismatches"]) == 4


async def test_a_negative_balance_is_a_mismatch(
    db: asyncpg.Pool, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CHECK makes this impossible through SQL; prove the audit would still say so.
    await db.execute("ALTER TABLE users DROP CONSTRAINT ck_users_balance_non_negative")
    try:
        await db.execute("INSERT INTO users (id, balance_kop) VALUES (1, -5)")
        parsed = build_parser().parse_args(["audit"])
        assert await parsed.func(parsed, settings) == 1
        assert "negative balance" in capsys.readouterr().out
    finally:
        await db.execute("DELETE FROM users")
        await db.execute(
            "ALTER TABLE users ADD CONSTRAINT ck_users_balance_non_negative CHECK (balance_kop >= 0)"
        )
