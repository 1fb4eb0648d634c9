"""The admin audit trail: who did what to whom, with the state before and after.

`record()` is called by every mutating admin function with the connection of the
change's own transaction, so the row and the change commit (or vanish) together;
it refuses a connection outside a transaction rather than write an orphan row.
The table is append-only (a trigger refuses UPDATE and DELETE).
"""

from __future__ import annotations

import getpass
import os
from typing import Any

import asyncpg
import msgspec

from orbit.audit import queries
from orbit.audit.queries import Entry
from orbit.text import clean_text

CLI_PREFIX = "cli:"
ACTOR_MAX_LENGTH = 100
TARGET_MAX_LENGTH = 200
MAX_LIMIT = 1000
JSON_TEXT_MAX_LENGTH = 4096
SECRET_KEYS = frozenset({"password", "token"})
SECRET_SHOWN = "(secret)"


class NotInTransaction(RuntimeError):
    """`record()` was called outside the change's transaction."""


def bot_actor(admin_id: int) -> str:
    """An admin acting from the bot: their Telegram id."""
    return str(admin_id)


def instance_target(instance_id: str) -> str:
    """How a row names a Marzban instance, whichever side (bot, CLI, job) acted on it."""
    return f"instance:{instance_id}"


def cli_actor() -> str:
    """The operator running `orbit`: `cli:<os user>` (the uid when no name resolves)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry (containers)
        name = str(os.getuid())
    return CLI_PREFIX + clean_text(name, ACTOR_MAX_LENGTH - len(CLI_PREFIX))


def _clean(value: Any) -> Any:
    # Outside text inside before/after (a reason, a name) may hold NUL, which jsonb refuses.
    # Secrets (a panel's password, sealed or not) never enter the trail.
    if isinstance(value, str):
        return clean_text(value, JSON_TEXT_MAX_LENGTH, keep_newlines=True)
    if isinstance(value, dict):
        return {_clean(k): SECRET_SHOWN if k in SECRET_KEYS else _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _json(value: Any) -> Any:
    # The pool's jsonb codec is json.dumps: datetimes, Structs and sets become plain JSON first.
    return None if value is None else _clean(msgspec.to_builtins(value))


async def record(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    *,
    target_user_id: int | None = None,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
    action_key: str | None = None,
) -> int | None:
    """Append one audit row in `conn`'s open transaction; returns its id.

    With `action_key` (unique), a key used before writes nothing and returns
    None: the caller then does nothing either (record first, then change).
    """
    if not conn.is_in_transaction():
        raise NotInTransaction(action)
    return await queries.insert(
        conn,
        clean_text(actor, ACTOR_MAX_LENGTH),
        action,
        target_user_id,
        None if target is None else clean_text(target, TARGET_MAX_LENGTH),
        _json(before),
        _json(after),
        action_key,
    )


async def by_key(conn: asyncpg.Connection | asyncpg.Pool, action_key: str) -> Entry | None:
    """The entry an action with this key wrote (to answer a replay with its result)."""
    return await queries.by_key(conn, action_key)


async def latest(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    user_id: int | None = None,
    actor: str | None = None,
    limit: int = 20,
) -> list[Entry]:
    """The newest entries first, optionally about one user and/or by one actor.

    `actor="cli"` means every command-line operator (`cli:*`).
    """
    prefix = CLI_PREFIX if actor == "cli" else None
    exact = None if actor == "cli" else actor
    return await queries.latest(
        conn, user_id=user_id, actor=exact, actor_prefix=prefix, limit=max(1, min(limit, MAX_LIMIT))
    )
