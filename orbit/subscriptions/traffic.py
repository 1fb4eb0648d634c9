"""Traffic: read every config's usage from its panel, keep it on the row, and tell
the owner once at 90 % and once at 100 % of the config's limit per period.

One janitor chore (`read_usage`). Each panel is read alone, in pages of
`GET /api/users?offset=&limit=` (one call per page, never one per user); a panel
that fails is left for the next round. Per page, one transaction stores what the
panel reported (`usage_bytes`, `usage_read_at`) and queues the notices:

- A period is what `usage_period` counts: it grows when a renewal zeroes the
  usage (`configs.queries.USAGE_WAS_RESET`) or when a read finds less used than
  the row had (the panel reset the user by its strategy: day, week, ...). The
  notices' outbox `dedup_key` is `traffic:{config}:{period}:{90|100}`, so a
  second janitor, a killed one's retry or the next round queue nothing new.
- A read older than the row's (`usage_read_at`) is dropped, so two janitors
  reading around a reset cannot store a stale usage or count a period twice
  (`configs.queries.store_usage`, which a config's own screen also stores its
  live read through; the notices are queued here only).
- Usage is the panel's `used_traffic` plus what earlier panels counted this
  period (`usage_carried_bytes`, after a drain), against the config's own limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from orbit import clock, outbox
from orbit.configs import queries as configs_q
from orbit.marzban import instances
from orbit.marzban.errors import MarzbanError
from orbit.marzban.models import PanelUser, decode_user
from orbit.marzban.provisioning import PanelDeps

log = logging.getLogger(__name__)

PAGE_SIZE = 200
LEVELS = (100, 90)  # highest first: a config found past its limit gets only that notice

# The live configs of one instance among the page's usernames, with what a notice needs.
PAGE_CONFIGS = """
SELECT c.id, c.user_id, c.panel_username, c.name, c.data_limit_bytes,
       c.usage_carried_bytes, u.language
FROM configs c JOIN users u ON u.id = c.user_id
WHERE c.instance_id = $1 AND c.panel_username = ANY($2::text[])
  AND c.deleted_at IS NULL AND c.status IN ('active', 'disabled')
"""


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    config_id: int
    user_id: int
    name: str
    language: str
    used: int  # bytes this period, all panels
    limit: int  # bytes; 0 = unlimited


class UsageRound(msgspec.Struct, kw_only=True):
    stored: int = 0
    notices: int = 0
    calls: int = 0
    failed: list[str] = msgspec.field(default_factory=list)


def level_reached(used: int, limit: int) -> int | None:
    """The highest notice level (percent) `used` has reached, None below 90 % or unlimited."""
    if limit <= 0:
        return None
    return next((level for level in LEVELS if used * 100 >= limit * level), None)


def _size_gb(nbytes: int) -> str:
    return f"{nbytes / 1024**3:.1f}"


async def _store_page(
    deps: PanelDeps,
    instance_id: str,
    users: list[PanelUser],
    read_at: Any,
    markup: Callable[[str], dict[str, Any]],
) -> tuple[int, int]:
    """Store one page's usage and queue its notices in one transaction; (stored, queued)."""
    by_name = {user.username: user for user in users}
    async with deps.pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(PAGE_CONFIGS, instance_id, list(by_name))
        readings = {
            r["id"]: Reading(
                config_id=r["id"],
                user_id=r["user_id"],
                name=r["name"],
                language=r["language"],
                used=by_name[r["panel_username"]].used_traffic + r["usage_carried_bytes"],
                limit=r["data_limit_bytes"],
            )
            for r in rows
        }
        if not readings:
            return 0, 0
        stored = await configs_q.store_usage(conn, {i: r.used for i, r in readings.items()}, read_at)
        queued = 0
        for config_id, period in stored.items():
            reading = readings[config_id]
            level = level_reached(reading.used, reading.limit)
            if level is None:
                continue
            text = deps.translate(
                reading.language,
                f"life-traffic-{level}",
                name=reading.name,
                used=_size_gb(reading.used),
                limit=_size_gb(reading.limit),
            )
            key = f"traffic:{reading.config_id}:{period}:{level}"
            if await outbox.enqueue(
                conn, reading.user_id, "traffic", text,
                reply_markup=markup(reading.language), dedup_key=key,
            ):  # fmt: skip
                queued += 1
    return len(stored), queued


async def read_instance(
    deps: PanelDeps,
    instance: instances.Instance,
    markup: Callable[[str], dict[str, Any]],
    *,
    page_size: int = PAGE_SIZE,
) -> UsageRound:
    """Page through one panel's users; raises `MarzbanError` when the panel fails
    (pages stored before stay stored)."""
    done = UsageRound()
    client = deps.client(instance)
    offset = 0
    while True:
        read_at = await clock.now(deps.pool)  # before the read: an older read never wins
        done.calls += 1
        # Decoded user by user: one the panel mangled (an absurd byte count, say) is
        # skipped and the rest of the page still stored.
        page = await client.list_users_raw(offset=offset, limit=page_size)
        users = [u for u in map(decode_user, page.users) if u is not None]
        if len(users) < len(page.users):
            log.warning("panel %s: %d malformed users skipped", instance.id, len(page.users) - len(users))
        stored, queued = await _store_page(deps, instance.id, users, read_at, markup)
        done.stored += stored
        done.notices += queued
        offset += len(page.users)
        if not page.users or offset >= page.total:
            return done


async def read_usage(
    deps: PanelDeps, markup: Callable[[str], dict[str, Any]], *, page_size: int = PAGE_SIZE
) -> UsageRound:
    """Read every active panel's usage, one panel at a time; returns the round."""
    done = UsageRound()
    async with deps.pool.acquire() as conn:
        registry = [i for i in await instances.list_instances(conn) if i.is_active]
    for instance in registry:
        try:
            one = await read_instance(deps, instance, markup, page_size=page_size)
        except MarzbanError as exc:
            log.warning("usage of panel %s not read: %s", instance.id, exc)
            done.failed.append(instance.id)
            continue
        done.stored += one.stored
        done.notices += one.notices
        done.calls += one.calls
    if done.notices:
        await outbox.wake_sender(deps.redis)
    if done.notices or done.failed:
        log.info(
            "usage: %d configs read, %d notices, panels failed: %s",
            done.stored, done.notices, ",".join(done.failed) or "-",
        )  # fmt: skip
    return done


async def usage_chore(deps: PanelDeps, markup: Callable[[str], dict[str, Any]]) -> int:
    """The janitor's chore: configs whose usage was stored this round."""
    return (await read_usage(deps, markup)).stored
