"""👤 The admin's user card, continued: days granted or removed, a Stars payment
refunded, the configs with their panel and last use, the audit trail (per user
and the whole panel's). ADMIN_IDS only, by the same router filter as `admin`:
for anyone else every button here falls through to `fallback` and changes nothing.

Granting days is confirmed with a button carrying a token that is also the
action's key (`admin_audit.action_key`): a double press grants once. A refund is
idempotent by itself (the payment's ledger key).
"""

from __future__ import annotations

import logging
import secrets

import asyncpg
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext
from redis.asyncio import Redis

from orbit import audit, ledger
from orbit.admin.days import grant_days, parse_days
from orbit.admin.errors import AdminError
from orbit.admin.users import check_reason, config_usage, resolve_user
from orbit.bot import admin_replies as replies
from orbit.bot import filters, screens
from orbit.bot.routers.admin import is_admin
from orbit.configs import queries as configs_q
from orbit.i18n import Translator
from orbit.marzban.provisioning import PanelDeps
from orbit.money import format_rub
from orbit.payments import service, stars
from orbit.ui import admin_card_views as card_views
from orbit.ui import admin_views as views
from orbit.ui.admin_card_views import AUDIT_LOG_SHOWN, AdminCardCb, AdminDaysCb
from orbit.ui.admin_views import AdminCb
from orbit.users.queries import get_user

log = logging.getLogger(__name__)

router = Router(name="admin_card")
router.message.filter(is_admin)
router.callback_query.filter(is_admin)

USER_AUDIT_SHOWN = 20


class CardFlow(StatesGroup):
    days_amount = State()
    days_reason = State()
    days_confirm = State()


@router.callback_query(AdminCb.filter(F.screen == "audit"))
async def audit_log(callback: CallbackQuery, pool: asyncpg.Pool, i18n: I18nContext) -> None:
    entries = await audit.latest(pool, limit=AUDIT_LOG_SHOWN)
    screen = card_views.audit_screen(i18n, entries)
    await screens.show(callback, screen.text, screen.markup)


