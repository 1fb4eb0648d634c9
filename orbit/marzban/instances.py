"""The instance registry: `marzban_instances` rows, their SQL and their rules.

Query functions take a connection first and never commit; the callers (the
CLI, the balancer, provisioning) own the transaction.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from urllib.parse import urlsplit

import asyncpg
import msgspec

from orbit.marzban.passwords import PanelPasswords
from orbit.settings import Settings

log = logging.getLogger(__name__)

LEGACY_ID = "s001"
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")  # the table's CHECK, said once more here

_COLUMNS = (
    "id, name, base_url, username, password, is_active, priority, excluded_node_names, sub_url"
)

SELECT_ALL = f"SELECT {_COLUMNS} FROM marzban_instances ORDER BY priority DESC, id"
SELECT_ACTIVE = (
    f"SELECT {_COLUMNS} FROM marzban_instances WHERE is_active ORDER BY priority DESC, id"
)
SELECT_ONE = f"SELECT {_COLUMNS} FROM marzban_instances WHERE id = $1"
# The fallback of `choose_instance` when the balancer's scores are stale.
SELECT_TOP_PRIORITY = """
SELECT id FROM marzban_instances
WHERE is_active AND NOT (id = ANY($1::text[]))
ORDER BY priority DESC, id
LIMIT 1
"""
INSERT = """
INSERT INTO marzban_instances
    (id, name, base_url, username, password, is_active, priority, sub_url)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""
UPDATE = f"""
UPDATE marzban_instances SET
    name = coalesce($2, name),
    base_url = coalesce($3, base_url),
    username = coalesce($4, username),
    password = coalesce($5, password),
    priority = coalesce($6, priority),
    sub_url = CASE WHEN $7::text IS NULL THEN sub_url ELSE nullif($7, '') END
WHERE id = $1
RETURNING {_COLUMNS}
"""
SET_ACTIVE = f"UPDATE marzban_instances SET is_active = $2 WHERE id = $1 RETURNING {_COLUMNS}"
EXCLUDE_NODE = f"""
UPDATE marzban_instances
SET excluded_node_names = CASE
    WHEN $2 = ANY(excluded_node_names) THEN excluded_node_names
    ELSE array_append(excluded_node_names, $2) END
WHERE id = $1
RETURNING {_COLUMNS}
"""
INCLUDE_NODE = f"""
UPDATE marzban_instances SET excluded_node_names = array_remove(excluded_node_names, $2)
WHERE id = $1
RETURNING {_COLUMNS}
"""
DELETE = "DELETE FROM marzban_instances WHERE id = $1 RETURNING id"
IS_ACTIVE_FOR_UPDATE = "SELECT is_active FROM marzban_instances WHERE id = $1 FOR UPDATE"
COUNT_LIVE_CONFIGS = """
SELECT count(*) FROM configs WHERE instance_id = $1 AND deleted_at IS NULL
"""
COUNT_LIVE_CONFIGS_ALL = """
SELECT instance_id, count(*) AS n FROM configs WHERE deleted_at IS NULL GROUP BY instance_id
"""


