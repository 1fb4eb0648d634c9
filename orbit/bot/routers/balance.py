"""💰 Balance and top-ups: the balance screen, an amount (preset or typed), the
configured methods, then the method's own screen (TON transfer, Stars invoice,
CryptoBot invoice). The confirmation reaches the user through the outbox."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import asyncpg
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext
from redis.asyncio import Redis

from orbit import ledger
from orbit.bot import filters, screens
from orbit.bot.middlewares.registered import RequireRegistered
from orbit.bot.routers.menu import leave_flow
from orbit.i18n import Translator
from orbit.money import format_rub
from orbit.payments import cryptobot, service, stars, ton, topup
from orbit.payments.queries import PaymentRow
from orbit.settings import Settings
from orbit.ui import views
from orbit.ui.callbacks import ButtonData, MenuCb
from orbit.users.queries import UserRow

log = logging.getLogger(__name__)

router = Router(name="balance")
router.message.middleware(RequireRegistered())  # buttons: on the dispatcher, for all

HISTORY_SIZE = 5


class TopupCb(ButtonData, prefix="tu"):
    """Top up by `amount` roubles; 0 asks the user to type an amount."""

    amount: int


class TopupStartCb(ButtonData, prefix="topup"):
    """The amount screen."""


class MethodCb(ButtonData, prefix="pm"):
    """Pay `amount` kopecks with `method` (creates a payment)."""

    method: str
    amount: int


class TonPaidCb(ButtonData, prefix="tonpaid"):
    payment_id: int


class CryptoCheckCb(ButtonData, prefix="cbchk"):
    payment_id: int


class EnterAmount(StatesGroup):
    amount = State()


def _button(text: str, callback: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=callback.pack())


def _keyboard(*rows: list[InlineKeyboardButton]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])


def _limits(settings: Settings) -> dict[str, str]:
    low, high = service.topup_limits(settings)
    return {"min": format_rub(low), "max": format_rub(high)}


def _refusal(i18n: I18nContext, settings: Settings, exc: service.PaymentError) -> str:
    if isinstance(exc, service.AmountOutOfRange):
        return i18n.get(exc.message_key, **_limits(settings))
    if isinstance(exc, service.TooManyPendingPayments):
        return i18n.get(exc.message_key, limit=exc.limit, minutes=settings.payment_timeout_minutes)
    return i18n.get(exc.message_key)


# --- screens -----------------------------------------------------------------------------------


def balance_screen(i18n: I18nContext, user: UserRow, entries: list[ledger.HistoryEntry]) -> views.Screen:
    lines = [i18n.get("balance-title", balance=format_rub(user.balance_kop)), ""]
    if entries:
        lines.append(i18n.get("balance-history-title"))
        for entry in entries:
            sign = "+" if entry.amount_kop > 0 else "−"
            lines.append(
                i18n.get(
                    "balance-entry",
                    amount=sign + format_rub(abs(entry.amount_kop)),
                    kind=i18n.get(f"ledger-kind-{entry.kind}"),
                    date=views.format_date(entry.created_at),
                )
            )
    else:
        lines.append(i18n.get("balance-history-empty"))
    return views.Screen(
        "\n".join(lines),
        _keyboard([_button(i18n.get("btn-topup-start"), TopupStartCb())], [views.main_menu_button(i18n)]),
    )


def amounts_screen(i18n: I18nContext, settings: Settings) -> views.Screen:
    presets = [
        _button(i18n.get("btn-topup-amount", amount=format_rub(kop)), TopupCb(amount=kop // 100))
        for kop in topup.preset_amounts(settings)
    ]
    return views.Screen(
        i18n.get("topup-choose-amount", **_limits(settings)),
        _keyboard(
            presets[:3],
            presets[3:],
            [_button(i18n.get("btn-topup-custom"), TopupCb(amount=0))],
            [_button(i18n.get("btn-back"), MenuCb(screen="balance")), views.main_menu_button(i18n)],
        ),
    )


def methods_screen(i18n: I18nContext, settings: Settings, amount_kop: int) -> views.Screen:
    buttons = []
    for method in topup.available_methods(settings):
        params = (
            {"stars": stars.stars_for(amount_kop, settings.telegram_stars_rate)} if method == "stars" else {}
        )
        buttons.append(
            [_button(i18n.get(f"btn-method-{method}", **params), MethodCb(method=method, amount=amount_kop))]
        )
    return views.Screen(
        i18n.get("topup-choose-method", amount=format_rub(amount_kop)),
        _keyboard(
            *buttons,
            [_button(i18n.get("btn-back"), TopupStartCb()), views.main_menu_button(i18n)],
        ),
    )


def cancel_markup(i18n: I18nContext) -> InlineKeyboardMarkup:
    return _keyboard([_button(i18n.get("btn-topup-cancel"), MenuCb(screen="balance"))])


# --- balance and amounts -----------------------------------------------------------------------


@router.callback_query(MenuCb.filter(F.screen == "balance"))
async def show_balance(
    callback: CallbackQuery,
    user: UserRow,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    screen = balance_screen(i18n, user, await ledger.history(pool, user.id, HISTORY_SIZE))
    await screens.show(callback, screen.text, screen.markup)


@router.callback_query(TopupStartCb.filter())
async def choose_amount(
    callback: CallbackQuery,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    screen = amounts_screen(i18n, settings)
    await screens.show(callback, screen.text, screen.markup)


@router.callback_query(TopupCb.filter(F.amount == 0))
async def ask_amount(
    callback: CallbackQuery,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
) -> None:
    await state.set_state(EnterAmount.amount)
    await screens.show(callback, i18n.get("topup-enter-amount", **_limits(settings)), cancel_markup(i18n))


@router.callback_query(TopupCb.filter(F.amount > 0))
async def amount_chosen(
    callback: CallbackQuery,
    callback_data: TopupCb,
    settings: Settings,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        amount_kop = service.check_topup_amount(settings, callback_data.amount * 100)
    except service.AmountOutOfRange as exc:  # a forged or outdated button
        callback_answer.text = _refusal(i18n, settings, exc)
        callback_answer.show_alert = True
        return
    screen = methods_screen(i18n, settings, amount_kop)
    await screens.show(callback, screen.text, screen.markup)


@router.message(StateFilter(EnterAmount.amount), Command("cancel"))
async def cancel_amount(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await state.clear()
    await message.answer(i18n.get("topup-cancelled"), reply_markup=_keyboard([views.main_menu_button(i18n)]))


# Commands are left to their own handlers (/menu, /start end the flow there).
@router.message(StateFilter(EnterAmount.amount), filters.text_input)
async def take_amount(
    message: Message,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
) -> None:
    try:
        amount_kop = service.parse_topup_amount(settings, message.text or "")
    except service.PaymentError as exc:  # stay in the flow: the user may have mistyped
        await message.answer(_refusal(i18n, settings, exc), reply_markup=cancel_markup(i18n))
        return
    await state.clear()
    screen = methods_screen(i18n, settings, amount_kop)
    await message.answer(screen.text, reply_markup=screen.markup)


@router.message(StateFilter(EnterAmount.amount), filters.not_text)
async def amount_not_text(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("payment-amount-invalid"), reply_markup=cancel_markup(i18n))


# --- methods -------------------------------------------------------------------------------------


@router.callback_query(MethodCb.filter(F.method == "ton"), flags={"rate": "payment"})
async def pay_ton(
    callback: CallbackQuery,
    callback_data: MethodCb,
    user: UserRow,
    pool: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    settings: Settings,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        invoice = await ton.create_ton_payment(pool, redis, http, settings, user.id, callback_data.amount)
    except service.PaymentError as exc:
        callback_answer.text = _refusal(i18n, settings, exc)
        callback_answer.show_alert = True
        return
    caption = i18n.get(
        "topup-ton",
        amount=format_rub(invoice.payment.amount_kop),
        ton=invoice.amount_ton,
        address=invoice.address,
        comment=invoice.comment,
        link=invoice.link,
        until=views.format_date(invoice.payment.expires_at),
        rate=f"{invoice.rate_rub:.2f}",
    )
    png = await asyncio.to_thread(ton.qr_png, invoice.link)
    markup = _keyboard(
        [_button(i18n.get("btn-ton-paid"), TonPaidCb(payment_id=invoice.payment.id))],
        [views.main_menu_button(i18n)],
    )
    if isinstance(callback.message, Message):
        await callback.message.answer_photo(
            BufferedInputFile(png, "ton.png"), caption=caption, reply_markup=markup
        )


@router.callback_query(TonPaidCb.filter(), flags={"rate": "payment"})
async def ton_paid(
    callback: CallbackQuery,
    callback_data: TonPaidCb,
    user: UserRow,
    pool: asyncpg.Pool,
    redis: Redis,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        payment = await topup.poke_ton_watcher(pool, redis, user.id, callback_data.payment_id)
    except service.PaymentError as exc:
        callback_answer.text = i18n.get(exc.message_key)
        callback_answer.show_alert = True
        return
    if await topup.shown_status(pool, payment) == "expired":
        # A transfer that still arrives is credited (late rate): the screen says so.
        text = i18n.get("topup-ton-expired", amount=format_rub(payment.amount_kop))
        await _show_expired(callback, i18n, text)
        callback_answer.text = i18n.get("topup-expired-alert")
        callback_answer.show_alert = True
        return
    callback_answer.text = i18n.get(_status_key(payment, "ton-checking"))
    callback_answer.show_alert = True


def expired_markup(i18n: I18nContext) -> InlineKeyboardMarkup:
    return _keyboard([_button(i18n.get("btn-topup-start"), TopupStartCb())], [views.main_menu_button(i18n)])


async def _show_expired(callback: CallbackQuery, i18n: I18nContext, text: str) -> None:
    """The invoice's own message becomes "expired", without its pay buttons."""
    message = callback.message
    if not isinstance(message, Message):
        return
    try:
        if message.photo:
            await message.edit_caption(caption=text, reply_markup=expired_markup(i18n))
        else:
            await message.edit_text(text, reply_markup=expired_markup(i18n))
    except TelegramBadRequest as exc:  # too old to edit, or already shown: the alert says it
        if not screens.is_not_modified(exc):
            log.info("expired invoice screen not edited: %s", exc.message)


