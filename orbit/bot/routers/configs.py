"""🔑 My configs: the list with usage, one config with its link and QR code, create,
rename (a text-input flow), delete with confirmation.

The list shows each config's usage as stored last, with its age, and asks no
panel; a config's own screen reads its panel (see `orbit.configs.service`).

Every button that names a config goes through `orbit.configs.service`, which
finds only the pressing user's live configs: another user's id, a deleted
config or a forged button get "not in your list" and nothing changes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext

from orbit.bot import filters, screens
from orbit.bot.routers.menu import leave_flow
from orbit.configs import service
from orbit.configs.queries import ConfigRecord
from orbit.configs.service import ConfigError, ConfigList, ConfigView
from orbit.marzban.provisioning import PanelDeps, Usage
from orbit.plans import Plans
from orbit.ui import views
from orbit.ui.callbacks import ButtonData, MenuCb
from orbit.users.queries import UserRow

router = Router(name="configs")
# Buttons need a registered user (RequireRegistered, on every button); messages do not:
# the rename flow answers a missing user as a missing config.

_T = TypeVar("_T")

_UNITS = ("b", "kb", "mb", "gb", "tb")
_PANEL_STATUSES = ("active", "disabled", "limited", "expired", "on_hold")


class ConfigCb(ButtonData, prefix="cfg"):
    """`action`: list, new, show, qr, rename, delete (asks), erase (confirmed).

    `id` is the config's, except for `new`: the count of configs the user had
    made when the button was shown, so a double press creates one config.
    """

    action: str
    id: int = 0


class RenameConfig(StatesGroup):
    name = State()


def _button(text: str, callback: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=callback.pack())


def _size(i18n: I18nContext, nbytes: int) -> str:
    value = float(nbytes)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    shown = f"{value:.0f}" if unit == 0 or value >= 100 else f"{value:.1f}"
    return i18n.get("configs-size", value=shown, unit=_UNITS[unit])


def _status(
    i18n: I18nContext, config: ConfigRecord, usage: Usage | None, active: bool = True
) -> str:
    """On a config's own screen: the panel's status as read now."""
    if config.status == "pending":
        return i18n.get("configs-status-pending")
    if not active or config.expired_at is not None:
        # Our end date, not the panel's copy: expired the moment the subscription ends.
        return i18n.get("configs-status-expired")
    if usage is None:
        return i18n.get("configs-status-unknown")
    status = usage.status if usage.status in _PANEL_STATUSES else "unknown"
    return i18n.get(f"configs-status-{status}")


def _listed_status(i18n: I18nContext, config: ConfigRecord, active: bool) -> str:
    """In the list, no panel is asked: our row and the usage stored last."""
    if config.status == "pending" or not active or config.expired_at is not None:
        return _status(i18n, config, None, active)
    if config.status == "disabled":
        return i18n.get("configs-status-disabled")
    limit = config.data_limit_bytes
    if limit and config.usage_bytes is not None and config.usage_bytes >= limit:
        return i18n.get("configs-status-limited")
    return i18n.get("configs-status-active")


def _age(i18n: I18nContext, read_at: datetime, now: datetime) -> str:
    """How long ago a usage was read, by the project's clock: "5 min ago", else its date."""
    age = max(now - read_at, timedelta(0))
    if age < timedelta(minutes=1):
        return i18n.get("configs-read-now")
    if age < timedelta(hours=1):
        return i18n.get("configs-read-minutes-ago", minutes=age // timedelta(minutes=1))
    if age < timedelta(days=1):
        return i18n.get("configs-read-hours-ago", hours=age // timedelta(hours=1))
    return i18n.get("configs-read-at", at=views.format_date(read_at))


def _traffic(i18n: I18nContext, config: ConfigRecord, now: datetime, *, live: bool, unread: str) -> str:
    """The config's usage of its limit (this period, all panels); a stored one with its
    age, unless `live` (read from the panel now). `unread`: the text when never read."""
    if config.usage_bytes is None or config.usage_read_at is None:
        return i18n.get(unread)
    used = _size(i18n, config.usage_bytes)
    limit = config.data_limit_bytes
    if limit:
        traffic = i18n.get("configs-traffic", used=used, limit=_size(i18n, limit))
    else:
        traffic = i18n.get("configs-traffic-unlimited", used=used)
    if live:
        return traffic
    return i18n.get("configs-traffic-as-of", traffic=traffic, age=_age(i18n, config.usage_read_at, now))


def list_screen(i18n: I18nContext, listing: ConfigList) -> views.Screen:
    lines = [
        i18n.get("configs-title", count=len(listing.configs), max=listing.max_configs),
        i18n.get("configs-until", until=_until(i18n, listing.until, listing.active)),
        "",
    ]
    if not listing.configs:
        lines.append(i18n.get("configs-empty"))
    for index, config in enumerate(listing.configs, 1):
        lines.append(
            i18n.get(
                "configs-item",
                index=index,
                name=config.name,
                status=_listed_status(i18n, config, listing.active),
                traffic=_traffic(i18n, config, listing.now, live=False, unread="configs-traffic-not-read"),
            )
        )
    rows = [[_button(f"{i}. {c.name}", ConfigCb(action="show", id=c.id))]
            for i, c in enumerate(listing.configs, 1)]
    if listing.active and len(listing.configs) < listing.max_configs:
        rows.append([_button(i18n.get("btn-config-new"), ConfigCb(action="new", id=listing.made))])
    elif not listing.active:
        rows.append([_button(i18n.get("btn-buy"), MenuCb(screen="buy"))])
    rows.append([views.main_menu_button(i18n)])
    return views.Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def _until(i18n: I18nContext, until: datetime | None, active: bool | None = None) -> str:
    """Every config lasts as long as the subscription (our row, not the panel's copy);
    `active` as the database's clock judged it, when the caller has it."""
    if active is None:
        active = until is not None and until > datetime.now(UTC)
    if until is None or not active:
        return i18n.get("configs-until-inactive")
    return views.format_date(until)


def detail_screen(
    i18n: I18nContext, view: ConfigView, until: datetime | None, note: str | None = None
) -> views.Screen:
    config = view.config
    lines = [note, ""] if note else []
    lines.append(
        i18n.get(
            "configs-detail",
            name=config.name,
            status=_status(i18n, config, view.usage),
            until=_until(i18n, until),
            traffic=_traffic(
                i18n, config, view.now, live=view.usage is not None, unread="configs-traffic-unknown"
            ),
        )
    )
    lines.append("")
    if config.subscription_url:
        lines.append(i18n.get("configs-link", url=config.subscription_url))
    else:
        lines.append(i18n.get("configs-link-pending"))
    rows = []
    if config.subscription_url:
        rows.append([_button(i18n.get("btn-config-qr"), ConfigCb(action="qr", id=config.id))])
    rows.append([
        _button(i18n.get("btn-config-rename"), ConfigCb(action="rename", id=config.id)),
        _button(i18n.get("btn-config-delete"), ConfigCb(action="delete", id=config.id)),
    ])
    rows.append([_button(i18n.get("btn-configs-back"), ConfigCb(action="list"))])
    return views.Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


def _back_to_list(i18n: I18nContext) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [_button(i18n.get("btn-configs-back"), ConfigCb(action="list"))],
        [views.main_menu_button(i18n)],
    ])


