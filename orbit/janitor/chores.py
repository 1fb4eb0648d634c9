"""The janitor's units of work. Each is safe to run in two janitors at once:
configs are serialized by their advisory lock, purchases by their idempotency
key, reminders by the outbox's dedup_key."""

from __future__ import annotations

import logging
from collections.abc import Callable

from orbit import outbox
from orbit.admin.broadcasts import resume_broadcast
from orbit.i18n import Translator
from orbit.janitor import queries
from orbit.ledger import InsufficientFunds
from orbit.marzban import provisioning
from orbit.marzban.errors import MarzbanError
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import Plans
from orbit.subscriptions import service as subscriptions
from orbit.subscriptions.panels import sync_config_expiry
from orbit.ui.callbacks import MenuCb
from orbit.ui.views import format_date

log = logging.getLogger(__name__)

DRIFT_BATCH = 50
DRIFT_SETTLE_SECONDS = 30.0
REMINDER_BATCH = 500
RENEWAL_BATCH = 100
BROADCAST_SETTLE_SECONDS = 120.0


def _buy_button(translator: Translator, locale: str) -> dict[str, object]:
    text = translator(locale, "janitor-buy-button")
    return {"inline_keyboard": [[{"text": text, "callback_data": MenuCb(screen="buy").pack()}]]}


def traffic_buttons(translator: Translator) -> Callable[[str], dict[str, object]]:
    """A traffic notice's buttons: buy a plan, see the configs' usage."""

    def markup(locale: str) -> dict[str, object]:
        buy = MenuCb(screen="buy").pack()
        usage = MenuCb(screen="configs").pack()
        return {"inline_keyboard": [
            [{"text": translator(locale, "janitor-buy-button"), "callback_data": buy}],
            [{"text": translator(locale, "life-usage-button"), "callback_data": usage}],
        ]}  # fmt: skip

    return markup


async def repair_drift(deps: PanelDeps, *, settle_seconds: float = DRIFT_SETTLE_SECONDS) -> int:
    """Make panels match flagged or pending configs; returns how many were repaired."""
    repaired = 0
    for config_id in await queries.drifted_configs(deps.pool, DRIFT_BATCH, settle_seconds):
        try:
            await provisioning.sync_config(deps, config_id)
        except MarzbanError as exc:  # stays flagged with its error; next tick retries
            log.info("config %d still drifted: %s", config_id, exc)
        else:
            repaired += 1
    return repaired


async def send_reminders(deps: PanelDeps, translator: Translator) -> int:
    due = await queries.reminders_due(deps.pool, REMINDER_BATCH)
    queued = 0
    async with deps.pool.acquire() as conn:
        for reminder in due:
            text = translator(
                reminder.language,
                f"janitor-reminder-{reminder.window}",
                until=format_date(reminder.subscription_until),
            )
            if await outbox.enqueue(
                conn,
                reminder.id,
                "reminder",
                text,
                reply_markup=_buy_button(translator, reminder.language),
                dedup_key=reminder.dedup_key,
            ):
                queued += 1
    if queued:
        await outbox.wake_sender(deps.redis)
    return queued


async def renew_subscriptions(deps: PanelDeps, translator: Translator, plans: Plans) -> int:
    """Auto-renewal: buy the last plan again from the balance, once per end date."""
    prices = {plan.id: plan.price for plan in plans}
    renewed = 0
    for due in await queries.renewals_due(deps.pool, RENEWAL_BATCH, prices):
        plan = plans.get(due.plan_id)
        assert plan is not None  # the query joined on the plans we know
        key = f"autorenew:{due.id}:{int(due.subscription_until.timestamp())}"
        try:
            async with deps.pool.acquire() as conn, conn.transaction():
                purchase = await subscriptions.buy(
                    conn, due.id, plan, key, source="auto_renew", renews_until=due.subscription_until
                )
                if not purchase.replayed:
                    await outbox.enqueue(
                        conn,
                        due.id,
                        "renewal",
                        translator(
                            due.language,
                            "janitor-renewed",
                            plan=plan.months,
                            until=format_date(purchase.ends_at),
                        ),
                        dedup_key=f"renewed:{key}",
                    )
        except InsufficientFunds:  # spent between the query and the purchase
            continue
        except subscriptions.RenewalNotDue as exc:  # bought or lapsed since the query
            log.info("auto-renewal skipped: %s", exc)
            continue
        if purchase.replayed:
            continue
        renewed += 1
        log.info("user %d auto-renewed %s until %s", due.id, plan.id, purchase.ends_at)
        await sync_config_expiry(deps, due.id)
    if renewed:
        await outbox.wake_sender(deps.redis)
    return renewed


async def finish_broadcasts(
    deps: PanelDeps, *, settle_seconds: float = BROADCAST_SETTLE_SECONDS
) -> int:
    """Resume fan-outs cut short by a restart (resuming is idempotent per recipient)."""
    resumed = 0
    for broadcast_id in await queries.unfinished_broadcasts(deps.pool, settle_seconds):
        await resume_broadcast(
            deps.pool, deps.redis, broadcast_id, rate_per_second=deps.settings.outbox_rate_per_second
        )
        resumed += 1
    return resumed
