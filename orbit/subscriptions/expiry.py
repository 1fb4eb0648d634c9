"""A subscription's end on the panels: expiry, then the grace, then retirement.

Two janitor chores, each safe in two janitors at once (the config's advisory lock
serializes them with purchases and drift repair) and each making exactly one panel
call per config it changes:

- `expire_configs`: once a subscription has ended (`orbit_now()`), each of its live
  configs gets one `PUT {"expire": end}`. Marzban stops the user at its `expire` by
  itself; the call makes our end date the panel's even if the panel was edited or
  its review job lags, and takes the user out of Xray at once. The row then carries
  `expired_at` (the bot shows it expired, with a renew button).
- `retire_configs`: `GRACE_DAYS` after the end, each expired config's panel user is
  deleted with one `DELETE` (already out of Xray, so no disable first), then the row
  becomes history: `deleted`, `retired_at`. A renewal afterwards makes new configs in
  their place (`revive_retired`) and sends their links.

Panel first, row second. A panel that is down changes nothing and is retried on the
next round (its remaining configs are skipped this round). A crash after the panel
call leaves the row as it was: the next round calls again (a `PUT` of the same end;
a `DELETE` answered 404 counts as done). A renewal that commits while a config is
being retired wins: the row is only changed while its owner is still lapsed, and a
config whose panel user went anyway is flagged for the drift repair, which makes
it again and sends its new link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from orbit.configs import queries as configs_q
from orbit.marzban import instances
from orbit.marzban.errors import MarzbanError, PanelUserNotFound
from orbit.marzban.provisioning import PanelDeps, config_lock, expire_timestamp
from orbit.subscriptions import queries

log = logging.getLogger(__name__)

EXPIRY_BATCH = 500
RETIRE_BATCH = 500
# Configs handled at once: each holds a pooled connection for its lock and one panel
# call, so a round is bound by round trips, not by one config after another. Below
# the pool's default size, leaving connections to the other chores.
CONCURRENCY = 4


@dataclass
class Round:
    """What one round did: rows changed, panel calls made, instances that failed."""

    changed: int = 0
    calls: int = 0
    failed: set[str] = field(default_factory=set)


async def _each(due: list[queries.Due], done: Round, one: Callable[[queries.Due], Awaitable[None]]) -> None:
    """Run `one` over the batch, `CONCURRENCY` configs at a time (each holds a pooled
    connection and its lock for one panel call); configs of an instance that failed
    this round are skipped."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def guarded(item: queries.Due) -> None:
        async with gate:
            if item.instance_id not in done.failed:
                await one(item)

    await asyncio.gather(*(guarded(item) for item in due))


async def expire_configs(deps: PanelDeps, *, batch: int = EXPIRY_BATCH) -> Round:
    """Stop the panel users of configs whose subscription has ended; returns the round."""
    done = Round()

    async def one(due: queries.Due) -> None:
        async with config_lock(deps.pool, due.id) as conn:
            target = await configs_q.get_for_panel(conn, due.id)
            if target is None or not await queries.still_lapsed(conn, due.id, 0):
                return  # renewed or deleted since the query
            config = target.config
            if config.expired_at is not None or not config.is_live or config.status == "pending":
                return
            instance = await instances.get_instance(conn, config.instance_id)
            if instance is None:
                return
            done.calls += 1
            try:
                await deps.client(instance).modify_user(
                    config.panel_username, {"expire": expire_timestamp(target.subscription_until)}
                )
            except PanelUserNotFound:
                pass  # nothing left to stop; a renewal's sync makes it again
            except MarzbanError as exc:
                log.warning("config %d not expired on %s yet: %s", due.id, instance.id, exc)
                done.failed.add(instance.id)
                return
            if await queries.mark_expired(conn, due.id):
                done.changed += 1

    await _each(await queries.expiry_due(deps.pool, batch), done, one)
    if done.changed or done.failed:
        log.info("expiry: %d configs stopped, %d instances failed", done.changed, len(done.failed))
    return done


async def retire_configs(deps: PanelDeps, *, batch: int = RETIRE_BATCH) -> Round:
    """Delete the panel users of expired configs whose grace has passed; the rows stay."""
    grace = deps.settings.grace_days
    done = Round()

    async def one(due: queries.Due) -> None:
        async with config_lock(deps.pool, due.id) as conn:
            config = await configs_q.get_config(conn, due.id)
            if config is None or not config.is_live or config.expired_at is None:
                return
            if not await queries.still_lapsed(conn, due.id, grace):
                return  # renewed since the query: the purchase's sync brings it back
            instance = await instances.get_instance(conn, config.instance_id)
            if instance is not None:
                done.calls += 1
                try:
                    await deps.client(instance).delete_user(config.panel_username)
                except PanelUserNotFound:
                    pass  # deleted by an earlier round that died before the row changed
                except MarzbanError as exc:
                    log.warning("config %d not retired on %s yet: %s", due.id, instance.id, exc)
                    done.failed.add(instance.id)
                    return
            if await queries.mark_retired(conn, due.id, grace):
                done.changed += 1
            else:  # renewed between our check and now: the panel user must come back
                await configs_q.mark_needs_sync(conn, due.id, "renewed while being retired")

    await _each(await queries.retirement_due(deps.pool, batch, grace), done, one)
    if done.changed or done.failed:
        log.info(
            "grace: %d configs retired from their panels, %d instances failed",
            done.changed, len(done.failed),
        )  # fmt: skip
    return done


async def expire_chore(deps: PanelDeps) -> int:
    """The janitor's chore: configs stopped this round."""
    return (await expire_configs(deps)).changed


async def retire_chore(deps: PanelDeps) -> int:
    """The janitor's chore: configs retired this round."""
    return (await retire_configs(deps)).changed