@router.callback_query(AdminCardCb.filter(F.action == "audit"))
async def user_audit(
    callback: CallbackQuery,
    callback_data: AdminCardCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        user_id = await resolve_user(pool, callback_data.user_id)
    except AdminError as exc:
        replies.alert(callback_answer, replies.refusal(i18n, exc))
        return
    entries = await audit.latest(pool, user_id=user_id, limit=USER_AUDIT_SHOWN)
    screen = card_views.user_audit_screen(i18n, user_id, entries)
    await screens.show(callback, screen.text, screen.markup)


# Answered at once: the panels are asked for each config's usage.
@router.callback_query(AdminCardCb.filter(F.action == "configs"), flags={"callback_answer": {"pre": True}})
async def user_configs(
    callback: CallbackQuery,
    callback_data: AdminCardCb,
    panel_deps: PanelDeps,
    i18n: I18nContext,
) -> None:
    user_id = callback_data.user_id
    if await get_user(panel_deps.pool, user_id) is None:
        await screens.show(
            callback, i18n.get("admin-user-not-found", user=str(user_id)), views.back_markup(i18n)
        )
        return
    configs = await configs_q.list_of_user(panel_deps.pool, user_id)
    usage = await config_usage(panel_deps, configs)
    screen = card_views.configs_screen(i18n, user_id, configs, usage)
    await screens.show(callback, screen.text, screen.markup)


# --- days -----------------------------------------------------------------------------------


@router.callback_query(AdminCardCb.filter(F.action == "days"))
async def ask_days(
    callback: CallbackQuery,
    callback_data: AdminCardCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
) -> None:
    target = await get_user(pool, callback_data.user_id)
    if target is None:
        replies.alert(callback_answer, i18n.get("admin-user-not-found", user=str(callback_data.user_id)))
        return
    await state.set_state(CardFlow.days_amount)
    await state.set_data({"user_id": target.id})
    await screens.show(callback, i18n.get("admin-days-prompt", id=str(target.id)), views.cancel_markup(i18n))


@router.message(StateFilter(CardFlow), Command("cancel"))
async def cancel(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await state.clear()
    await message.answer(i18n.get("admin-cancelled"), reply_markup=views.back_markup(i18n))


@router.message(StateFilter(CardFlow.days_amount), filters.text_input)
async def take_days(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    try:
        days = parse_days(message.text or "")
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    await state.update_data(days=days)
    await state.set_state(CardFlow.days_reason)
    await message.answer(i18n.get("admin-days-reason-prompt"), reply_markup=views.cancel_markup(i18n))


@router.message(StateFilter(CardFlow.days_reason), filters.text_input)
async def take_days_reason(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    try:
        reason = check_reason(message.text or "")
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    data = await state.update_data(reason=reason, token=secrets.token_urlsafe(9))
    await state.set_state(CardFlow.days_confirm)
    screen = card_views.days_confirm_screen(i18n, data["user_id"], data["days"], reason, data["token"])
    await screens.show(message, screen.text, screen.markup)


# Answered at once: the panels are told the new end before the report.
@router.callback_query(AdminDaysCb.filter())
async def confirm_days(
    callback: CallbackQuery,
    callback_data: AdminDaysCb,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    data = await replies.flow_data(
        state, raw_state, CardFlow.days_confirm, callback_answer, i18n, callback_data.token
    )
    if data is None:
        return
    user_id = int(data["user_id"])
    try:
        done = await grant_days(
            panel_deps,
            user_id,
            int(data["days"]),
            reason=str(data["reason"]),
            actor=replies.actor(callback),
            action_key=replies.action_key(callback, callback_data.token),
        )
    except AdminError as exc:
        await state.clear()
        await screens.show(callback, replies.refusal(i18n, exc), views.open_user_markup(i18n, user_id))
        return
    await state.clear()
    await screens.show(callback, card_views.days_done_text(i18n, done), views.open_user_markup(i18n, user_id))


@router.message(StateFilter(CardFlow.days_confirm), filters.not_command)
async def confirmation_pending(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("admin-confirm-pending"), reply_markup=views.cancel_markup(i18n))


@router.message(StateFilter(CardFlow.days_amount, CardFlow.days_reason), filters.not_text)
async def not_text(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("admin-text-only"), reply_markup=views.cancel_markup(i18n))


# --- Stars refund ------------------------------------------------------------------------------


@router.callback_query(AdminCardCb.filter(F.action == "refund"))
async def ask_refund(
    callback: CallbackQuery,
    callback_data: AdminCardCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    payment = await service.get_payment(pool, callback_data.payment_id)
    if payment is None or payment.user_id != callback_data.user_id or not card_views.refundable(payment):
        text = i18n.get("admin-refund-not-refundable", id=str(callback_data.payment_id))
        replies.alert(callback_answer, text)
        return
    screen = card_views.refund_confirm_screen(i18n, payment)
    await screens.show(callback, screen.text, screen.markup)


# Answered at once: Telegram is asked to return the Stars (up to its timeout).
@router.callback_query(AdminCardCb.filter(F.action == "refund_yes"), flags={"callback_answer": {"pre": True}})
async def refund(
    callback: CallbackQuery,
    callback_data: AdminCardCb,
    bot: Bot,
    pool: asyncpg.Pool,
    redis: Redis,
    translator: Translator,
    i18n: I18nContext,
) -> None:
    payment_id, user_id = callback_data.payment_id, callback_data.user_id
    back = views.open_user_markup(i18n, user_id)
    payment = await service.get_payment(pool, payment_id)
    if payment is None or payment.user_id != user_id:
        await screens.show(callback, i18n.get("admin-refund-not-refundable", id=str(payment_id)), back)
        return
    actor = replies.actor(callback)
    try:
        done = await stars.refund_stars(
            pool, redis, translator, bot, payment_id, note=f"{actor}: refund from the user card", actor=actor
        )
    except ledger.InsufficientFunds as exc:
        text = i18n.get(
            "refund-spent",
            id=str(payment_id),
            balance=format_rub(exc.balance_kop),
            needed=format_rub(exc.needed_kop),
        )
        await screens.show(callback, text, back)
        return
    except service.PaymentError as exc:
        await screens.show(callback, i18n.get(exc.message_key), back)
        return
    except TelegramAPIError as exc:
        await screens.show(callback, i18n.get("refund-telegram-failed", error=exc.message), back)
        return
    entry = done.entry
    key = (
        "refund-unconfirmed"
        if not done.confirmed
        else ("refund-already" if entry.replayed else "refund-done")
    )
    text = i18n.get(key, id=str(payment_id), user=str(entry.user_id), amount=format_rub(-entry.amount_kop))
    await screens.show(callback, text, back)
