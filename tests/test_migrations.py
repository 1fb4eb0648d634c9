"""Migrations: reversible, matching the metadata, and enforced at start-up."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory

from orbit.migrate import alembic_config, current_revision, downgrade, upgrade
from orbit.schema import SCHEMA_HEAD
from tests.conftest import create_database, drop_database
from tests.support.processes import run_to_exit


def test_schema_head_is_alembics_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused/x"))
    assert script.get_heads() == [SCHEMA_HEAD]


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade_and_no_drift() -> None:
    name = f"orbit_mig_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(name)
    try:
        await asyncio.to_thread(upgrade, dsn)
        assert {"users", "ledger", "payments", "configs", "outbox"} <= await _tables(dsn)
        await asyncio.to_thread(downgrade, dsn, "base")
        assert await _tables(dsn) == {"alembic_version"}
        await asyncio.to_thread(upgrade, dsn)
        from alembic import command

        # The migrations produce exactly what orbit/schema.py describes.
        await asyncio.to_thread(command.check, alembic_config(dsn))
        conn = await asyncpg.connect(dsn)
        try:
            assert await current_revision(conn) == SCHEMA_HEAD
        finally:
            await conn.close()
    finally:
        await drop_database(name)


async def test_ledger_is_append_only_and_balance_cannot_go_negative(db: asyncpg.Pool) -> None:
    await db.execute("INSERT INTO users (id) VALUES (1)")
    await db.execute(
        "INSERT INTO ledger (user_id, amount_kop, balance_after_kop, kind, idempotency_key)"
        " VALUES (1, 100, 100, 'adjustment', 'k1')"
    )
    for statement in ("UPDATE ledger SET amount_kop = 5", "DELETE FROM ledger"):
        try:
            await db.execute(statement)
        except asyncpg.RestrictViolationError as exc:
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{statement} was allowed")
    try:
        await db.execute("UPDATE users SET balance_kop = -1 WHERE id = 1")
    except asyncpg.CheckViolationError as exc:
        assert exc.constraint_name == "ck_users_balance_non_negative"
    else:
        raise AssertionError("negative balance was allowed")
    try:
        await db.execute(
            "INSERT INTO ledger (user_id, amount_kop, balance_after_kop, kind, idempotency_key)"
            " VALUES (1, 100, 200, 'adjustment', 'k1')"
        )
    except asyncpg.UniqueViolationError as exc:
        assert exc.constraint_name == "uq_ledger_idempotency_key"
    else:
        raise AssertionError("duplicate idempotency key was allowed")


async def test_process_refuses_a_schema_that_is_behind(
    base_env: dict[str, str], log_dir: Path
) -> None:
    name = f"orbit_behind_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(name)
    try:
        code, out = await run_to_exit("janitor", {**base_env, "DATABASE_URL": dsn}, log_dir)
    finally:
        await drop_database(name)
    assert code == 3
    expected = f"database schema is at nothing, this code needs {SCHEMA_HEAD}: run `orbit migrate`"
    assert expected in out
