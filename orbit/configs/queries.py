"""Config SQL. Functions take a connection first and never commit; callers own
the transaction. `panel_removals` lives here too: it is the list of panel users
that no config may point at any more (see orbit/schema.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import asyncpg
import msgspec

_CONFIG_COLUMNS = """
    c.id, c.user_id, c.instance_id, c.panel_username, c.name, c.subscription_url,
    c.data_limit_bytes, c.status, c.needs_sync, c.last_error,
    c.created_at, c.updated_at, c.deleted_at, c.usage_reset_due, c.usage_carried_bytes,
    c.expired_at, c.retired_at, c.revived_from, c.data_limit_reset_strategy,
    c.usage_bytes, c.usage_read_at, c.usage_period
"""

INSERT_PENDING = f"""
INSERT INTO configs AS c (
    user_id, instance_id, panel_username, name, data_limit_bytes, data_limit_reset_strategy,
    revived_from
)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {_CONFIG_COLUMNS}
"""
SELECT_ONE = f"SELECT {_CONFIG_COLUMNS} FROM configs c WHERE c.id = $1"
# A config with what its panel user needs from the owner: expiry and language.
SELECT_FOR_PANEL = f"""
SELECT {_CONFIG_COLUMNS}, u.subscription_until, u.language, u.is_banned
FROM configs c JOIN users u ON u.id = c.user_id
WHERE c.id = $1
"""
# Point a config at the instance that now holds its panel user. `$4` is the
# instance the caller read: a config moved meanwhile is left alone (no row).
MARK_PLACED = f"""
UPDATE configs AS c SET
    instance_id = $2,
    subscription_url = $3,
    usage_carried_bytes = coalesce($5, c.usage_carried_bytes),
    status = CASE WHEN c.status = 'pending' THEN 'active' ELSE c.status END,
    last_error = NULL,
    updated_at = now()
WHERE c.id = $1 AND c.instance_id = $4 AND c.deleted_at IS NULL
RETURNING {_CONFIG_COLUMNS}
"""
SET_SUBSCRIPTION_URL = """
UPDATE configs SET subscription_url = $2, updated_at = now() WHERE id = $1
"""
SET_STATUS = f"""
UPDATE configs AS c SET status = $2, updated_at = now()
WHERE c.id = $1 AND c.deleted_at IS NULL
RETURNING {_CONFIG_COLUMNS}
"""
MARK_DELETED = f"""
UPDATE configs AS c SET status = 'deleted', deleted_at = coalesce(c.deleted_at, now()),
    updated_at = now()
WHERE c.id = $1
RETURNING {_CONFIG_COLUMNS}
"""
# The panel may differ from the row: the janitor's repair will reconcile it.
MARK_NEEDS_SYNC = """
UPDATE configs SET needs_sync = true, last_error = $2, updated_at = now() WHERE id = $1
"""
MARK_SYNCED = """
UPDATE configs SET needs_sync = false, last_error = NULL, updated_at = now() WHERE id = $1
"""
SET_LAST_ERROR = "UPDATE configs SET last_error = $2, updated_at = now() WHERE id = $1"
# The panel's usage was zeroed: nothing used this period is carried any more, and a
# new traffic period starts (a read from before the reset must not land after it).
USAGE_WAS_RESET = """
UPDATE configs SET usage_reset_due = false, usage_carried_bytes = 0, updated_at = now(),
    usage_bytes = 0, usage_read_at = orbit_now(), usage_period = usage_period + 1
WHERE id = $1
"""
# What the panels reported, read at `$3` (the janitor's pages, a config's own screen).
# Newer reads only, so an older read never wins; less used than before = the panel
# reset it: a new period (orbit/subscriptions/traffic.py).
STORE_USAGE = """
UPDATE configs c SET
    usage_period = c.usage_period + (c.usage_bytes IS NOT NULL AND v.used < c.usage_bytes)::int,
    usage_bytes = v.used,
    usage_read_at = $3
