"""How the admin screens (orbit/bot/routers/admin.py, admin_card.py) refuse and ask again:
one place, so a stale confirmation or a refused value reads the same on every screen."""

from __future__ import annotations

from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from orbit.admin.errors import AdminError
from orbit.audit import bot_actor
from orbit.ui import admin_views as views


def admin_id(event: Message | CallbackQuery) -> int:
    assert event.from_user is not None  # the router filter let only a known admin in
    return event.from_user.id


def actor(event: Message | CallbackQuery) -> str:
    """Who the audit trail names for this admin's action."""
    return bot_actor(admin_id(event))


def action_key(event: CallbackQuery, token: str) -> str:
    """A confirmation's idempotency key: its admin and the token its screen carried, so a
    second press of the same button replays the action instead of doing it again."""
    return f"bot:{admin_id(event)}:{token}"


def alert(callback_answer: CallbackAnswer, text: str) -> None:
    """Refuse a button press with an alert; the screen stays as it was."""
    callback_answer.text = text
    callback_answer.show_alert = True


def refusal(i18n: I18nContext, exc: AdminError) -> str:
    # Parameters may quote what the admin typed: the i18n core escapes them (orbit/i18n.py).
    return i18n.get(exc.message_key, **exc.params)


async def ask_again(message: Message, i18n: I18nContext, text: str) -> None:
    """Refuse a typed value but stay in the flow: the admin may have mistyped."""
    await message.answer(text, reply_markup=views.cancel_markup(i18n))


async def flow_data(
    state: FSMContext,
    raw_state: str | None,
    expected: State,
    callback_answer: CallbackAnswer,
    i18n: I18nContext,
    token: str | None = None,
) -> dict[str, Any] | None:
    """The flow's data if the press belongs to the step the admin is at (and, for a
    confirmation, to the screen that asked: its `token`); else None, and the press is
    answered that the screen is stale. A handler's StateFilter would route such a press
    to the fallback router, which cannot say which screen went stale."""
    data = await state.get_data()
    if raw_state != expected.state or (token is not None and data.get("token") != token):
        alert(callback_answer, i18n.get("admin-confirm-stale"))
        return None
    return data
