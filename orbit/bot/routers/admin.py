"""🛠 The admin panel: `/admin` for ADMIN_IDS only.

The router's filters let only admins in, on every message and every button
press: for anyone else `/admin` is an unknown command (no answer) and a forged
admin button falls through to `fallback` (a "stale button" alert), changing
nothing. Flows that take text (a user lookup, an adjustment, a promo code, a
broadcast) keep their state in the FSM; a money or mass action is confirmed
with a button carrying a token that is also its idempotency key, so a double
press acts once. Long actions (a drain, a broadcast's fan-out and progress) are
`jobs` rows the janitor runs (orbit/janitor/jobs.py): a bot restart never cuts
them short. Every change writes its audit row in its own transaction.
"""

from __future__ import annotations

import logging
import secrets

import asyncpg
from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject, User
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram_i18n import I18nContext
from redis.asyncio import Redis

from orbit import audit, maintenance
from orbit.admin.broadcasts import (
    AUDIENCES,
    Audience,
    audience_count,
    broadcast_progress,
    cancel_broadcast,
    check_audience,
    check_text,
    make_broadcast,
    parse_button,
)
from orbit.admin.errors import AdminError
from orbit.admin.panels import (
    exclude_node,
    include_node,
    instance_overview,
    refresh_balancer,
    set_instance_active,
)
from orbit.admin.promo_line import parse_promo_line
from orbit.admin.stats import collect_stats
from orbit.admin.users import (
    adjust_balance,
    check_reason,
    parse_amount,
    parse_user_ref,
    set_banned,
    user_card,
)
from orbit.bot import admin_replies as replies
from orbit.bot import filters, screens
from orbit.health import SUPERVISOR_SOCKET, collect
from orbit.jobs import queries as jobs
from orbit.marzban.errors import InstanceNotFound
from orbit.marzban.instances import get_instance
from orbit.marzban.provisioning import PanelDeps
from orbit.money import format_rub
from orbit.promos.service import PromoInputError, create_promo, disable_promo, list_promos
from orbit.settings import Settings
from orbit.ui import admin_card_views as card_views
from orbit.ui import admin_views as views
from orbit.ui.admin_views import (
    AdminAdjustCb,
    AdminBcCb,
    AdminCb,
    AdminInstCb,
    AdminMaintCb,
    AdminNodeCb,
    AdminPromoCb,
    AdminUserCb,
)
from orbit.ui.callbacks import MENU_SCREENS, screen_buttons
from orbit.ui.views import Screen
from orbit.users.queries import get_user

log = logging.getLogger(__name__)

router = Router(name="admin")


# async: aiogram runs a plain-def filter in a worker thread (asyncio.to_thread) on every update.
async def is_admin(_: TelegramObject, settings: Settings, event_from_user: User | None = None) -> bool:
    return event_from_user is not None and event_from_user.id in settings.admin_ids


# Checked on every update the router sees, so every admin button re-checks the presser.
router.message.filter(is_admin)
router.callback_query.filter(is_admin)


class AdminFlow(StatesGroup):
    user_query = State()
    adjust_amount = State()
    adjust_reason = State()
    adjust_confirm = State()
    promo_new = State()
    broadcast_audience = State()
    broadcast_text = State()
    broadcast_button = State()
    broadcast_confirm = State()
    maintenance_message = State()
    node_exclude = State()


def _token() -> str:
    return secrets.token_urlsafe(9)


async def _show(event: Message | CallbackQuery, screen: Screen) -> None:
    await screens.show(event, screen.text, screen.markup)


# --- home, stats, health ---------------------------------------------------------------


