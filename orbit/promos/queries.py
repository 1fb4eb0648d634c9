"""Promo code SQL. Functions take a connection first and never commit."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

_COLUMNS = "code, kind, value, max_uses, uses, expires_at, is_active, created_by, created_at"


class PromoRow(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    kind: str  # balance (value in kopecks) or days
    value: int
    max_uses: int | None  # None = unlimited
    uses: int
    expires_at: datetime | None
    is_active: bool
    created_by: int | None
    created_at: datetime


INSERT = f"""
INSERT INTO promocodes (code, kind, value, max_uses, expires_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING {_COLUMNS}
"""
SELECT_ONE = f"SELECT {_COLUMNS} FROM promocodes WHERE code = $1"
# An admin's change reads the row it is about to change under its lock (the audit's "before").
SELECT_FOR_UPDATE = f"SELECT {_COLUMNS} FROM promocodes WHERE code = $1 FOR UPDATE"
LIST = f"""
SELECT {_COLUMNS} FROM promocodes
WHERE $1 OR (is_active AND (expires_at IS NULL OR expires_at > orbit_now())
             AND (max_uses IS NULL OR uses < max_uses))
ORDER BY created_at DESC, code
"""
DISABLE = f"UPDATE promocodes SET is_active = false WHERE code = $1 RETURNING {_COLUMNS}"

# The code and whether this user has activated it already, in one round trip.
FOR_USER = f"""
SELECT {_COLUMNS}, orbit_now() AS now,
       EXISTS (SELECT 1 FROM promocode_activations a WHERE a.code = p.code AND a.user_id = $2) AS used
FROM promocodes p WHERE p.code = $1
"""
# The (code, user) primary key makes a second activation by the same user a no-op;
# a concurrent one waits for the first to commit and then finds its row.
INSERT_ACTIVATION = """
INSERT INTO promocode_activations (code, user_id) VALUES ($1, $2)
ON CONFLICT (code, user_id) DO NOTHING
RETURNING code
"""
# Takes one use only while the code is usable. Two users racing for the last use
# both reach this row; the second waits for the first's commit, re-checks the
# WHERE on the updated row and gets nothing.
CLAIM_USE = """
UPDATE promocodes SET uses = uses + 1
WHERE code = $1 AND is_active AND (expires_at IS NULL OR expires_at > orbit_now())
  AND (max_uses IS NULL OR uses < max_uses)
RETURNING kind, value
"""


def _row(record: asyncpg.Record) -> PromoRow:
    return PromoRow(**{name: record[name] for name in PromoRow.__struct_fields__})


async def insert(
    conn: asyncpg.Connection | asyncpg.Pool,
    code: str,
    kind: str,
    value: int,
    max_uses: int | None,
    expires_at: datetime | None,
    created_by: int | None,
) -> PromoRow:
    record = await conn.fetchrow(INSERT, code, kind, value, max_uses, expires_at, created_by)
    assert record is not None
    return _row(record)


async def get(conn: asyncpg.Connection | asyncpg.Pool, code: str) -> PromoRow | None:
    record = await conn.fetchrow(SELECT_ONE, code)
    return None if record is None else _row(record)


async def get_for_update(conn: asyncpg.Connection, code: str) -> PromoRow | None:
    record = await conn.fetchrow(SELECT_FOR_UPDATE, code)
    return None if record is None else _row(record)


async def list_codes(conn: asyncpg.Connection | asyncpg.Pool, include_unusable: bool) -> list[PromoRow]:
    return [_row(r) for r in await conn.fetch(LIST, include_unusable)]


async def disable(conn: asyncpg.Connection | asyncpg.Pool, code: str) -> PromoRow | None:
    record = await conn.fetchrow(DISABLE, code)
    return None if record is None else _row(record)


async def for_user(
    conn: asyncpg.Connection, code: str, user_id: int
) -> tuple[PromoRow, datetime, bool] | None:
    """(the code, the database's now, whether the user activated it) or None."""
    record = await conn.fetchrow(FOR_USER, code, user_id)
    if record is None:
        return None
    return _row(record), record["now"], record["used"]


async def insert_activation(conn: asyncpg.Connection, code: str, user_id: int) -> bool:
    return await conn.fetchval(INSERT_ACTIVATION, code, user_id) is not None


async def claim_use(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(CLAIM_USE, code)
