"""Audit-trail SQL. Functions take a connection first and never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

INSERT = """
INSERT INTO admin_audit (actor, action, target_user_id, target, before, after)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
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
) -> int:
    return await conn.fetchval(INSERT, actor, action, target_user_id, target, before, after)


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