@router.message(Command("admin"))
async def admin_command(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await state.clear()
    await _show(message, views.home(i18n))


@router.message(StateFilter(AdminFlow), Command("cancel"))
async def cancel(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    await state.clear()
    await message.answer(i18n.get("admin-cancelled"), reply_markup=views.back_markup(i18n))


@router.callback_query(AdminCb.filter(F.screen == "home"))
async def home(callback: CallbackQuery, i18n: I18nContext, state: FSMContext, raw_state: str | None) -> None:
    if raw_state is not None:
        await state.clear()
    await _show(callback, views.home(i18n))


@router.callback_query(AdminCb.filter(F.screen == "stats"))
async def stats(callback: CallbackQuery, pool: asyncpg.Pool, redis: Redis, i18n: I18nContext) -> None:
    await _show(callback, views.stats_screen(i18n, await collect_stats(pool, redis)))


@router.callback_query(AdminCb.filter(F.screen == "health"))
async def health(callback: CallbackQuery, settings: Settings, i18n: I18nContext) -> None:
    # The bot may not see supervisord's socket: the state then reads "unknown".
    await _show(callback, views.health_screen(i18n, await collect(settings, str(SUPERVISOR_SOCKET))))


# --- users: lookup, ban, balance adjustment --------------------------------------------


@router.callback_query(AdminCb.filter(F.screen == "user"))
async def ask_user(callback: CallbackQuery, i18n: I18nContext, state: FSMContext) -> None:
    await state.set_state(AdminFlow.user_query)
    await screens.show(callback, i18n.get("admin-user-prompt"), views.cancel_markup(i18n))


@router.message(StateFilter(AdminFlow.user_query), filters.text_input)
async def find_user(message: Message, pool: asyncpg.Pool, i18n: I18nContext, state: FSMContext) -> None:
    try:
        card = await user_card(pool, parse_user_ref(message.text or ""))
    except AdminError as exc:  # stay in the flow: the admin may have mistyped
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    await state.clear()
    await _show(message, card_views.user_screen(i18n, card))


@router.callback_query(AdminUserCb.filter(F.action == "show"))
async def show_user(
    callback: CallbackQuery,
    callback_data: AdminUserCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        card = await user_card(pool, callback_data.user_id)
    except AdminError as exc:
        replies.alert(callback_answer, replies.refusal(i18n, exc))
        return
    await _show(callback, card_views.user_screen(i18n, card))


@router.callback_query(AdminUserCb.filter(F.action.in_({"ban", "unban"})))
async def ban(
    callback: CallbackQuery,
    callback_data: AdminUserCb,
    pool: asyncpg.Pool,
    panel_deps: PanelDeps,
    settings: Settings,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    banned = callback_data.action == "ban"
    user_id = callback_data.user_id
    try:
        await set_banned(
            panel_deps, user_id, banned, actor=replies.actor(callback), admin_ids=settings.admin_ids
        )
        card = await user_card(pool, user_id)
    except AdminError as exc:
        replies.alert(callback_answer, replies.refusal(i18n, exc))
        return
    notice = i18n.get("admin-banned-done" if banned else "admin-unbanned-done", id=str(user_id))
    callback_answer.text = notice
    await _show(callback, card_views.user_screen(i18n, card))


@router.callback_query(AdminUserCb.filter(F.action == "adjust"))
async def ask_amount(
    callback: CallbackQuery,
    callback_data: AdminUserCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
) -> None:
    target = await get_user(pool, callback_data.user_id)
    if target is None:
        replies.alert(callback_answer, i18n.get("admin-user-not-found", user=str(callback_data.user_id)))
        return
    await state.set_state(AdminFlow.adjust_amount)
    await state.set_data({"user_id": target.id})
    text = i18n.get("admin-adjust-prompt", id=str(target.id), balance=format_rub(target.balance_kop))
    await screens.show(callback, text, views.cancel_markup(i18n))


@router.message(StateFilter(AdminFlow.adjust_amount), filters.text_input)
async def take_amount(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    try:
        amount = parse_amount(message.text or "")
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    await state.update_data(amount_kop=amount)
    await state.set_state(AdminFlow.adjust_reason)
    await message.answer(
        i18n.get("admin-adjust-reason-prompt", amount=views.signed_rub(amount)),
        reply_markup=views.cancel_markup(i18n),
    )


@router.message(StateFilter(AdminFlow.adjust_reason), filters.text_input)
async def take_reason(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    try:
        reason = check_reason(message.text or "")
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    data = await state.update_data(reason=reason, token=_token())
    await state.set_state(AdminFlow.adjust_confirm)
    await _show(
        message, views.adjust_confirm_screen(i18n, data["user_id"], data["amount_kop"], reason, data["token"])
    )


@router.callback_query(AdminAdjustCb.filter())
async def confirm_adjustment(
    callback: CallbackQuery,
    callback_data: AdminAdjustCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    data = await replies.flow_data(
        state, raw_state, AdminFlow.adjust_confirm, callback_answer, i18n, callback_data.token
    )
    if data is None:
        return
    user_id = int(data["user_id"])
    try:
        done = await adjust_balance(
            pool,
            user_id,
            int(data["amount_kop"]),
            reason=str(data["reason"]),
            actor=replies.actor(callback),
            action_key=replies.action_key(callback, callback_data.token),
        )
    except AdminError as exc:
        await state.clear()
        await screens.show(callback, replies.refusal(i18n, exc), views.open_user_markup(i18n, user_id))
        return
    await state.clear()
    if done.replayed:
        text = i18n.get("admin-adjust-replayed", id=str(user_id), balance=format_rub(done.balance_after_kop))
    else:
        text = i18n.get(
            "admin-adjust-done",
            id=str(user_id),
            amount=views.signed_rub(done.amount_kop),
            balance=format_rub(done.balance_after_kop),
        )
    await screens.show(callback, text, views.open_user_markup(i18n, user_id))


# --- promo codes ---------------------------------------------------------------------------


@router.callback_query(AdminCb.filter(F.screen == "promos"))
async def promos(callback: CallbackQuery, pool: asyncpg.Pool, i18n: I18nContext) -> None:
    await _show(callback, views.promos_screen(i18n, await list_promos(pool)))


@router.callback_query(AdminPromoCb.filter())
async def disable_code(
    callback: CallbackQuery,
    callback_data: AdminPromoCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        promo = await disable_promo(pool, callback_data.code, actor=replies.actor(callback))
    except PromoInputError as exc:
        replies.alert(callback_answer, str(exc))
        return
    notice = i18n.get("admin-promo-disabled", code=promo.code)
    callback_answer.text = notice
    await _show(callback, views.promos_screen(i18n, await list_promos(pool), notice))


@router.callback_query(AdminCb.filter(F.screen == "promo_new"))
async def ask_promo(callback: CallbackQuery, i18n: I18nContext, state: FSMContext) -> None:
    await state.set_state(AdminFlow.promo_new)
    await screens.show(callback, i18n.get("admin-promo-prompt"), views.cancel_markup(i18n))


@router.message(StateFilter(AdminFlow.promo_new), filters.text_input)
async def take_promo(message: Message, pool: asyncpg.Pool, i18n: I18nContext, state: FSMContext) -> None:
    try:
        spec = parse_promo_line(message.text or "")
        promo = await create_promo(
            pool,
            spec.code,
            spec.kind,
            spec.value,
            actor=replies.actor(message),
            max_uses=spec.max_uses,
            created_by=replies.admin_id(message),
        )
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    except PromoInputError as exc:  # the promo service's sentence (English)
        await replies.ask_again(message, i18n, i18n.get("admin-promo-refused", reason=str(exc)))
        return
    await state.clear()
    notice = i18n.get("admin-promo-created", code=promo.code)
    await _show(message, views.promos_screen(i18n, await list_promos(pool), notice))


# --- Marzban instances -----------------------------------------------------------------------


@router.callback_query(AdminCb.filter(F.screen == "inst"))
async def instances(callback: CallbackQuery, pool: asyncpg.Pool, redis: Redis, i18n: I18nContext) -> None:
    await _show(callback, views.instances_screen(i18n, await instance_overview(pool, redis)))


@router.callback_query(AdminInstCb.filter(F.action.in_({"on", "off"})))
async def toggle_instance(
    callback: CallbackQuery,
    callback_data: AdminInstCb,
    pool: asyncpg.Pool,
    redis: Redis,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    active = callback_data.action == "on"
    try:
        line = await set_instance_active(
            pool, redis, callback_data.instance_id, active, actor=replies.actor(callback)
        )
    except InstanceNotFound:
        replies.alert(callback_answer, i18n.get("admin-instance-not-found", id=callback_data.instance_id))
        return
    notice = i18n.get(
        "admin-instance-enabled" if active else "admin-instance-disabled",
        id=line.instance.id,
        configs=line.configs,
    )
    callback_answer.text = notice
    await _show(callback, views.instances_screen(i18n, await instance_overview(pool, redis), notice))


@router.callback_query(AdminInstCb.filter(F.action == "drain"))
async def ask_drain(
    callback: CallbackQuery,
    callback_data: AdminInstCb,
    pool: asyncpg.Pool,
    redis: Redis,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    found = [
        line for line in await instance_overview(pool, redis) if line.instance.id == callback_data.instance_id
    ]
    if not found:
        replies.alert(callback_answer, i18n.get("admin-instance-not-found", id=callback_data.instance_id))
        return
    await _show(callback, views.drain_confirm_screen(i18n, found[0]))


@router.callback_query(AdminNodeCb.filter(F.action == "poke"))
async def poke(
    callback: CallbackQuery,
    pool: asyncpg.Pool,
    redis: Redis,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    await refresh_balancer(pool, redis, actor=replies.actor(callback))
    callback_answer.text = i18n.get("admin-balancer-poked")
    await _show(callback, views.instances_screen(i18n, await instance_overview(pool, redis)))


@router.callback_query(AdminNodeCb.filter(F.action == "exclude"))
async def ask_node(
    callback: CallbackQuery,
    callback_data: AdminNodeCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
) -> None:
    if await get_instance(pool, callback_data.instance_id) is None:
        replies.alert(callback_answer, i18n.get("admin-instance-not-found", id=callback_data.instance_id))
        return
    await state.set_state(AdminFlow.node_exclude)
    await state.set_data({"instance_id": callback_data.instance_id})
    text = i18n.get("admin-node-prompt", id=callback_data.instance_id)
    await screens.show(callback, text, views.cancel_markup(i18n))


@router.message(StateFilter(AdminFlow.node_exclude), filters.text_input)
async def take_node(
    message: Message, pool: asyncpg.Pool, redis: Redis, i18n: I18nContext, state: FSMContext
) -> None:
    instance_id = str((await state.get_data())["instance_id"])
    try:
        updated = await exclude_node(
            pool, redis, instance_id, message.text or "", actor=replies.actor(message)
        )
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    except InstanceNotFound:
        await state.clear()
        await message.answer(
            i18n.get("admin-instance-not-found", id=instance_id), reply_markup=views.back_markup(i18n)
        )
        return
    await state.clear()
    notice = i18n.get("admin-node-excluded", id=instance_id, nodes=", ".join(updated.excluded_node_names))
    await _show(message, views.instances_screen(i18n, await instance_overview(pool, redis), notice))


@router.callback_query(AdminNodeCb.filter(F.action == "include"))
async def include(
    callback: CallbackQuery,
    callback_data: AdminNodeCb,
    pool: asyncpg.Pool,
    redis: Redis,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    instance_id = callback_data.instance_id
    found = await get_instance(pool, instance_id)
    names = found.excluded_node_names if found is not None else ()
    if found is None or callback_data.index >= len(names):
        replies.alert(callback_answer, i18n.get("admin-confirm-stale"))
        return
    node = names[callback_data.index]
    try:
        await include_node(pool, redis, instance_id, node, actor=replies.actor(callback))
    except (AdminError, InstanceNotFound):
        replies.alert(callback_answer, i18n.get("admin-confirm-stale"))
        return
    notice = i18n.get("admin-node-included", id=instance_id, node=node)
    callback_answer.text = notice
    await _show(callback, views.instances_screen(i18n, await instance_overview(pool, redis), notice))


# A drain takes as long as its panels: it is a job the janitor runs (a bot restart does
# not cut it short), and its progress and report come as edits of this message. The
# "queued" screen is shown before the job exists: shown after, it could land (paced at one
# edit a second for the chat) over the job's report and hide it.
@router.callback_query(AdminInstCb.filter(F.action == "drain_yes"))
async def drain(
    callback: CallbackQuery,
    callback_data: AdminInstCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    instance_id = callback_data.instance_id
    if await get_instance(pool, instance_id) is None:
        replies.alert(callback_answer, i18n.get("admin-instance-not-found", id=instance_id))
        return
    shown = callback.message if isinstance(callback.message, Message) else None
    await screens.show(callback, i18n.get("admin-drain-running", id=instance_id))
    async with pool.acquire() as conn, conn.transaction():
        job = await jobs.enqueue(
            conn,
            "drain",
            {"instance_id": instance_id},
            created_by=replies.admin_id(callback),
            chat_id=shown.chat.id if shown else None,
            message_id=shown.message_id if shown else None,
            locale=i18n.locale,
        )
        await audit.record(
            conn,
            replies.actor(callback),
            "instance.drain",
            target=audit.instance_target(instance_id),
            after={"job": job.id},
        )
    log.info("admin %d queued the drain of %s as job %d", replies.admin_id(callback), instance_id, job.id)


# --- broadcasts --------------------------------------------------------------------------------
# Audience (and language) → text → optional button → preview and count → send. The
# send writes the broadcast, shows "queued", then queues its job; the janitor's job loop
# fans it out and edits this message with the progress (orbit/janitor/jobs.py).


async def _audience_screen(pool: asyncpg.Pool, i18n: I18nContext, language: str | None) -> Screen:
    counts = {a: await audience_count(pool, Audience(name=a, language=language)) for a in AUDIENCES}
    return views.broadcast_audience_screen(i18n, counts, language)


@router.callback_query(AdminCb.filter(F.screen == "bc"))
async def ask_audience(
    callback: CallbackQuery, pool: asyncpg.Pool, i18n: I18nContext, state: FSMContext
) -> None:
    await state.set_state(AdminFlow.broadcast_audience)
    await state.set_data({})
    await _show(callback, await _audience_screen(pool, i18n, None))


@router.callback_query(AdminBcCb.filter(F.action == "lang"))
async def choose_language(
    callback: CallbackQuery,
    callback_data: AdminBcCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    if await replies.flow_data(state, raw_state, AdminFlow.broadcast_audience, callback_answer, i18n) is None:
        return
    try:
        language = (
            None if callback_data.token == "any" else check_audience("all", callback_data.token).language
        )
    except AdminError as exc:
        replies.alert(callback_answer, replies.refusal(i18n, exc))
        return
    await state.update_data(language=language)
    await _show(callback, await _audience_screen(pool, i18n, language))


@router.callback_query(AdminBcCb.filter(F.action == "aud"))
async def choose_audience(
    callback: CallbackQuery,
    callback_data: AdminBcCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    data = await replies.flow_data(state, raw_state, AdminFlow.broadcast_audience, callback_answer, i18n)
    if data is None:
        return
    try:
        audience = check_audience(callback_data.token, data.get("language"))
    except AdminError as exc:
        replies.alert(callback_answer, replies.refusal(i18n, exc))
        return
    await state.set_state(AdminFlow.broadcast_text)
    await state.set_data({"audience": audience.name, "language": audience.language})
    text = i18n.get(
        "admin-broadcast-prompt",
        count=await audience_count(pool, audience),
        audience=views.audience_name(i18n, audience.name, audience.language),
    )
    await screens.show(callback, text, views.cancel_markup(i18n))


@router.message(StateFilter(AdminFlow.broadcast_text), filters.text_input)
async def take_broadcast(message: Message, i18n: I18nContext, state: FSMContext) -> None:
    # The admin's formatting (bold, links...) arrives as entities; as HTML it is
    # exactly what recipients get, and the preview proves Telegram takes it.
    try:
        text = check_text(message.html_text)
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    await state.update_data(text=text)
    await state.set_state(AdminFlow.broadcast_button)
    await _show(message, views.broadcast_button_screen(i18n, list(MENU_SCREENS)))


async def _preview(message: Message, pool: asyncpg.Pool, i18n: I18nContext, state: FSMContext) -> None:
    data = await state.get_data()
    markup = data.get("markup")
    # Exactly what the users will get: the text and its button, as Telegram shows them.
    await message.answer(
        str(data["text"]), reply_markup=InlineKeyboardMarkup.model_validate(markup) if markup else None
    )
    token = _token()
    await state.update_data(token=token)
    await state.set_state(AdminFlow.broadcast_confirm)
    audience = Audience(name=data["audience"], language=data.get("language"))
    count = await audience_count(pool, audience)
    await _show(message, views.broadcast_confirm_screen(i18n, count, token, audience.name, audience.language))


@router.message(StateFilter(AdminFlow.broadcast_button), filters.text_input)
async def take_button(message: Message, pool: asyncpg.Pool, i18n: I18nContext, state: FSMContext) -> None:
    try:
        markup = parse_button(message.text or "", screen_buttons())
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    await state.update_data(markup=markup)
    await _preview(message, pool, i18n, state)


@router.callback_query(AdminBcCb.filter(F.action == "nobutton"))
async def no_button(
    callback: CallbackQuery,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    if raw_state != AdminFlow.broadcast_button.state or not isinstance(callback.message, Message):
        replies.alert(callback_answer, i18n.get("admin-confirm-stale"))
        return
    await state.update_data(markup=None)
    await _preview(callback.message, pool, i18n, state)


@router.callback_query(AdminBcCb.filter(F.action == "send"))
async def send_broadcast(
    callback: CallbackQuery,
    callback_data: AdminBcCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    data = await replies.flow_data(
        state, raw_state, AdminFlow.broadcast_confirm, callback_answer, i18n, callback_data.token
    )
    if data is None:
        return
    admin_id = replies.admin_id(callback)
    shown = callback.message if isinstance(callback.message, Message) else None
    try:
        async with pool.acquire() as conn, conn.transaction():
            # The token is the action's key: a second press finds this broadcast.
            broadcast_id, replayed = await make_broadcast(
                conn,
                str(data["text"]),
                audience=Audience(name=data["audience"], language=data.get("language")),
                reply_markup=data.get("markup"),
                created_by=admin_id,
                action_key=replies.action_key(callback, callback_data.token),
            )
    except AdminError as exc:
        await state.clear()
        await screens.show(callback, replies.refusal(i18n, exc), views.back_markup(i18n))
        return
    await state.clear()
    total = (await broadcast_progress(pool, broadcast_id)).total
    # Shown before the job exists, so it never lands over the job's edits (see drain).
    await _show(callback, views.broadcast_queued_screen(i18n, broadcast_id, total, replayed))
    if not replayed:  # the fan-out and its progress leave the update handler
        # A bot stopped before this line leaves the broadcast to the janitor's resume chore
        # (resumed_broadcasts): delivered, without the progress edits.
        await jobs.enqueue(
            pool,
            "broadcast",
            {"broadcast_id": broadcast_id},
            created_by=admin_id,
            chat_id=shown.chat.id if shown else None,
            message_id=shown.message_id if shown else None,
            locale=i18n.locale,
        )


@router.callback_query(AdminBcCb.filter(F.action == "progress"))
async def progress(
    callback: CallbackQuery,
    callback_data: AdminBcCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        found = await broadcast_progress(pool, callback_data.broadcast_id)
    except AdminError as exc:
        replies.alert(callback_answer, replies.refusal(i18n, exc))
        return
    await _show(callback, views.broadcast_progress_screen(i18n, found))


@router.callback_query(AdminBcCb.filter(F.action == "cancel"))
async def cancel_sending(
    callback: CallbackQuery,
    callback_data: AdminBcCb,
    pool: asyncpg.Pool,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
) -> None:
    try:
        already, stopped = await cancel_broadcast(
            pool, callback_data.broadcast_id, actor=replies.actor(callback)
        )
        found = await broadcast_progress(pool, callback_data.broadcast_id)
    except AdminError as exc:
        replies.alert(callback_answer, replies.refusal(i18n, exc))
        return
    log.info("admin %d cancelled broadcast %d: %d not sent", replies.admin_id(callback), found.id, stopped)
    notice = i18n.get(
        "admin-broadcast-cancel-again" if already else "admin-broadcast-cancel-done",
        id=str(found.id),
        count=stopped,
    )
    callback_answer.text = notice
    await _show(callback, views.broadcast_progress_screen(i18n, found))


# --- maintenance mode ----------------------------------------------------------------------------


@router.callback_query(AdminCb.filter(F.screen == "maint"))
async def maintenance_screen(
    callback: CallbackQuery, redis: Redis, i18n: I18nContext, state: FSMContext, raw_state: str | None
) -> None:
    if raw_state is not None:
        await state.clear()
    await _show(callback, views.maintenance_screen(i18n, await maintenance.read(redis)))


@router.callback_query(AdminMaintCb.filter(F.action == "on"))
async def ask_maintenance_message(callback: CallbackQuery, i18n: I18nContext, state: FSMContext) -> None:
    await state.set_state(AdminFlow.maintenance_message)
    await _show(callback, views.maintenance_prompt(i18n))


async def _switch_on(pool: asyncpg.Pool, redis: Redis, admin_id: int, text: str, i18n: I18nContext) -> Screen:
    current, was_on = await maintenance.switch_on(pool, redis, text, actor=audit.bot_actor(admin_id))
    log.info("admin %d switched maintenance on%s", admin_id, " (new message)" if was_on else "")
    return views.maintenance_screen(i18n, current, i18n.get("admin-maintenance-switched-on"))


@router.message(StateFilter(AdminFlow.maintenance_message), filters.text_input)
async def take_maintenance_message(
    message: Message, pool: asyncpg.Pool, redis: Redis, i18n: I18nContext, state: FSMContext
) -> None:
    try:
        text = check_text(message.html_text)  # the same bounds as a broadcast's text
    except AdminError as exc:
        await replies.ask_again(message, i18n, replies.refusal(i18n, exc))
        return
    await state.clear()
    await _show(message, await _switch_on(pool, redis, replies.admin_id(message), text, i18n))


@router.callback_query(AdminMaintCb.filter(F.action == "default"))
async def maintenance_default(
    callback: CallbackQuery,
    pool: asyncpg.Pool,
    redis: Redis,
    i18n: I18nContext,
    callback_answer: CallbackAnswer,
    state: FSMContext,
    raw_state: str | None,
) -> None:
    step = AdminFlow.maintenance_message
    if await replies.flow_data(state, raw_state, step, callback_answer, i18n) is None:
        return
    await state.clear()
    await _show(callback, await _switch_on(pool, redis, replies.admin_id(callback), "", i18n))


@router.callback_query(AdminMaintCb.filter(F.action == "off"))
async def maintenance_off(
    callback: CallbackQuery, pool: asyncpg.Pool, redis: Redis, i18n: I18nContext
) -> None:
    ended = await maintenance.switch_off(pool, redis, actor=replies.actor(callback))
    was = "on" if ended else "off"
    log.info("admin %d switched maintenance off (was %s)", replies.admin_id(callback), was)
    await _show(callback, views.maintenance_screen(i18n, None, i18n.get("admin-maintenance-switched-off")))


# A message while a confirmation waits: the buttons decide, not the text.
@router.message(StateFilter(AdminFlow.adjust_confirm, AdminFlow.broadcast_confirm), filters.not_command)
async def confirmation_pending(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("admin-confirm-pending"), reply_markup=views.cancel_markup(i18n))


# Anything but text inside a text flow (a photo, a sticker).
@router.message(
    StateFilter(
        AdminFlow.user_query,
        AdminFlow.adjust_amount,
        AdminFlow.adjust_reason,
        AdminFlow.promo_new,
        AdminFlow.broadcast_text,
        AdminFlow.broadcast_button,
        AdminFlow.maintenance_message,
        AdminFlow.node_exclude,
    ),
    filters.not_text,
)
async def not_text(message: Message, i18n: I18nContext) -> None:
    await message.answer(i18n.get("admin-text-only"), reply_markup=views.cancel_markup(i18n))
