"""🎟 Promo code: the user sends a code as a message (a text-input flow)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram_i18n import I18nContext

from orbit.bot import filters, screens
from orbit.bot.middlewares.registered import RequireRegistered
from orbit.marzban.provisioning import PanelDeps
from orbit.money import format_rub
from orbit.promos.service import PromoError, Redemption, redeem
from orbit.ui import views
from orbit.ui.callbacks import MenuCb
from orbit.users.queries import UserRow

router = Router(name="promo")
router.message.middleware(RequireRegistered())  # buttons: on the dispatcher, for all


class EnterPromo(StatesGroup):
    code = State()


def _cancel(i18n: I18nContext) -> InlineKeyboardMarkup:
    # The main menu handler ends the flow.
    button = InlineKeyboardButton(
        text=i18n.get("btn-promo-cancel"), callback_data=MenuCb(screen="main").pack()
    )
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def _menu(i18n: I18nContext) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[views.main_menu_button(i18n)]])


def applied_text(i18n: I18nContext, done: Redemption) -> str:
    code = done.code
    if done.kind == "balance":
        return i18n.get(
            "promo-applied-balance",
            code=code,
            amount=format_rub(done.value),
            balance=format_rub(done.balance_kop or 0),
        )
    until = views.format_date(done.until) if done.until else ""
    return i18n.get("promo-applied-days", code=code, days=done.value, until=until)


@router.callback_query(MenuCb.filter(F.screen == "promo"))
async def ask_code(callback: CallbackQuery, i18n: I18nContext, state: FSMContext) -> None:
    await state.set_state(EnterPromo.code)
    await screens.show(callback, i18n.get("promo-prompt"), _cancel(i18n))


@router.message(StateFilter(EnterPromo.code), Command("cancel"))
async def cancel(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await state.clear()
    await screens.show(message, i18n.get("promo-cancelled"), _menu(i18n))


# Commands are left to their own handlers (/menu, /start end the flow there).
@router.message(StateFilter(EnterPromo.code), filters.text_input)
async def take_code(
    message: Message,
    user: UserRow,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    state: FSMContext,
) -> None:
    try:
        done = await redeem(panel_deps, user.id, message.text or "")
    except PromoError as exc:  # stay in the flow: the user may have mistyped
        await message.answer(i18n.get(exc.message_key), reply_markup=_cancel(i18n))
        return
    await state.clear()
    await screens.show(message, applied_text(i18n, done), _menu(i18n))


@router.message(StateFilter(EnterPromo.code), filters.not_text)
async def not_text(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("promo-text-only"), reply_markup=_cancel(i18n))
