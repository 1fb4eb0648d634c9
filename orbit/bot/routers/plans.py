"""Buying a plan with the balance: the list, a confirmation, the purchase."""

from __future__ import annotations

import secrets

import asyncpg
from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from orbit import ledger
from orbit.bot import screens
from orbit.bot.gate import passes_gate
from orbit.bot.routers.menu import leave_flow
from orbit.marzban.provisioning import PanelDeps
from orbit.metrics import Metrics
from orbit.plans import Plan, Plans
from orbit.settings import Settings
from orbit.subscriptions import purchase_plan, quote_end
from orbit.ui import views
from orbit.ui.callbacks import BuyCb, MenuCb, PlanCb
from orbit.users.queries import UserRow

router = Router(name="plans")


@router.callback_query(MenuCb.filter(F.screen == "buy"))
async def plans_screen(
    callback: CallbackQuery,
    user: UserRow,
    plans: Plans,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    screen = views.plans_screen(i18n, plans, user.balance_kop)
    await screens.show(callback, screen.text, screen.markup)


async def show_confirmation(
    callback: CallbackQuery, pool: asyncpg.Pool, i18n: I18nContext, user: UserRow, plan: Plan
) -> None:
    """The price and the end date the purchase would give, with a fresh purchase token."""
    until = await quote_end(pool, user.id, plan.days)
    assert until is not None
    screen = views.confirm_screen(
        i18n, plan, user.balance_kop, until, secrets.token_hex(4), user.auto_renew
    )
    await screens.show(callback, screen.text, screen.markup)


def _pressed_plan(
    plans: Plans, plan_id: str, i18n: I18nContext, callback_answer: CallbackAnswer
) -> Plan | None:
    """The plan a button names; None, with an alert, once it is no longer sold."""
    plan = plans.get(plan_id)
    if plan is None:
        callback_answer.text = i18n.get("buy-unknown-plan")
        callback_answer.show_alert = True
    return plan


async def _gate(
    callback: CallbackQuery, bot: Bot, settings: Settings, metrics: Metrics, i18n: I18nContext,
    user: UserRow, then: str,
) -> bool:
    if await passes_gate(bot, settings, metrics, user.id):
        return True
    assert settings.required_channel is not None
    screen = views.gate_screen(i18n, settings.required_channel, then)
    await screens.show(callback, screen.text, screen.markup)
    return False


@router.callback_query(PlanCb.filter())
async def confirm_screen(
    callback: CallbackQuery,
    callback_data: PlanCb,
    bot: Bot,
    user: UserRow,
    pool: asyncpg.Pool,
    plans: Plans,
    settings: Settings,
    metrics: Metrics,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    plan = _pressed_plan(plans, callback_data.plan_id, i18n, callback_answer)
    if plan is None:
        return
    if await _gate(callback, bot, settings, metrics, i18n, user, plan.id):
        await show_confirmation(callback, pool, i18n, user, plan)


@router.callback_query(BuyCb.filter(), flags={"rate": "purchase"})
async def buy(
    callback: CallbackQuery,
    callback_data: BuyCb,
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
    plan = _pressed_plan(plans, callback_data.plan_id, i18n, callback_answer)
    if plan is None:
        return
    if callback_data.price != plan.price:  # the user must pay what they were shown
        callback_answer.text = i18n.get("buy-price-changed")
        callback_answer.show_alert = True
        await show_confirmation(callback, pool, i18n, user, plan)
        return
    if not await _gate(callback, bot, settings, metrics, i18n, user, plan.id):
        return
    try:
        purchase = await purchase_plan(panel_deps, user.id, plan, callback_data.token)
    except ledger.InsufficientFunds as exc:
        metrics.inc("purchases_refused_total", reason="insufficient_funds")
        screen = views.insufficient_screen(i18n, exc.needed_kop, exc.balance_kop)
        await screens.show(callback, screen.text, screen.markup)
        return
    if purchase.replayed:
        callback_answer.text = i18n.get("buy-already-done")
    else:
        metrics.inc("purchases_total", plan=plan.id)
    screen = views.purchase_done_screen(i18n, plans.get(purchase.plan_id) or plan, purchase)
    await screens.show_effect(
        callback, screen.text, screen.markup,
        pool=panel_deps.pool, redis=panel_deps.redis, dedup_key=f"effect:purchase:{purchase.id}",
    )