FROM unnest($1::bigint[], $2::bigint[]) AS v(id, used)
WHERE c.id = v.id AND (c.usage_read_at IS NULL OR c.usage_read_at <= $3)
RETURNING c.id, c.usage_period
"""
LIVE_IDS_ON_INSTANCE = """
SELECT id FROM configs WHERE instance_id = $1 AND deleted_at IS NULL ORDER BY id
"""

INSERT_REMOVAL = """
INSERT INTO panel_removals (instance_id, panel_username, config_id)
VALUES ($1, $2, $3)
ON CONFLICT (instance_id, panel_username) DO NOTHING
"""
DELETE_REMOVAL = "DELETE FROM panel_removals WHERE instance_id = $1 AND panel_username = $2"
REMOVAL_FAILED = """
UPDATE panel_removals SET attempts = attempts + 1, last_error = $3
WHERE instance_id = $1 AND panel_username = $2
"""
# Due = no live config points at that instance with that username any more.
_DUE = """
NOT EXISTS (
    SELECT 1 FROM configs c
    WHERE c.id = r.config_id AND c.instance_id = r.instance_id AND c.deleted_at IS NULL
)
"""
REMOVALS_DUE = f"""
SELECT r.instance_id, r.panel_username, r.config_id, r.attempts
FROM panel_removals r
WHERE ($1::text[] IS NULL OR r.instance_id = ANY($1::text[])) AND {_DUE}
ORDER BY r.attempts, r.created_at
LIMIT $2
"""
REMOVAL_IS_DUE = f"""
SELECT EXISTS (
    SELECT 1 FROM panel_removals r
    WHERE r.instance_id = $1 AND r.panel_username = $2 AND {_DUE}
)
"""
REMOVAL_INSTANCES_OF_CONFIG = """
SELECT instance_id FROM panel_removals WHERE config_id = $1 ORDER BY created_at DESC
"""
COUNT_REMOVALS = "SELECT count(*) FROM panel_removals WHERE instance_id = $1"
# An instance's public subscription base changed: stored links move to the new one.
# Links the panel made absolute itself (XRAY_SUBSCRIPTION_URL_PREFIX) do not match.
REBASE_LINKS = """
UPDATE configs SET subscription_url = $3 || substr(subscription_url, length($2) + 1),
    updated_at = now()
WHERE instance_id = $1 AND deleted_at IS NULL AND starts_with(subscription_url, $2 || '/sub/')
"""
COUNT_REMOVALS_ALL = "SELECT instance_id, count(*) AS n FROM panel_removals GROUP BY instance_id"


class ConfigRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    user_id: int
    instance_id: str
    panel_username: str
    name: str
    subscription_url: str | None
    data_limit_bytes: int
    status: str  # pending, active, disabled, deleting, deleted
    needs_sync: bool
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    usage_reset_due: bool = False  # a renewal asked for the panel's usage to be zeroed
    usage_carried_bytes: int = 0  # used on earlier panels this period (drains)
    expired_at: datetime | None = None  # its panel user was stopped at the subscription's end
    retired_at: datetime | None = None  # deleted from its panel after the grace (history)
    revived_from: int | None = None  # the retired config a renewal made this one for
    data_limit_reset_strategy: str = "no_reset"  # Marzban's, from the plan
    usage_bytes: int | None = None  # used traffic the panel reported last (None: never read)
    usage_read_at: datetime | None = None
    usage_period: int = 0  # traffic resets seen; keys the 90 %/100 % notices

    @property
    def is_live(self) -> bool:
        return self.deleted_at is None and self.status not in ("deleting", "deleted")


class PanelTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A config and what its panel user takes from the owner."""

    config: ConfigRecord
    subscription_until: datetime | None
    language: str
    owner_banned: bool = False  # a banned user's panel users are disabled, whatever the row says


