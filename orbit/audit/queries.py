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

# Latest first (ids grow with time). Each filter is added only when given, so every
# combination is its own statement and each is served by its index: the primary
# key, (target_user_id, id), (actor, id). `cli:` as a prefix: every command-line user.
LATEST_SELECT = "SELECT id, at, actor, action, target_user_id, target, before, after FROM admin_audit"
BY_USER = "target_user_id = $%d"
BY_ACTOR = "actor = $%d"
BY_ACTOR_PREFIX = "actor LIKE $%d || '%%'"


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
    conditions: list[str] = []
    args: list[object] = []
    for fragment, value in ((BY_USER, user_id), (BY_ACTOR, actor), (BY_ACTOR_PREFIX, actor_prefix)):
        if value is not None:
            args.append(value)
            conditions.append(fragment % len(args))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    args.append(limit)
    rows = await conn.fetch(f"{LATEST_SELECT}{where} ORDER BY id DESC LIMIT ${len(args)}", *args)
    return [Entry(**dict(r)) for r in rows]
