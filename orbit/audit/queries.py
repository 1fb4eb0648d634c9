"""Audit-trail SQL. Functions take a connection first and never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

# A row with a key already used is not written (None): that action was done before.
INSERT = """
INSERT INTO admin_audit (actor, action, target_user_id, target, before, after, action_key)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (action_key) DO NOTHING
RETURNING id
"""
BY_KEY = """
SELECT id, at, actor, action, target_user_id, target, before, after
FROM admin_audit WHERE action_key = $1
"""

# Latest first. A NULL filter matches everything; `$3` is a LIKE prefix for an
# actor family (`cli:` = every command-line user). Each filter has its own index.
LATEST = """
SELECT id, at, actor, action, target_user_id, target, before, after
FROM admin_audit
WHERE ($1::bigint IS NULL OR target_user_id = $1)
  AND ($2::text IS NULL OR actor = $2)
  AND ($3::text IS NULL OR actor LIKE $3 || '%')
ORDER BY at DESC, id DESC
LIMIT $4
"""


class Entry(msgspec.Struct, frozen=True):
    id: int
    at: datetime
    actor: str
    action: str
    target_user_id: int | None
    target: str | None
    before: Any
    after: Any


async def insert(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    target_user_id: int | None,
    target: str | None,
    before: Any,
    after: Any,
    action_key: str | None,
) -> int | None:
    return await conn.fetchval(INSERT, actor, action, target_user_id, target, before, after, action_key)


async def by_key(conn: asyncpg.Connection | asyncpg.Pool, action_key: str) -> Entry | None:
    record = await conn.fetchrow(BY_KEY, action_key)
    return None if record is None else Entry(**dict(record))


async def latest(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    user_id: int | None,
    actor: str | None,
    actor_prefix: str | None,
    limit: int,
) -> list[Entry]:
    rows = await conn.fetch(LATEST, user_id, actor, actor_prefix, limit)
    return [Entry(**dict(r)) for r in rows]
