"""The panel reconciliation's SQL (orbit/marzban/reconcile.py): what the rows say about
one page of a panel's users, the configs a panel lost, and the strangers it holds."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec

from orbit.configs.queries import _CONFIG_COLUMNS, ConfigRecord, PanelTarget, _record

# A row whose panel user must be gone: deleted, being deleted, or retired after its
# grace (orbit/subscriptions/expiry.py marks a retired row `deleted`): such a config is
# never re-created, and a lingering user is removed.
GONE = "(c.deleted_at IS NOT NULL OR c.status IN ('deleting', 'deleted'))"

# Every row naming one of the page's usernames, whatever its instance: a user of a
# config that moved elsewhere is known (its removal is queued), not a stranger.
ROWS_FOR_PAGE = f"""
SELECT {_CONFIG_COLUMNS}, {GONE} AS gone, u.subscription_until, u.language, u.is_banned
FROM configs c JOIN users u ON u.id = c.user_id
WHERE c.panel_username = ANY($1::text[])
"""
LISTED_FOR_REMOVAL = """
SELECT panel_username FROM panel_removals
WHERE instance_id = $1 AND panel_username = ANY($2::text[])
"""
# Placed configs of the instance whose user the panel did not list: re-created.
# Pending rows are the drift repair's (their user may not exist yet by design).
MISSING_ON_INSTANCE = f"""
SELECT c.id FROM configs c
WHERE c.instance_id = $1 AND c.status IN ('active', 'disabled') AND NOT {GONE}
  AND c.created_at < $3
  AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) AS seen(name) WHERE seen.name = c.panel_username)
ORDER BY c.id
"""
SEEN_STRANGER = """
INSERT INTO panel_strangers AS s (instance_id, panel_username, status, note, first_seen_at, last_seen_at)
VALUES ($1, $2, $3, $4, orbit_now(), orbit_now())
ON CONFLICT (instance_id, panel_username)
DO UPDATE SET status = excluded.status, note = excluded.note, last_seen_at = excluded.last_seen_at
"""
# After a complete pass over the panel: strangers not seen in it are gone.
FORGET_STRANGERS_BEFORE = """
DELETE FROM panel_strangers WHERE instance_id = $1 AND last_seen_at < $2
"""
FORGET_STRANGER = "DELETE FROM panel_strangers WHERE instance_id = $1 AND panel_username = $2"
LIST_STRANGERS = """
SELECT instance_id, panel_username, status, note, first_seen_at, last_seen_at
FROM panel_strangers WHERE instance_id = $1
ORDER BY panel_username
"""


class PageRow(msgspec.Struct, frozen=True, kw_only=True):
    target: PanelTarget  # the config and what its panel user takes from the owner
    gone: bool

    @property
    def config(self) -> ConfigRecord:
        return self.target.config


class Stranger(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    panel_username: str
    status: str
    note: str | None
    first_seen_at: datetime
    last_seen_at: datetime


def _page_row(row: asyncpg.Record) -> PageRow:
    target = PanelTarget(
        config=_record(row),
        subscription_until=row["subscription_until"],
        language=row["language"],
        owner_banned=row["is_banned"],
    )
    return PageRow(target=target, gone=row["gone"])


async def rows_for_page(conn: asyncpg.Connection | asyncpg.Pool, usernames: list[str]) -> list[PageRow]:
    return [_page_row(r) for r in await conn.fetch(ROWS_FOR_PAGE, usernames)]


async def listed_for_removal(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, usernames: list[str]
) -> set[str]:
    rows = await conn.fetch(LISTED_FOR_REMOVAL, instance_id, usernames)
    return {r["panel_username"] for r in rows}


async def missing_on_instance(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, seen: list[str], before: datetime
) -> list[int]:
    return [r["id"] for r in await conn.fetch(MISSING_ON_INSTANCE, instance_id, seen, before)]


async def seen_stranger(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, username: str, status: str, note: str | None
) -> None:
    await conn.execute(SEEN_STRANGER, instance_id, username, status, note)


async def forget_strangers_before(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, moment: datetime
) -> None:
    await conn.execute(FORGET_STRANGERS_BEFORE, instance_id, moment)


async def forget_stranger(conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, username: str) -> None:
    await conn.execute(FORGET_STRANGER, instance_id, username)


async def list_strangers(conn: asyncpg.Connection | asyncpg.Pool, instance_id: str) -> list[Stranger]:
    return [Stranger(**dict(r)) for r in await conn.fetch(LIST_STRANGERS, instance_id)]