def _status_key(payment: PaymentRow, pending_key: str) -> str:
    if payment.status in service.ALREADY_CONFIRMED:
        return "topup-already-paid"
    return pending_key


@router.callback_query(MethodCb.filter(F.method == "stars"), flags={"rate": "payment"})
async def pay_stars(
    callback: CallbackQuery,
    callback_data: MethodCb,
    bot: Bot,
    user: UserRow,
    pool: asyncpg.Pool,
    settings: Settings,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        invoice = await stars.create_stars_payment(pool, settings, user.id, callback_data.amount)
    except service.PaymentError as exc:
        callback_answer.text = _refusal(i18n, settings, exc)
        callback_answer.show_alert = True
        return
    amount = format_rub(invoice.payment.amount_kop)
    await bot.send_invoice(
        chat_id=user.id,
        title=i18n.get("stars-invoice-title", amount=amount),
        description=i18n.get("stars-invoice-description", amount=amount, stars=invoice.stars),
        payload=invoice.payload,
        currency=stars.CURRENCY,
        prices=[LabeledPrice(label=i18n.get("stars-invoice-label", amount=amount), amount=invoice.stars)],
    )


@router.callback_query(MethodCb.filter(F.method == "cryptobot"), flags={"rate": "payment"})
async def pay_cryptobot(
    callback: CallbackQuery,
    callback_data: MethodCb,
    user: UserRow,
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    settings: Settings,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        payment = await cryptobot.create_cryptobot_payment(
            pool, http, settings, user.id, callback_data.amount, i18n.get("cryptobot-description")
        )
    except service.PaymentError as exc:
        callback_answer.text = _refusal(i18n, settings, exc)
        callback_answer.show_alert = True
        return
    screen = views.Screen(
        i18n.get(
            "topup-cryptobot",
            amount=format_rub(payment.amount_kop),
            until=views.format_date(payment.expires_at),
        ),
        InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=i18n.get("btn-cryptobot-pay"), url=payment.pay_url or "")],
                [_button(i18n.get("btn-cryptobot-check"), CryptoCheckCb(payment_id=payment.id))],
                [views.main_menu_button(i18n)],
            ]
        ),
    )
    await screens.show(callback, screen.text, screen.markup)


@router.callback_query(CryptoCheckCb.filter(), flags={"rate": "payment"})
async def check_cryptobot(
    callback: CallbackQuery,
    callback_data: CryptoCheckCb,
    user: UserRow,
    pool: asyncpg.Pool,
    redis: Redis,
    http: aiohttp.ClientSession,
    settings: Settings,
    translator: Translator,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        result = await cryptobot.check_payment(
            pool, redis, http, translator, settings, user.id, callback_data.payment_id
        )
    except service.PaymentError as exc:
        callback_answer.text = i18n.get(exc.message_key)
        callback_answer.show_alert = True
        return
    status = result.status
    if status == "pending" and await topup.shown_status(pool, result.payment) == "expired":
        status = "expired"  # our window has passed, whatever Crypto Pay's says
    if status == "expired":
        text = i18n.get("topup-cryptobot-expired", amount=format_rub(result.payment.amount_kop))
        await _show_expired(callback, i18n, text)
    callback_answer.text = i18n.get(f"cryptobot-check-{status}")
    callback_answer.show_alert = True