class Instance(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    base_url: str
    username: str
    password: str
    is_active: bool = True
    priority: int = 0
    excluded_node_names: tuple[str, ...] = ()
    # Where users fetch subscriptions when the panel answers relative links and is
    # reached on an address they cannot use (localhost, a private network).
    sub_url: str | None = None

    @property
    def link_base(self) -> str:
        """What a relative `/sub/<token>` link from this panel is joined to."""
        return self.sub_url or self.base_url

    def __repr__(self) -> str:
        return (
            f"Instance(id={self.id!r}, base_url={self.base_url!r}, sub_url={self.sub_url!r},"
            f" active={self.is_active}, priority={self.priority},"
            f" excluded={list(self.excluded_node_names)})"
        )

    __str__ = __repr__


class InvalidInstance(ValueError):
    """A field of an instance is malformed; the message says which and why."""


def _from_row(row: asyncpg.Record) -> Instance:
    return Instance(
        id=row["id"],
        name=row["name"],
        base_url=row["base_url"],
        username=row["username"],
        password=row["password"],
        is_active=row["is_active"],
        priority=row["priority"],
        excluded_node_names=tuple(row["excluded_node_names"]),
        sub_url=row["sub_url"],
    )


def check_id(instance_id: str) -> str:
    if not ID_RE.match(instance_id):
        raise InvalidInstance(
            f"instance id {instance_id!r} must be 1-32 characters of a-z, 0-9, '_' or '-',"
            " starting with a letter or digit"
        )
    return instance_id


def normalize_base_url(url: str) -> str:
    """`https://panel.example.com:8000/` → `https://panel.example.com:8000`; refuses
    anything that is not an absolute http(s) URL with a host and nothing after the path."""
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidInstance(f"malformed URL {url!r}: bad port or brackets") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInstance(f"malformed URL {url!r}: expected http(s)://host[:port][/path]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInstance(
            f"malformed URL {url!r}: no query, fragment or credentials allowed in the URL"
        )
    if any(c.isspace() for c in raw):
        raise InvalidInstance(f"malformed URL {url!r}: contains whitespace")
    if port is not None and port == 0:
        raise InvalidInstance(f"malformed URL {url!r}: port 0")
    return raw.rstrip("/")


async def list_instances(conn: asyncpg.Connection | asyncpg.Pool) -> list[Instance]:
    return [_from_row(r) for r in await conn.fetch(SELECT_ALL)]


async def active_instances(conn: asyncpg.Connection | asyncpg.Pool) -> list[Instance]:
    return [_from_row(r) for r in await conn.fetch(SELECT_ACTIVE)]


async def get_instance(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str
) -> Instance | None:
    row = await conn.fetchrow(SELECT_ONE, instance_id)
    return None if row is None else _from_row(row)


async def top_priority_instance(
    conn: asyncpg.Connection | asyncpg.Pool, exclude: frozenset[str]
) -> str | None:
    return await conn.fetchval(SELECT_TOP_PRIORITY, sorted(exclude))


async def insert_instance(conn: asyncpg.Connection | asyncpg.Pool, instance: Instance) -> bool:
    """Insert a new instance; False when the id is taken (nothing changes)."""
    inserted = await conn.fetchval(
        INSERT,
        instance.id,
        instance.name,
        instance.base_url,
        instance.username,
        instance.password,
        instance.is_active,
        instance.priority,
        instance.sub_url,
    )
    return inserted is not None


async def update_instance(
    conn: asyncpg.Connection | asyncpg.Pool,
    instance_id: str,
    *,
    name: str | None = None,
    base_url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    priority: int | None = None,
    sub_url: str | None = None,
) -> Instance | None:
    """Change the given fields; `sub_url=""` clears it (links join to base_url again)."""
    row = await conn.fetchrow(
        UPDATE, instance_id, name, base_url, username, password, priority, sub_url
    )
    return None if row is None else _from_row(row)


async def set_active(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, active: bool
) -> Instance | None:
    row = await conn.fetchrow(SET_ACTIVE, instance_id, active)
    return None if row is None else _from_row(row)


async def is_active_for_update(conn: asyncpg.Connection, instance_id: str) -> bool | None:
    """The instance's on/off state under its row lock (None: no such instance)."""
    return await conn.fetchval(IS_ACTIVE_FOR_UPDATE, instance_id)


async def exclude_node(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, node_name: str
) -> Instance | None:
    row = await conn.fetchrow(EXCLUDE_NODE, instance_id, node_name)
    return None if row is None else _from_row(row)


async def include_node(
    conn: asyncpg.Connection | asyncpg.Pool, instance_id: str, node_name: str
) -> Instance | None:
    row = await conn.fetchrow(INCLUDE_NODE, instance_id, node_name)
    return None if row is None else _from_row(row)


async def delete_instance(conn: asyncpg.Connection | asyncpg.Pool, instance_id: str) -> bool:
    return await conn.fetchval(DELETE, instance_id) is not None


async def count_live_configs(conn: asyncpg.Connection | asyncpg.Pool, instance_id: str) -> int:
    return int(await conn.fetchval(COUNT_LIVE_CONFIGS, instance_id))


async def live_config_counts(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    return {r["instance_id"]: r["n"] for r in await conn.fetch(COUNT_LIVE_CONFIGS_ALL)}


def legacy_instance(settings: Settings) -> Instance | None:
    """The instance the legacy `S001_*` settings describe, if they are all set."""
    url = settings.s001_base_url
    username = settings.s001_marzban_username
    password = settings.s001_marzban_password
    if not (url and username and password):
        if url or username or password:
            log.warning(
                "S001_BASE_URL, S001_MARZBAN_USERNAME and S001_MARZBAN_PASSWORD must be set"
                " together; ignoring the legacy instance"
            )
        return None
    return Instance(
        id=LEGACY_ID,
        name="s001",
        base_url=normalize_base_url(url),
        username=username,
        password=password,
    )


def loopback_or_private(url: str) -> bool:
    """Whether users could not reach `url`'s host from the internet."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


async def ensure_legacy_instance(pool: asyncpg.Pool, settings: Settings) -> bool:
    """Turn the legacy `S001_*` settings into instance `s001` if no such row exists.

    Called at the start of the balancer and the bot; an existing `s001` row is
    never changed (operators edit it with `orbit instances edit`). Returns
    whether a row was created.
    """
    try:
        instance = legacy_instance(settings)
    except InvalidInstance as exc:
        log.warning("legacy instance not registered: %s", exc)
        return False
    if instance is None:
        return False
    # Encrypted when MARZBAN_PASSWORD_KEY is set; else as plain as the .env holding it.
    sealed = PanelPasswords.from_settings(settings).seal(instance.password)
    async with pool.acquire() as conn:
        created = await insert_instance(conn, msgspec.structs.replace(instance, password=sealed))
    if created:
        log.info("registered the legacy S001_* panel as instance %s (%s)", LEGACY_ID, instance.base_url)
    return created
