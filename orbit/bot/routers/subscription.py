"""The subscription screen, the auto-renewal switch, the free trial and the channel gate.

The trial is a button ("🎁 Free trial" in the main menu and here), not a gift
at /start: it is an explicit choice, the channel gate is checked at the moment
it is taken, and /start stays a cheap idempotent upsert.
"""

from __future__ import annotations

import asyncpg
from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from orbit.bot import screens
from orbit.bot.gate import passes_gate
from orbit.bot.routers.menu import leave_flow
from orbit.bot.routers.plans import show_confirmation
from orbit.marzban.provisioning import PanelDeps
from orbit.metrics import Metrics
from orbit.plans import Plans
from orbit.settings import Settings
from orbit.subscriptions import set_auto_renew, start_trial, subscription
from orbit.ui import views
from orbit.ui.callbacks import AutoRenewCb, GateCb, MenuCb, TrialCb
from orbit.users.queries import UserRow

router = Router(name="subscription")


@router.callback_query(MenuCb.filter(F.screen == "sub"))
async def subscription_screen(
    callback: CallbackQuery,
    user: UserRow,
    pool: asyncpg.Pool,
    plans: Plans,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    sub = await subscription(pool, user.id, settings.free_trial_days)
    assert sub is not None
    screen = views.subscription_screen(i18n, sub, plans)
    await screens.show(callback, screen.text, screen.markup)


@router.callback_query(AutoRenewCb.filter())
async def auto_renew(
    callback: CallbackQuery,
    callback_data: AutoRenewCb,
    user: UserRow,
    pool: asyncpg.Pool,
    plans: Plans,
    settings: Settings,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    sub = await set_auto_renew(pool, user.id, callback_data.on, settings.free_trial_days)
    callback_answer.text = i18n.get("auto-renew-saved-on" if sub.auto_renew else "auto-renew-saved-off")
    screen = views.subscription_screen(i18n, sub, plans)
    await screens.show(callback, screen.text, screen.markup)


async def _take_trial(
    callback: CallbackQuery,
    bot: Bot,
    user: UserRow,
    deps: PanelDeps,
    metrics: Metrics,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    settings = deps.settings
    if settings.free_trial_days <= 0:
        callback_answer.text = i18n.get("trial-off")
        callback_answer.show_alert = True
        return
    if user.trial_used_at is not None:
        callback_answer.text = i18n.get("trial-used")
        callback_answer.show_alert = True
        return
    if user.subscription_until is not None:  # the trial is for users who never had one
        callback_answer.text = i18n.get("trial-not-new")
        callback_answer.show_alert = True
        return
    if not await passes_gate(bot, settings, metrics, user.id):
        assert settings.required_channel is not None
        screen = views.gate_screen(i18n, settings.required_channel, "trial")
        await screens.show(callback, screen.text, screen.markup)
        return
    until = await start_trial(deps, user.id, settings.free_trial_days)
    if until is None:  # a second press raced the first one
        callback_answer.text = i18n.get("trial-used")
        callback_answer.show_alert = True
        return
    metrics.inc("trials_total")
    screen = views.trial_started_screen(i18n, until)
    await screens.show_effect(
        callback, screen.text, screen.markup,
        pool=deps.pool, redis=deps.redis, dedup_key=f"effect:trial:{user.id}",
    )


@router.callback_query(TrialCb.filter(), flags={"rate": "purchase"})
async def trial(
    callback: CallbackQuery,
    bot: Bot,
    user: UserRow,
    panel_deps: PanelDeps,
    metrics: Metrics,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    await _take_trial(callback, bot, user, panel_deps, metrics, i18n, callback_answer)


@router.callback_query(GateCb.filter())
async def gate_check(
    callback: CallbackQuery,
    callback_data: GateCb,
    bot: Bot,
    user: UserRow,
    pool: asyncpg.Pool,
    panel_deps: PanelDeps,
    plans: Plans,
    settings: Settings,
    metrics: Metrics,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    """ "I've joined": check again, then go on to the trial or the plan's confirmation."""
    plan = plans.get(callback_data.then)
    if callback_data.then != "trial" and plan is None:
        callback_answer.text = i18n.get("error-stale-button")
        callback_answer.show_alert = True
        return
    if not await passes_gate(bot, settings, metrics, user.id):
        callback_answer.text = i18n.get("gate-not-member", channel=settings.required_channel or "")
        callback_answer.show_alert = True
        return
    if plan is not None:
        await show_confirmation(callback, pool, i18n, user, plan)
        return
    await _take_trial(callback, bot, user, panel_deps, metrics, i18n, callback_answer)
