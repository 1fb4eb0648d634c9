"""Subscriptions: the end date, plans bought with the balance, the trial, auto-renewal.

`service` holds what runs inside a caller's transaction; `panels` pushes the
resulting end date to the user's configs on their panels after the commit.
"""

from orbit.subscriptions.panels import purchase_plan, start_trial, sync_config_expiry
from orbit.subscriptions.service import (
    PlanLimits,
    Purchase,
    RenewalNotDue,
    Subscription,
    active_plan_limits,
    buy,
    extend_subscription,
    grant_trial,
    latest_plan_id,
    on_trial,
    quote_end,
    set_auto_renew,
    subscription,
    trial_offered,
)

__all__ = [
    "PlanLimits",
    "Purchase",
    "RenewalNotDue",
    "Subscription",
    "active_plan_limits",
    "buy",
    "extend_subscription",
    "grant_trial",
    "latest_plan_id",
    "on_trial",
    "purchase_plan",
    "quote_end",
    "set_auto_renew",
    "start_trial",
    "subscription",
    "sync_config_expiry",
    "trial_offered",
]
