"""Granting or removing subscription days by hand, with a reason.

One transaction locks the user's row, writes the audit row (its `action_key` is
the admin action's key: the bot's confirmation token, the CLI's `--key`), moves
the end date and flags the user's configs `needs_sync`; after the commit the
panels are told (`sync_config_expiry`), and a panel that is down is repaired by
the janitor's drift repair, never forgotten. A repeated key replays the first
result and changes nothing. Removing days from a subscription that is not
running is refused; removing more than remains ends it now-ish (the end moves
into the past, and the panels expire the configs).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import msgspec

from orbit import audit
from orbit.admin import card_queries, queries
from orbit.admin.errors import InvalidDays, NoSubscriptionToShorten, UserNotFound
from orbit.admin.users import check_reason
from orbit.marzban.provisioning import PanelDeps
from orbit.subscriptions import sync_config_expiry

log = logging.getLogger(__name__)

MAX_DAYS = 3650
ACTION = "subscription.grant_days"


class DaysGrant(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    days: int  # signed: > 0 granted, < 0 removed
    before: datetime | None  # the end date before
    after: datetime  # the end date now
    replayed: bool  # this action's key was used before: nothing changed now


def parse_days(raw: str) -> int:
    """`30`, `+30`, `-7` → signed days; refuses zero, non-numbers and more than MAX_DAYS."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
        raise InvalidDays(raw[:40], MAX_DAYS)
    days = int(text)
    if days == 0 or abs(days) > MAX_DAYS:
        raise InvalidDays(raw[:40], MAX_DAYS)
    return days


def _from_entry(entry: audit.Entry) -> DaysGrant:
    after, before = entry.after or {}, entry.before or {}
    was = before.get("subscription_until")
    return DaysGrant(
        user_id=int(entry.target_user_id or 0),
        days=int(after["days"]),
        before=None if was is None else datetime.fromisoformat(was),
        after=datetime.fromisoformat(after["subscription_until"]),
        replayed=True,
    )


async def grant_days(
    deps: PanelDeps,
    user_id: int,
    days: int,
    *,
    reason: str,
    actor: str,
    action_key: str,
) -> DaysGrant:
    """Add (`days` > 0) or take away (< 0) subscription days, once per `action_key`."""
    if days == 0 or abs(days) > MAX_DAYS:
        raise InvalidDays(str(days), MAX_DAYS)
    reason = check_reason(reason)
    key = f"grant-days:{action_key}"
    async with deps.pool.acquire() as conn, conn.transaction():
        row = await card_queries.lock_subscription(conn, user_id)
        if row is None:
            raise UserNotFound(user_id)
        # Under the row lock: a concurrent press with the same key waits, then finds this.
        done = await audit.by_key(conn, key)
        if done is not None:
            return _from_entry(done)
        until, now = row["subscription_until"], row["now"]
        if days > 0:
            new_until = max(until or now, now) + timedelta(days=days)
        elif until is None or until <= now:
            raise NoSubscriptionToShorten(user_id)
        else:
            new_until = until + timedelta(days=days)
        written = await audit.record(
            conn,
            actor,
            ACTION,
            target_user_id=user_id,
            before={"subscription_until": until},
            after={"subscription_until": new_until, "days": days, "reason": reason},
            action_key=key,
        )
        assert written is not None  # the key was free under the lock
        await card_queries.set_subscription_until(conn, user_id, new_until)
        # The panels learn the new end after the commit; until then the janitor sees the drift.
        await queries.flag_user_configs(conn, user_id)
    log.info("user %d: %+d days by %s (%s), now until %s", user_id, days, actor, reason, new_until)
    await sync_config_expiry(deps, user_id)  # never raises for a panel: a failure stays flagged
    return DaysGrant(user_id=user_id, days=days, before=until, after=new_until, replayed=False)
