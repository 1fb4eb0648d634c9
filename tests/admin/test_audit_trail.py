"""The audit trail's core: one row per admin action in the action's own transaction,
append-only, listed latest first by user and by actor, in-process and by `orbit audit-log`."""

from __future__ import annotations

import asyncpg
import msgspec
import pytest

from orbit import audit, clock
from orbit.audit import NotInTransaction
from orbit.cli.errors import CommandError
from orbit.settings import Settings
from tests.admin.test_cli import command
from tests.support.cli import orbit


async def test_a_row_commits_or_vanishes_with_its_transaction(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        async with conn.transaction():
            await audit.record(
                conn, "42", "user.ban", target_user_id=7, before={"banned": False}, after={"banned": True}
            )
        with pytest.raises(RuntimeError, match="rolled back"):
            async with conn.transaction():
                await audit.record(conn, "42", "user.unban", target_user_id=7)
                raise RuntimeError("rolled back")
        # Outside a transaction it refuses, rather than leave a row for a change that may not happen.
        with pytest.raises(NotInTransaction):
            await audit.record(conn, "42", "user.unban", target_user_id=7)
    rows = await db.fetch("SELECT actor, action, target_user_id, before, after FROM admin_audit")
    assert [tuple(r) for r in rows] == [("42", "user.ban", 7, {"banned": False}, {"banned": True})]


async def test_the_trail_is_append_only(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn, conn.transaction():
        await audit.record(conn, "cli:root", "promo.create", target="SPRING")
    for statement in ("UPDATE admin_audit SET actor = 'x'", "DELETE FROM admin_audit"):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await db.execute(statement)
    assert await db.fetchval("SELECT actor FROM admin_audit") == "cli:root"


async def test_outside_text_is_stored_cleaned(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn, conn.transaction():
        await audit.record(
            conn, "1\x00", "balance.adjust", target="a\x00b", after={"reason": "x\x00y", "k\x00": ["\x00"]}
        )
    row = await db.fetchrow("SELECT actor, target, after FROM admin_audit")
    assert "\x00" not in repr(dict(row))


async def test_latest_first_by_user_and_by_actor_at_the_one_clock(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        for actor, user in (("1", 10), ("cli:ann", 10), ("2", 20), ("cli:bob", None)):
            async with conn.transaction():
                await audit.record(conn, actor, "user.ban", target_user_id=user)
            await clock.advance(db, 60)
    everyone = await audit.latest(db)
    assert [e.actor for e in everyone] == ["cli:bob", "2", "cli:ann", "1"]
    assert [e.actor for e in await audit.latest(db, user_id=10)] == ["cli:ann", "1"]
    assert [e.actor for e in await audit.latest(db, actor="cli")] == ["cli:bob", "cli:ann"]
    assert [e.actor for e in await audit.latest(db, actor="2")] == ["2"]
    assert [e.actor for e in await audit.latest(db, limit=1)] == ["cli:bob"]
    # `at` is the one clock's now: the advances show between the rows.
    assert (everyone[0].at - everyone[-1].at).total_seconds() >= 180


async def test_audit_log_command(
    db: asyncpg.Pool, base_env: dict[str, str], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with db.acquire() as conn:
        for actor, user in (("1", 10), ("cli:ann", 10), ("2", 20)):
            async with conn.transaction():
                await audit.record(conn, actor, "user.ban", target_user_id=user, after={"banned": True})
    out = await command(settings, capsys, "audit-log", "--user", "10", "--json")
    assert [(e["actor"], e["target_user_id"]) for e in msgspec.json.decode(out)] == [
        ("cli:ann", 10),
        ("1", 10),
    ]
    out = await command(settings, capsys, "audit-log", "--admin", "cli")
    assert out.count("\n") == 1 and "cli:ann user.ban  user 10" in out
    out = await command(settings, capsys, "audit-log", "--admin", "3")
    assert out == "no audit entries\n"
    for args in (("--user", "@ann"), ("--admin", "<b>"), ("--limit", "0"), ("--user", str(2**64))):
        with pytest.raises(CommandError):
            await command(settings, capsys, "audit-log", *args)
    # As an operator meets it: a real process, exit codes as every other command.
    code, out, err = await orbit(base_env, "audit-log", "--limit", "2", "--json", timeout=120)
    assert (code, err) == (0, "") and [e["actor"] for e in msgspec.json.decode(out)] == ["2", "cli:ann"]
    code, out, err = await orbit(base_env, "audit-log", "--user", "x", timeout=120)
    assert (code, out, err) == (2, "", "orbit audit-log: --user takes a Telegram id, got 'x'\n")