def _error_text(i18n: I18nContext, error: ConfigError) -> str:
    if isinstance(error, service.ConfigLimitReached | service.DailyConfigCap):
        return i18n.get(error.message_key, limit=error.limit)
    if isinstance(error, service.InvalidConfigName):
        return i18n.get(error.message_key, max=service.NAME_MAX_LENGTH)
    return i18n.get(error.message_key)


async def _pressed(found: Awaitable[_T], callback_answer: CallbackAnswer, i18n: I18nContext) -> _T | None:
    """What a button's lookup found; None when the service refused the press (an
    alert, and the screen stays as it was)."""
    try:
        return await found
    except ConfigError as exc:
        callback_answer.text = _error_text(i18n, exc)
        callback_answer.show_alert = True
        return None


# Rate budgets (orbit/ratelimit.py): the list asks no panel (stored usage), so it is
# navigation; a config's own screen reads its panel and spends `panel_read`.
@router.callback_query(MenuCb.filter(F.screen == "configs"))
@router.callback_query(ConfigCb.filter(F.action == "list"))
async def show_list(
    callback: CallbackQuery,
    user: UserRow,
    panel_deps: PanelDeps,
    plans: Plans,
    i18n: I18nContext,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    await leave_flow(state, raw_state)
    listing = await service.list_configs(panel_deps, plans, user.id)
    screen = list_screen(i18n, listing)
    await screens.show(callback, screen.text, screen.markup)


# Answered at once: placing a config may take a while when panels fail over.
@router.callback_query(
    ConfigCb.filter(F.action == "new"), flags={"callback_answer": {"pre": True}, "rate": "config_create"}
)
async def create(
    callback: CallbackQuery,
    callback_data: ConfigCb,
    user: UserRow,
    panel_deps: PanelDeps,
    plans: Plans,
    i18n: I18nContext,
) -> None:
    await screens.show_interim(callback, i18n.get("configs-creating"))
    try:
        view = await service.create_config(panel_deps, plans, user.id, seen_made=callback_data.id)
    except ConfigError as exc:
        await screens.show(callback, _error_text(i18n, exc), _back_to_list(i18n))
        return
    note = i18n.get("configs-created", name=view.config.name)
    screen = detail_screen(i18n, view, user.subscription_until, note)
    await screens.show_effect(
        callback, screen.text, screen.markup,
        pool=panel_deps.pool, redis=panel_deps.redis, dedup_key=f"effect:config:{view.config.id}",
    )


@router.callback_query(ConfigCb.filter(F.action == "show"), flags={"rate": "panel_read"})
async def show_one(
    callback: CallbackQuery,
    callback_data: ConfigCb,
    user: UserRow,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    view = await _pressed(service.show_config(panel_deps, user.id, callback_data.id), callback_answer, i18n)
    if view is None:
        return
    await leave_flow(state, raw_state)
    screen = detail_screen(i18n, view, user.subscription_until)
    await screens.show(callback, screen.text, screen.markup)


@router.callback_query(ConfigCb.filter(F.action == "qr"), flags={"rate": "qr"})
async def send_qr(
    callback: CallbackQuery,
    callback_data: ConfigCb,
    bot: Bot,
    user: UserRow,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    found = await _pressed(service.config_qr(panel_deps, user.id, callback_data.id), callback_answer, i18n)
    if found is None:
        return
    config, png = found
    # A photo cannot be edited into a text screen: « Back sends the config screen anew.
    back = InlineKeyboardMarkup(inline_keyboard=[
        [_button(i18n.get("btn-back"), ConfigCb(action="show", id=config.id))]
    ])
    await bot.send_photo(
        user.id,
        BufferedInputFile(png, filename=f"config-{config.id}.png"),
        caption=i18n.get("configs-qr-caption", name=config.name),
        reply_markup=back,
    )


# The name typed next is answered with the config's usage: a panel read per rename.
@router.callback_query(ConfigCb.filter(F.action == "rename"), flags={"rate": "panel_read"})
async def ask_name(
    callback: CallbackQuery,
    callback_data: ConfigCb,
    user: UserRow,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
) -> None:
    config = await _pressed(service.get_config(panel_deps, user.id, callback_data.id), callback_answer, i18n)
    if config is None:
        return
    await state.set_state(RenameConfig.name)
    await state.update_data(config_id=config.id)
    cancel = InlineKeyboardMarkup(inline_keyboard=[
        [_button(i18n.get("btn-config-cancel"), ConfigCb(action="show", id=config.id))]
    ])
    text = i18n.get("configs-rename-prompt", name=config.name, max=service.NAME_MAX_LENGTH)
    await screens.show(callback, text, cancel)


@router.message(StateFilter(RenameConfig.name), Command("cancel"))
async def cancel_rename(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await state.clear()
    await screens.show(message, i18n.get("configs-rename-cancelled"), _back_to_list(i18n))


# Commands are left to their own handlers (/menu, /start end the flow there).
@router.message(StateFilter(RenameConfig.name), filters.text_input)
async def take_name(
    message: Message,
    user: UserRow | None,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    state: FSMContext,
) -> None:
    config_id = (await state.get_data()).get("config_id")
    if user is None or not isinstance(config_id, int):
        await state.clear()
        await screens.show(message, i18n.get("configs-not-found"), _back_to_list(i18n))
        return
    try:
        view = await service.rename_config(panel_deps, user.id, config_id, message.text or "")
    except service.InvalidConfigName as exc:  # stay in the flow: another name may fit
        await message.answer(_error_text(i18n, exc))
        return
    except ConfigError as exc:
        await state.clear()
        await screens.show(message, _error_text(i18n, exc), _back_to_list(i18n))
        return
    await state.clear()
    note = i18n.get("configs-renamed", name=view.config.name)
    screen = detail_screen(i18n, view, user.subscription_until, note)
    await screens.show(message, screen.text, screen.markup)


@router.message(StateFilter(RenameConfig.name), filters.not_text)
async def not_a_name(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("configs-name-invalid", max=service.NAME_MAX_LENGTH))


@router.callback_query(ConfigCb.filter(F.action == "delete"))
async def confirm_delete(
    callback: CallbackQuery,
    callback_data: ConfigCb,
    user: UserRow,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    config = await _pressed(service.get_config(panel_deps, user.id, callback_data.id), callback_answer, i18n)
    if config is None:
        return
    await leave_flow(state, raw_state)
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [_button(i18n.get("btn-config-delete-yes"), ConfigCb(action="erase", id=config.id))],
        [_button(i18n.get("btn-config-cancel"), ConfigCb(action="show", id=config.id))],
    ])
    await screens.show(callback, i18n.get("configs-delete-confirm", name=config.name), markup)


@router.callback_query(ConfigCb.filter(F.action == "erase"), flags={"rate": "config_delete"})
async def delete(
    callback: CallbackQuery,
    callback_data: ConfigCb,
    user: UserRow,
    panel_deps: PanelDeps,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    deleting = service.delete_config(panel_deps, user.id, callback_data.id)
    config = await _pressed(deleting, callback_answer, i18n)
    if config is None:
        return
    text = i18n.get("configs-deleted", name=config.name)
    await screens.show(callback, text, _back_to_list(i18n))
