"""Subscription facts inside the caller's transaction: end dates, purchases, trial, limits.

Nothing here talks to a panel; `orbit.subscriptions.panels` pushes the new end
date to the panels after the caller's transaction has committed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import msgspec

from orbit import ledger
from orbit.marzban.provisioning import new_panel_username
from orbit.plans import Plan, Plans
from orbit.subscriptions import queries

# A user without a purchase (trial, promo days) gets the smallest plan's limits.
BASE_PLAN_ID = "1m"


class RenewalNotDue(Exception):
    """An auto-renewal found the subscription no longer as it was asked to renew it:
    bought or extended meanwhile, or already ended (nothing is bought after the end
    without the user's press)."""

    def __init__(self, user_id: int, expected: datetime, found: datetime | None) -> None:
        super().__init__(f"user {user_id}: renewal for the end {expected} found {found}")
        self.user_id = user_id


class PlanLimits(msgspec.Struct, frozen=True):
    active: bool  # the subscription runs now
    until: datetime | None
    plan_id: str | None  # the latest purchase's plan; None for trial or promo days only
    max_configs: int  # configs allowed while active


class Subscription(msgspec.Struct, frozen=True):
    until: datetime | None
    active: bool
    is_trial: bool  # running on the free trial, nothing bought yet
    plan_id: str | None
    auto_renew: bool
    trial_available: bool


class Purchase(msgspec.Struct, frozen=True):
    id: int
    plan_id: str
    days: int
    price_kop: int
    starts_at: datetime
    ends_at: datetime
    balance_after_kop: int
    replayed: bool  # the key was used before: nothing changed, this is the first purchase


def on_trial(until: datetime | None, trial_used_at: datetime | None, trial_days: int) -> bool:
    """Whether a running subscription is still the free trial: it ends where the trial
    ended (a purchase or promo days since would have moved the end further)."""
    if until is None or trial_used_at is None:
        return False
    return until <= trial_used_at + timedelta(days=trial_days, minutes=1)


def trial_offered(until: datetime | None, trial_used_at: datetime | None, trial_days: int) -> bool:
    """The trial is for users who never had a subscription (and never took it)."""
    return trial_days > 0 and trial_used_at is None and until is None


def _require_transaction(conn: asyncpg.Connection, what: str) -> None:
    if not conn.is_in_transaction():
        raise RuntimeError(f"{what} must run inside the caller's transaction")


async def extend_subscription(conn: asyncpg.Connection, user_id: int, days: int) -> datetime:
    """Add `days` to the user's subscription, from the later of now and its current end.

    Runs inside the caller's transaction; returns the new end. Call
    `sync_config_expiry` after the commit so the panels follow.
    """
    if days <= 0:
        raise ValueError("days must be positive")
    _require_transaction(conn, "extend_subscription")
    locked = await queries.lock_user(conn, user_id)
    if locked is None:
        raise ledger.UnknownUser(user_id)
    until = await queries.extend(conn, user_id, days)
    assert until is not None
    # The panels learn the new end after the commit; until then the janitor sees the drift.
    await queries.flag_configs_for_sync(conn, user_id)
    await revive_retired(conn, user_id, locked["subscription_until"])
    return until


async def revive_retired(
    conn: asyncpg.Connection,
    user_id: int,
    lapsed_until: datetime | None,
    *,
    limit: int | None = None,
    data_limit: tuple[int, str] | None = None,
) -> list[int]:
    """New pending configs in place of those retired after the subscription that ended
    at `lapsed_until` (same names and panels, new panel users), at most `limit`; their
    ids. Inside the renewal's transaction, so a crash leaves flagged rows the janitor
    provisions; provisioning sends each one's new link (`provisioning._place_and_point`).
    `data_limit`: the plan's (bytes, reset strategy), else each old config's."""
    if lapsed_until is None or (limit is not None and limit <= 0):
        return []
    retired = await queries.retired_unrevived(conn, user_id, lapsed_until)
    made: list[int] = []
    for old in retired if limit is None else retired[:limit]:
        limit_bytes, strategy = data_limit or (old.data_limit_bytes, old.data_limit_reset_strategy)
        new_id = await queries.insert_revived(
            conn, user_id, old, new_panel_username(user_id), limit_bytes, strategy
        )
        if new_id is not None:
            made.append(new_id)
    return made


async def active_plan_limits(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, plans: Plans
) -> PlanLimits:
    """Whether the user's subscription runs and how many configs it allows.

    The limit is the latest purchase's plan's `max_configs`; a user who bought
    nothing (trial, promo days) gets the 1M plan's.
    """
    row = await queries.subscription(conn, user_id)
    if row is None:
        return PlanLimits(active=False, until=None, plan_id=None, max_configs=0)
    plan = plans.get(row["plan_id"]) if row["plan_id"] else None
    base = plans.get(BASE_PLAN_ID)
    max_configs = (plan or base).max_configs if (plan or base) else 1
    return PlanLimits(
        active=bool(row["active"]),
        until=row["subscription_until"],
        plan_id=row["plan_id"],
        max_configs=max_configs,
    )


async def subscription(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, trial_days: int
) -> Subscription | None:
    """What the subscription screen shows; one query."""
    row = await queries.subscription(conn, user_id)
    if row is None:
        return None
    active = bool(row["active"])
    return Subscription(
        until=row["subscription_until"],
        active=active,
        is_trial=active and on_trial(row["subscription_until"], row["trial_used_at"], trial_days),
        plan_id=row["plan_id"],
        auto_renew=row["auto_renew"],
        trial_available=trial_offered(row["subscription_until"], row["trial_used_at"], trial_days),
    )


async def quote_end(conn: asyncpg.Connection | asyncpg.Pool, user_id: int, days: int) -> datetime | None:
    """The end date buying `days` now would give (None for an unknown user)."""
    return await queries.quote_end(conn, user_id, days)


async def grant_trial(conn: asyncpg.Connection, user_id: int, days: int) -> datetime | None:
    """The free trial, once per account forever and only for a user who never had a
    subscription; None when it is refused."""
    if days <= 0:
        return None
    _require_transaction(conn, "grant_trial")
    until = await queries.grant_trial(conn, user_id, days)
    if until is not None:
        await queries.flag_configs_for_sync(conn, user_id)
    return until


async def buy(
    conn: asyncpg.Connection,
    user_id: int,
    plan: Plan,
    idempotency_key: str,
    *,
    source: str = "balance",
    renews_until: datetime | None = None,
) -> Purchase:
    """Debit the plan's price and extend the subscription, once per `idempotency_key`.

    Inside the caller's transaction: the user row is locked, so purchases of one
    user are serialized and a repeated key returns the first purchase with
    `replayed=True`. Raises `ledger.InsufficientFunds` before writing anything
    when the balance is short, `ledger.UnknownUser` for an unknown user. The
    janitor's auto-renewal calls it with `source="auto_renew"` and `renews_until`,
    the end it found due: under the lock, the end must still be that one and not
    passed yet, else `RenewalNotDue` (nothing written). The janitor's query ran
    before the lock, so a purchase the user made meanwhile would otherwise be
    followed by a second charge.
    """
    _require_transaction(conn, "buy")
    locked = await queries.lock_user(conn, user_id)
    if locked is None:
        raise ledger.UnknownUser(user_id)
    first = await queries.purchase_by_key(conn, idempotency_key)
    if first is not None:
        return Purchase(**dict(first), replayed=True)
    if renews_until is not None and (
        locked["subscription_until"] != renews_until or not locked["running"]
    ):
        raise RenewalNotDue(user_id, renews_until, locked["subscription_until"])
    # The row is locked, so this balance is the one the debit will see.
    if locked["balance_kop"] < plan.price:
        raise ledger.InsufficientFunds(locked["balance_kop"], plan.price)
    ends_at = await queries.extend(conn, user_id, plan.days)
    assert ends_at is not None
    starts_at = ends_at - timedelta(days=plan.days)
    purchase_id = await queries.insert_purchase(
        conn, user_id, plan.id, plan.days, plan.price, source, starts_at, ends_at
    )
    entry = await ledger.debit(
        conn, user_id, plan.price, "purchase", idempotency_key,
        purchase_id=purchase_id, note=f"plan {plan.id}",
    )
    limits = (plan.data_limit_bytes, plan.data_limit_reset_strategy)
    await queries.apply_plan_limits(conn, user_id, *limits)
    await queries.flag_configs_for_sync(conn, user_id, reset_usage=plan.reset_traffic_on_renewal)
    live = await queries.count_live(conn, user_id)
    await revive_retired(
        conn, user_id, locked["subscription_until"],
        limit=plan.max_configs - live, data_limit=limits,
    )  # fmt: skip
    return Purchase(
        id=purchase_id,
        plan_id=plan.id,
        days=plan.days,
        price_kop=plan.price,
        starts_at=starts_at,
        ends_at=ends_at,
        balance_after_kop=entry.balance_after_kop,
        replayed=False,
    )


async def set_auto_renew(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, on: bool, trial_days: int
) -> Subscription:
    """Set (not toggle) the flag, so a double press lands on the same value."""
    if await queries.set_auto_renew(conn, user_id, on) is None:
        raise ledger.UnknownUser(user_id)
    sub = await subscription(conn, user_id, trial_days)
    assert sub is not None
    return sub


async def latest_plan_id(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> str | None:
    """The plan the user bought last (what auto-renewal buys again)."""
    return await queries.latest_plan(conn, user_id)