class Removal(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    panel_username: str
    config_id: int
    attempts: int


def _record(row: asyncpg.Record) -> ConfigRecord:
    return ConfigRecord(**{name: row[name] for name in ConfigRecord.__struct_fields__})


async def insert_pending(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: int,
    instance_id: str,
    panel_username: str,
    name: str,
    data_limit_bytes: int = 0,
    reset_strategy: str = "no_reset",
    revived_from: int | None = None,
) -> ConfigRecord:
    """A new config in status `pending` on a provisional instance (see provision_config)."""
    row = await conn.fetchrow(
        INSERT_PENDING, user_id, instance_id, panel_username, name, data_limit_bytes,
        reset_strategy, revived_from,
    )  # fmt: skip
    assert row is not None
    return _record(row)


async def get_config(conn: asyncpg.Connection | asyncpg.Pool, config_id: int) -> ConfigRecord | None:
    row = await conn.fetchrow(SELECT_ONE, config_id)
    return None if row is None else _record(row)


async def get_for_panel(
    conn: asyncpg.Connection | asyncpg.Pool, config_id: int
) -> PanelTarget | None:
    row = await conn.fetchrow(SELECT_FOR_PANEL, config_id)
    if row is None:
        return None
    return PanelTarget(
        config=_record(row),
        subscription_until=row["subscription_until"],
        language=row["language"],
        owner_banned=row["is_banned"],
    )


async def mark_placed(
    conn: asyncpg.Connection,
    config_id: int,
    instance_id: str,
    subscription_url: str,
    expected_instance_id: str,
    usage_carried_bytes: int | None = None,
) -> ConfigRecord | None:
    row = await conn.fetchrow(
        MARK_PLACED, config_id, instance_id, subscription_url, expected_instance_id,
        usage_carried_bytes,
    )  # fmt: skip
    return None if row is None else _record(row)


async def set_subscription_url(conn: asyncpg.Connection, config_id: int, url: str) -> None:
    await conn.execute(SET_SUBSCRIPTION_URL, config_id, url)


async def set_status(conn: asyncpg.Connection, config_id: int, status: str) -> ConfigRecord | None:
    row = await conn.fetchrow(SET_STATUS, config_id, status)
    return None if row is None else _record(row)


async def mark_deleted(conn: asyncpg.Connection, config_id: int) -> ConfigRecord | None:
    row = await conn.fetchrow(MARK_DELETED, config_id)
    return None if row is None else _record(row)


async def mark_needs_sync(conn: asyncpg.Connection, config_id: int, error: str) -> None:
    await conn.execute(MARK_NEEDS_SYNC, config_id, error[:1000])


async def mark_synced(conn: asyncpg.Connection, config_id: int) -> None:
    await conn.execute(MARK_SYNCED, config_id)


async def usage_was_reset(conn: asyncpg.Connection, config_id: int) -> None:
    await conn.execute(USAGE_WAS_RESET, config_id)


async def store_usage(
    conn: asyncpg.Connection | asyncpg.Pool, used: Mapping[int, int], read_at: datetime
) -> dict[int, int]:
    """Store `used` (config id -> bytes this period, all panels) as read at `read_at`
    (the clock before the panel was asked); the configs stored, with their period.
    A config already holding a later read is left out."""
    ids = list(used)
    rows = await conn.fetch(STORE_USAGE, ids, [used[i] for i in ids], read_at)
    return {r["id"]: r["usage_period"] for r in rows}


async def set_last_error(conn: asyncpg.Connection, config_id: int, error: str | None) -> None:
    await conn.execute(SET_LAST_ERROR, config_id, None if error is None else error[:1000])


async def live_ids_on_instance(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str
) -> list[int]:
    return [r["id"] for r in await conn.fetch(LIVE_IDS_ON_INSTANCE, instance_id)]


async def insert_removal(
    conn: asyncpg.Connection, instance_id: str, panel_username: str, config_id: int
) -> None:
    await conn.execute(INSERT_REMOVAL, instance_id, panel_username, config_id)


async def delete_removal(conn: asyncpg.Connection, instance_id: str, panel_username: str) -> None:
    await conn.execute(DELETE_REMOVAL, instance_id, panel_username)


async def removal_failed(
    conn: asyncpg.Connection, instance_id: str, panel_username: str, error: str
) -> None:
    await conn.execute(REMOVAL_FAILED, instance_id, panel_username, error[:1000])


async def removals_due(
    conn: asyncpg.Connection | asyncpg.Pool,
    instance_ids: Collection[str] | None,
    limit: int,
) -> list[Removal]:
    ids = None if instance_ids is None else sorted(instance_ids)
    rows = await conn.fetch(REMOVALS_DUE, ids, limit)
    return [
        Removal(
            instance_id=r["instance_id"],
            panel_username=r["panel_username"],
            config_id=r["config_id"],
            attempts=r["attempts"],
        )
        for r in rows
    ]


async def removal_is_due(conn: asyncpg.Connection, instance_id: str, panel_username: str) -> bool:
    return bool(await conn.fetchval(REMOVAL_IS_DUE, instance_id, panel_username))


async def removal_instances_of_config(conn: asyncpg.Connection, config_id: int) -> list[str]:
    return [r["instance_id"] for r in await conn.fetch(REMOVAL_INSTANCES_OF_CONFIG, config_id)]


async def count_removals(conn: asyncpg.Connection | asyncpg.Pool, instance_id: str) -> int:
    return int(await conn.fetchval(COUNT_REMOVALS, instance_id))


async def rebase_links(
    conn: asyncpg.Connection, instance_id: str, old_base: str, new_base: str
) -> int:
    """Point the instance's stored `<old_base>/sub/...` links at `new_base`; how many moved."""
    status = await conn.execute(
        REBASE_LINKS, instance_id, old_base.rstrip("/"), new_base.rstrip("/")
    )
    return int(status.split()[-1])


async def removal_counts(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Panel users still listed for removal, per instance."""
    return {r["instance_id"]: r["n"] for r in await conn.fetch(COUNT_REMOVALS_ALL)}


# --- a user's own configs (the bot's configs screens) ---------------------------------

# Serializes config creation per user, so two creates at once cannot pass the limit.
LOCK_OWNER = "SELECT id FROM users WHERE id = $1 FOR UPDATE"
# Live configs count against the plan's limit; `ever` numbers the default labels.
COUNT_OF_USER = """
SELECT count(*) FILTER (WHERE deleted_at IS NULL) AS live, count(*) AS ever
FROM configs WHERE user_id = $1
"""
# Deleted ones included: a create-delete loop costs the panels as much as keeping them.
MADE_IN_LAST_DAY = """
SELECT count(*) FROM configs WHERE user_id = $1 AND created_at > now() - interval '1 day'
"""
LIST_OF_USER = f"""
SELECT {_CONFIG_COLUMNS} FROM configs c
WHERE c.user_id = $1 AND c.deleted_at IS NULL
ORDER BY c.id
"""
# Every lookup from a button names the owner: another user's id finds nothing.
SELECT_OWNED = f"""
SELECT {_CONFIG_COLUMNS} FROM configs c
WHERE c.id = $1 AND c.user_id = $2 AND c.deleted_at IS NULL
"""
# Clears the flag a new config is inserted with, unless something touched the row
# since provisioning returned it (a purchase flagging it for sync, say).
CLEAR_NEEDS_SYNC_IF_UNCHANGED = """
UPDATE configs SET needs_sync = false WHERE id = $1 AND updated_at = $2
"""
RENAME_OWNED = f"""
UPDATE configs AS c SET name = $3, updated_at = now()
WHERE c.id = $1 AND c.user_id = $2 AND c.deleted_at IS NULL
RETURNING {_CONFIG_COLUMNS}
"""


async def lock_owner(conn: asyncpg.Connection, user_id: int) -> bool:
    """Lock the user's row until the transaction ends; False for an unknown user."""
    return await conn.fetchval(LOCK_OWNER, user_id) is not None


async def count_of_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> tuple[int, int]:
    """(live configs, configs ever made) of a user."""
    row = await conn.fetchrow(COUNT_OF_USER, user_id)
    assert row is not None
    return int(row["live"]), int(row["ever"])


async def made_in_last_day(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> int:
    """Configs the user created in the last 24 hours, deleted ones included."""
    return int(await conn.fetchval(MADE_IN_LAST_DAY, user_id))


async def list_of_user(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> list[ConfigRecord]:
    return [_record(r) for r in await conn.fetch(LIST_OF_USER, user_id)]


async def get_owned(
    conn: asyncpg.Connection | asyncpg.Pool, config_id: int, user_id: int
) -> ConfigRecord | None:
    row = await conn.fetchrow(SELECT_OWNED, config_id, user_id)
    return None if row is None else _record(row)


async def clear_needs_sync_if_unchanged(
    conn: asyncpg.Connection | asyncpg.Pool, config_id: int, updated_at: datetime
) -> None:
    await conn.execute(CLEAR_NEEDS_SYNC_IF_UNCHANGED, config_id, updated_at)


async def rename_owned(
    conn: asyncpg.Connection | asyncpg.Pool, config_id: int, user_id: int, name: str
) -> ConfigRecord | None:
    row = await conn.fetchrow(RENAME_OWNED, config_id, user_id, name)
    return None if row is None else _record(row)
