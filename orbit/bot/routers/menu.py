"""The main menu and its small screens: help, settings (language), referral program.

Navigation edits the pressed message (`screens.show`). A press is answered from
the user row the user middleware loaded, so it costs no further query, except
the referral screen (one query for its counts).

These are the hottest updates, so their handlers sit on the dispatcher itself
(`register`, called by `orbit.bot.routers.install`) rather than on a router of
their own: each router level a press passes costs aiogram's routing work again
(the level's middleware chain, its root filters and several copies of the
handler data), a measurable part of a press.
"""

from __future__ import annotations

import asyncpg
from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from orbit.bot import screens
from orbit.bot.middlewares.registered import OPEN_TO_ALL
from orbit.i18n import LOCALES
from orbit.settings import Settings
from orbit.ui import views
from orbit.ui.callbacks import LangCb, MenuCb, Pressed
from orbit.users.queries import UserRow
from orbit.users.registration import referral_payload, referral_stats


async def leave_flow(state: FSMContext, raw_state: str | None) -> None:
    """Navigating away ends any text-input flow (a promo code, a config name)."""
    if raw_state is not None:  # most presses have no state: skip the Redis write
        await state.clear()


async def main_menu(
    callback: CallbackQuery,
    user: UserRow,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    screen = views.main_menu(i18n, user, settings.free_trial_days)
    await screens.show(callback, screen.text, screen.markup)


async def help_screen(
    callback: CallbackQuery,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    screen = views.help_screen(i18n, settings.support_contact)
    await screens.show(callback, screen.text, screen.markup)


async def settings_screen(
    callback: CallbackQuery,
    user: UserRow,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    screen = views.settings_screen(i18n, i18n.locale)
    await screens.show(callback, screen.text, screen.markup)


async def choose_language(
    callback: CallbackQuery,
    callback_data: LangCb,
    user: UserRow,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    if callback_data.code != user.language:
        # Stores the choice (UserLocaleManager.set_locale) and renders in it from now on.
        await i18n.set_locale(callback_data.code)
    callback_answer.text = i18n.get("settings-saved")
    screen = views.settings_screen(i18n, callback_data.code)
    await screens.show(callback, screen.text, screen.markup)


async def referral_screen(
    callback: CallbackQuery,
    bot: Bot,
    user: UserRow,
    pool: asyncpg.Pool,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    stats = await referral_stats(pool, user.id)
    me = await bot.me()  # cached by aiogram after the first call
    link = f"https://t.me/{me.username}?start={referral_payload(user.id)}"
    screen = views.referral_screen(i18n, link, stats, settings.referral_bonus)
    await screens.show(callback, screen.text, screen.markup)


def register(router: Router) -> None:
    """Puts the menu's handlers on `router` (the dispatcher). Every button here but
    help needs a registered user (`RequireRegistered`, on every button)."""
    on = router.callback_query.register
    on(main_menu, Pressed(MenuCb(screen="main")))
    on(help_screen, Pressed(MenuCb(screen="help")), flags={OPEN_TO_ALL: True})
    on(settings_screen, Pressed(MenuCb(screen="settings")))
    on(choose_language, LangCb.filter(F.code.in_(LOCALES)))
    on(referral_screen, Pressed(MenuCb(screen="ref")))
