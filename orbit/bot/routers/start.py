"""`/start` (with an optional `ref_<id>` deep link), `/menu`, `/help`, and the user
blocking or unblocking the bot (Telegram's `my_chat_member` update)."""

from __future__ import annotations

import asyncpg
from aiogram import Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter, Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import ChatMemberUpdated, Message
from aiogram_i18n import I18nContext

from orbit.bot import screens
from orbit.bot.routers.menu import leave_flow
from orbit.settings import Settings
from orbit.ui import views
from orbit.users import queries as user_queries
from orbit.users.queries import UserRow
from orbit.users.registration import parse_referrer, register

router = Router(name="start")


async def _registered(
    message: Message, pool: asyncpg.Pool, referrer: int | None = None
) -> tuple[UserRow, bool]:
    tg = message.from_user
    assert tg is not None
    reg = await register(
        pool,
        tg.id,
        username=tg.username,
        first_name=tg.first_name,
        language_code=tg.language_code,
        referrer_id=referrer,
    )
    return reg.user, reg.is_new


@router.message(CommandStart(), flags={"rate": "start"})
async def start(
    message: Message,
    command: CommandObject,
    pool: asyncpg.Pool,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    user, is_new = await _registered(message, pool, parse_referrer(command.args))
    await leave_flow(state, raw_state)
    name = message.from_user.first_name if message.from_user else ""
    greeting = i18n.get("start-welcome" if is_new else "start-welcome-back", name=name)
    screen = views.main_menu(i18n, user, settings.free_trial_days, greeting)
    await screens.show(message, screen.text, screen.markup)


@router.message(Command("menu"))
async def menu(
    message: Message,
    user: UserRow | None,
    pool: asyncpg.Pool,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    if user is None:  # never pressed /start: register them now, as /start would
        user, _ = await _registered(message, pool)
    await leave_flow(state, raw_state)
    screen = views.main_menu(i18n, user, settings.free_trial_days)
    await screens.show(message, screen.text, screen.markup)


@router.message(Command("help"))
async def help_(
    message: Message,
    settings: Settings,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    screen = views.help_screen(i18n, settings.support_contact)
    await screens.show(message, screen.text, screen.markup)


@router.my_chat_member(ChatMemberUpdatedFilter(member_status_changed=KICKED))
async def blocked(event: ChatMemberUpdated, pool: asyncpg.Pool) -> None:
    # Notifications skip them from now on (a 403 on a send marks them too).
    await user_queries.mark_blocked(pool, event.from_user.id)


@router.my_chat_member(ChatMemberUpdatedFilter(member_status_changed=MEMBER))
async def unblocked(event: ChatMemberUpdated, pool: asyncpg.Pool) -> None:
    await user_queries.unblock(pool, event.from_user.id)
