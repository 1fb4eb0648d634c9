"""After the commit: the panels learn the new end date.

The transaction that moved `users.subscription_until` also flagged the user's
configs `needs_sync`, so whatever happens here (a panel down, a crash) the
janitor's drift repair finds the config and finishes the job; a purchase is
never lost and never left unapplied.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from orbit.marzban import provisioning
from orbit.marzban.errors import MarzbanError
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import Plan
from orbit.subscriptions import queries, service
from orbit.subscriptions.service import Purchase

log = logging.getLogger(__name__)


async def _sync_one(deps: PanelDeps, config_id: int) -> bool:
    try:
        # The full reconcile, not just the expiry: it reads the end date under the
        # config's lock (so racing purchases end on the latest) and clears the flag.
        await provisioning.sync_config(deps, config_id)
    except MarzbanError as exc:  # the row stays needs_sync, with the error
        log.warning("config %d: panel not updated yet: %s", config_id, exc)
        return False
    except Exception:  # the purchase is committed: nothing here may undo or hide it
        log.exception("config %d: panel sync failed", config_id)
        return False
    return True


async def sync_config_expiry(deps: PanelDeps, user_id: int) -> None:
    """Push the user's subscription end to every live config's panel user.

    Call after the transaction that changed the end date has committed. A panel
    that fails leaves its config marked `needs_sync` (the janitor repairs it);
    this never raises for a panel problem.
    """
    # Pending ones are those a renewal made in place of retired configs: provisioning
    # them sends their new links.
    config_ids = await queries.configs_to_sync(deps.pool, user_id)
    config_ids += await queries.pending_of_user(deps.pool, user_id)
    if not config_ids:
        return
    results = await asyncio.gather(*(_sync_one(deps, cid) for cid in config_ids))
    log.info(
        "user %d: %d of %d configs synced to their panels", user_id, sum(results), len(config_ids)
    )


async def purchase_plan(deps: PanelDeps, user_id: int, plan: Plan, token: str) -> Purchase:
    """Buy `plan` from the balance, then extend the user's configs on their panels.

    `token` comes from the confirmation button, so pressing it twice buys once
    (the second call returns the first purchase with `replayed=True`). Raises
    `ledger.InsufficientFunds` (nothing changed) or `ledger.UnknownUser`.
    """
    key = f"purchase:{user_id}:{token}"
    async with deps.pool.acquire() as conn, conn.transaction():
        purchase = await service.buy(conn, user_id, plan, key)
    if purchase.replayed:
        return purchase
    log.info(
        "user %d bought %s for %d kop: until %s", user_id, plan.id, plan.price, purchase.ends_at
    )
    await sync_config_expiry(deps, user_id)
    return purchase


async def start_trial(deps: PanelDeps, user_id: int, days: int) -> datetime | None:
    """Grant the free trial (once per account forever); None when it was used already."""
    async with deps.pool.acquire() as conn, conn.transaction():
        until = await service.grant_trial(conn, user_id, days)
    if until is not None:
        log.info("user %d started the trial: until %s", user_id, until)
        await sync_config_expiry(deps, user_id)
    return until
