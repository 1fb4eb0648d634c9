"""The Telegram Bot API emulator, driven by a real aiogram Bot/Dispatcher and the control client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
import zlib
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from orbit.sandbox.telegram import NOT_MODIFIED, TelegramEmulator, parse_html
from orbit.sandbox.telegram_control import ControlError, TelegramControl

TOKEN = "123456:TEST-token"
ANN = 555
BOB = 556


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data)] for text, data in buttons]
    )


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator()
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
async def bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    assert emulator.base_url is not None
    session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
    async with Bot(TOKEN, session=session) as bot:
        yield bot


@pytest.fixture
async def control(emulator: TelegramEmulator, http: aiohttp.ClientSession) -> TelegramControl:
    assert emulator.base_url is not None
    control = TelegramControl(emulator.base_url, http)
    await control.reset()
    # Opt-out, on purpose: these tests drive the API with a bare aiogram Bot that has no
    # send budget and check shapes, not pacing; the rate-limit tests turn limits back on.
    await control.set_rate_limits(False)
    return control


async def test_rate_limits_are_on_by_default_and_after_reset(
    emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    assert TelegramEmulator().rate_limits.enabled
    assert emulator.base_url is not None
    control = TelegramControl(emulator.base_url, http)
    await control.set_rate_limits(False)
    await control.reset()
    stats = await control.rate_stats()
    assert (stats.limits.enabled, stats.limits.per_chat_per_sec, stats.limits.global_per_sec) == (True, 1, 30)


@contextlib.asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    started = asyncio.Event()
    dp.startup.register(started.set)
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False, polling_timeout=5)
    )
    await asyncio.wait_for(started.wait(), 5)
    try:
        yield
    finally:
        await dp.stop_polling()
        await task


async def test_get_me_takes_the_id_from_the_token(bot: Bot, control: TelegramControl) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.first_name, me.username) == (
        123456,
        True,
        "Orbit Sandbox",
        "orbit_sandbox_bot",
    )


async def test_long_poll_returns_a_user_command_and_offset_confirms_it(
    bot: Bot, control: TelegramControl
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    assert not poll.done()
    sent = await control.send_text(ANN, "/start promo", first_name="Ann", language_code="ru")
    updates = await asyncio.wait_for(poll, 2)

    assert [u.update_id for u in updates] == [sent.update_id]
    message = updates[0].message
    assert message is not None and message.from_user is not None
    assert (message.text, message.chat.id, message.from_user.language_code) == ("/start promo", ANN, "ru")
    assert message.entities is not None and message.entities[0].type == "bot_command"
    assert message.entities[0].length == len("/start")
    assert await bot.get_updates(offset=sent.update_id, timeout=0) == updates
    assert await bot.get_updates(offset=sent.update_id + 1, timeout=0) == []


async def test_allowed_updates_drop_other_kinds(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "hi")
    updates = await bot.get_updates(allowed_updates=["message"], timeout=0)
    blocked = await control.block(ANN)
    assert blocked.dropped
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == []


async def test_dispatcher_replies_to_start_and_answers_the_button(bot: Bot, control: TelegramControl) -> None:
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(
            "<b>Welcome</b>, pick a plan", parse_mode="HTML", reply_markup=keyboard(("1 month", "buy:m1"))
        )

    @router.callback_query(F.data.startswith("buy:"))
    async def buy(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text(f"You chose {query.data}")
        await query.answer("Got it", show_alert=True)

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot):
        sent = await control.send_text(ANN, "/start")
        events = await control.wait_for(ANN, after_seq=sent.seq, timeout=5)
        reply = events[0].message
        assert (events[0].kind, reply.text, reply.parse_mode) == ("sent", "Welcome, pick a plan", "HTML")
        assert reply.button_texts == ["1 month"]

        pressed = await control.press(ANN, button_text="1 month")
        answer = await control.callback_answer(pressed.callback_query_id, timeout=5)
        assert (answer.answered, answer.text, answer.show_alert, answer.data) == (
            True,
            "Got it",
            True,
            "buy:m1",
        )

    [shown] = await control.messages(ANN)
    assert shown.text == "You chose buy:m1" and shown.edited and shown.buttons == []
    assert shown.edits[0].text == "Welcome, pick a plan"


async def test_edits_and_deletes(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "/start")
    markup = keyboard(("Yes", "yes"))
    sent = await bot.send_message(ANN, "Sure?", reply_markup=markup)

    with pytest.raises(TelegramBadRequest, match="message is not modified") as caught:
        await bot.edit_message_text("Sure?", chat_id=ANN, message_id=sent.message_id, reply_markup=markup)
    assert caught.value.message == f"Bad Request: {NOT_MODIFIED}"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=ANN, message_id=sent.message_id, reply_markup=markup)

    edited = await bot.edit_message_text("Done", chat_id=ANN, message_id=sent.message_id)
    assert isinstance(edited, Message) and edited.edit_date is not None
    assert edited.reply_markup is None  # editMessageText without reply_markup drops the keyboard

    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=ANN, message_id=999)
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=ANN, message_id=1)

    assert await bot.delete_message(ANN, sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(ANN, sent.message_id)
    await control.advance_clock(49 * 3600)
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(ANN, 1)

    [shown] = await control.messages(ANN)
    assert shown.deleted and shown.text == "Done"
    assert [e.kind for e in await control.wait_for(ANN, timeout=0)] == ["sent", "edited", "deleted"]


async def test_send_errors_use_telegram_descriptions(bot: Bot, control: TelegramControl) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(BOB, "hello")
    await control.send_text(ANN, "/start")
    cases = [
        (dict(text="x" * 4097), "Bad Request: message is too long"),
        (dict(text="   "), "Bad Request: message text is empty"),
        (dict(text="<b>x", parse_mode="HTML"), "can't parse entities: Can't find end tag .*\"b\""),
        (dict(text="1 < 2", parse_mode="HTML"), 'Unsupported start tag "" at byte offset 2'),
        (dict(text="x", reply_markup=keyboard(("Buy", "b" * 65))), "Bad Request: BUTTON_DATA_INVALID"),
    ]
    for kwargs, error in cases:
        with pytest.raises(TelegramBadRequest, match=error):
            await bot.send_message(ANN, **kwargs)  # type: ignore[arg-type]
    assert await bot.send_message(ANN, "ok", reply_markup=keyboard(("Buy", "b" * 64)))


def test_html_parse_mode_gives_plain_text_and_utf16_entities() -> None:
    text, entities = parse_html(
        '🙂 <b>bold <i>both</i></b> <a href="https://x.io/?a=1&amp;b=2">link</a>&amp;'
    )
    assert text == "🙂 bold both link&"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.io/?a=1&b=2"},
    ]
    code = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert code == ("x = 1", [{"type": "pre", "offset": 0, "length": 5, "language": "python"}])
    when = parse_html('until <tg-time unix="1767225600" format="D">1 Jan</tg-time>')
    assert when[1] == [
        {"type": "date_time", "offset": 6, "length": 5, "unix_time": 1767225600, "date_time_format": "D"}
    ]


async def test_blocked_user_gets_forbidden_until_they_write_again(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "/start")
    blocked = await control.block(ANN)
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(ANN, "news")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(ANN, "typing")

    updates = await bot.get_updates(timeout=0)
    update = updates[-1]
    assert update.update_id == blocked.update_id and update.my_chat_member is not None
    assert update.my_chat_member.new_chat_member.status == "kicked"

    await control.send_text(ANN, "/start")  # pressing "Restart" unblocks
    assert await bot.send_message(ANN, "welcome back")


async def test_rate_limits_per_chat(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "/start")
    limits = await control.set_rate_limits(per_chat_per_sec=1, global_per_sec=30)
    assert limits.enabled

    await bot.send_message(ANN, "one")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(ANN, "two")
    assert caught.value.retry_after == 1
    with pytest.raises(TelegramRetryAfter):  # retried without waiting: still refused, counted as early
        await bot.send_message(ANN, "two again")
    await control.advance_clock(1.0)
    await bot.send_message(ANN, "two, after waiting")

    stats = await control.rate_stats()
    assert [(r.scope, r.early) for r in stats.too_many_requests] == [("chat", False), ("chat", True)]
    assert stats.early_retries == 1
    assert stats.accepted_total == 2 and sum(s.accepted for s in stats.per_second) == 2
    assert stats.max_per_chat_window == 1
    assert [m.text for m in await control.messages(ANN)] == ["one", "two, after waiting"]


async def test_rate_limits_global(bot: Bot, control: TelegramControl) -> None:
    users = [1001, 1002, 1003, 1004]
    for user in users:
        await control.send_text(user, "/start")
    await control.set_rate_limits(per_chat_per_sec=10, global_per_sec=3)
    for user in users[:3]:
        await bot.send_message(user, "broadcast")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(users[3], "broadcast")
    assert caught.value.retry_after >= 1
    stats = await control.rate_stats()
    assert stats.too_many_requests[0].scope == "global"
    assert stats.max_global_window == 3

    await control.set_rate_limits(False)
    await bot.send_message(users[3], "broadcast")


async def test_stars_invoice_paid_then_refunded_once(bot: Bot, control: TelegramControl) -> None:
    router = Router()
    paid: list[str] = []

    @router.message(Command("buy"))
    async def buy(message: Message) -> None:
        await message.answer_invoice(
            title="1 month",
            description="VPN for 30 days",
            payload="order:42",
            currency="XTR",
            prices=[LabeledPrice(label="1 month", amount=150)],
        )

    @router.pre_checkout_query()
    async def check(query: PreCheckoutQuery) -> None:
        if query.invoice_payload == "order:42":
            await query.answer(ok=True)
        else:
            await query.answer(ok=False, error_message="Sold out")

    @router.message(F.successful_payment)
    async def thanks(message: Message) -> None:
        assert message.successful_payment is not None
        paid.append(message.successful_payment.telegram_payment_charge_id)
        await message.answer("Paid, thank you!")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(dp, bot):
        sent = await control.send_text(ANN, "/buy")
        [event] = await control.wait_for(ANN, after_seq=sent.seq)
        invoice = event.message.invoice
        assert invoice is not None
        assert (invoice.currency, invoice.total_amount, invoice.payload) == ("XTR", 150, "order:42")

        outcome = await control.pay(ANN, event.message.message_id)
        assert outcome.status == "paid" and outcome.telegram_payment_charge_id is not None
        [thanks_event] = await control.wait_for(ANN, after_seq=event.seq)
        assert thanks_event.message.text == "Paid, thank you!"
    assert paid == [outcome.telegram_payment_charge_id]

    with pytest.raises(ControlError, match="already paid"):
        await control.pay(ANN, event.message.message_id)

    assert await bot.refund_star_payment(ANN, outcome.telegram_payment_charge_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
        await bot.refund_star_payment(ANN, outcome.telegram_payment_charge_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_ID_INVALID"):
        await bot.refund_star_payment(ANN, "stx-unknown")

    [charge] = await control.charges()
    assert charge.refunded and charge.total_amount == 150
    transactions = (await bot.get_star_transactions()).transactions
    assert [(t.id, t.source is not None, t.receiver is not None) for t in transactions] == [
        (charge.telegram_payment_charge_id, True, False),
        (charge.telegram_payment_charge_id, False, True),
    ]


async def test_payment_rejected_timed_out_and_delivered_twice(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "/start")
    [start] = await bot.get_updates(timeout=0)
    stars = dict(description="VPN", currency="XTR", prices=[LabeledPrice(label="1 month", amount=150)])
    invoice = await bot.send_invoice(ANN, title="1 month", payload="order:1", **stars)  # type: ignore[arg-type]
    offset = start.update_id + 1

    async def pre_checkout() -> PreCheckoutQuery:
        nonlocal offset
        [update] = await bot.get_updates(offset=offset, timeout=5)
        offset = update.update_id + 1
        assert update.pre_checkout_query is not None
        return update.pre_checkout_query

    pending = asyncio.create_task(control.pay(ANN, invoice.message_id, timeout=0.3))
    query = await pre_checkout()
    assert (query.invoice_payload, query.total_amount, query.from_user.id) == ("order:1", 150, ANN)
    assert (await pending).status == "timeout"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_pre_checkout_query(query.id, ok=True)

    pending = asyncio.create_task(control.pay(ANN, invoice.message_id))
    await bot.answer_pre_checkout_query((await pre_checkout()).id, ok=False, error_message="Sold out")
    rejected = await pending
    assert (rejected.status, rejected.error_message) == ("rejected", "Sold out")

    pending = asyncio.create_task(control.pay(ANN, invoice.message_id, twice=True))
    await bot.answer_pre_checkout_query((await pre_checkout()).id, ok=True)
    outcome = await pending
    assert outcome.status == "paid" and len(outcome.update_ids) == 2
    updates = await bot.get_updates(offset=offset, timeout=0)
    payments = [u.message.successful_payment for u in updates if u.message]
    assert [p.telegram_payment_charge_id for p in payments if p] == [outcome.telegram_payment_charge_id] * 2


async def test_invoice_link_and_stars_rules(bot: Bot, control: TelegramControl) -> None:
    link = await bot.create_invoice_link(
        title="1 month",
        description="VPN",
        payload="order:7",
        currency="XTR",
        prices=[LabeledPrice(label="1 month", amount=100)],
    )
    assert link.startswith("https://t.me/$")
    with pytest.raises(TelegramBadRequest, match="STARS_INVOICE_INVALID"):
        await bot.create_invoice_link(
            title="x",
            description="x",
            payload="x",
            currency="XTR",
            prices=[LabeledPrice(label="a", amount=1), LabeledPrice(label="b", amount=1)],
        )
    pending = asyncio.create_task(control.pay(BOB, link=link))
    [update] = await bot.get_updates(timeout=5)
    assert update.pre_checkout_query is not None and update.pre_checkout_query.total_amount == 100
    await bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok=True)
    assert (await pending).status == "paid"


async def test_forged_callback_data_reaches_the_bot(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "/start")
    sent = await bot.send_message(ANN, "Plans", reply_markup=keyboard(("1 month", "buy:m1")))
    with pytest.raises(ControlError, match="forge"):
        await control.press(ANN, sent.message_id, data="buy:m999")
    pressed = await control.press(ANN, sent.message_id, data="buy:m999", forge=True)

    updates = await bot.get_updates(timeout=0)
    query = updates[-1].callback_query
    assert query is not None and query.data == "buy:m999" and query.id == pressed.callback_query_id
    assert isinstance(query.message, Message) and query.message.message_id == sent.message_id

    assert await bot.answer_callback_query(query.id, text="Nope")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    old = await control.press(ANN, sent.message_id, data="buy:m1")
    await control.advance_clock(15 * 60 + 1)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(old.callback_query_id)
    assert not (await control.callback_answer(old.callback_query_id, timeout=0)).answered


async def test_groups_and_channels(bot: Bot, control: TelegramControl) -> None:
    group, channel = -1001234, -1005678
    await control.create_group(group, "supergroup", "Friends")
    await control.create_group(channel, "channel", "News")
    with pytest.raises(ControlError, match="negative"):
        await control.create_group(42)
    with pytest.raises(ControlError, match="no group"):
        await control.send_text(ANN, "hi", chat_id=-1009999)

    sent = await control.send_text(ANN, "/start@orbit_sandbox_bot", chat_id=group, first_name="Ann")
    post = await control.send_text(BOB, "news", chat_id=channel)
    updates = await bot.get_updates(timeout=0)
    message = updates[-2].message
    assert message is not None and message.from_user is not None
    assert (message.chat.id, message.chat.type, message.chat.title) == (group, "supergroup", "Friends")
    assert (message.from_user.id, message.from_user.first_name) == (ANN, "Ann")
    assert message.message_id == sent.message_id and sent.chat_id == group
    channel_post = updates[-1].channel_post
    assert channel_post is not None and channel_post.from_user is None
    assert channel_post.sender_chat is not None and channel_post.sender_chat.id == channel
    assert channel_post.message_id == post.message_id

    # Writing in a group opens no private chat: the bot cannot write first.
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(ANN, "hello")
    # The bot can post in the group; a member presses a button of that message.
    menu = await bot.send_message(group, "Menu", reply_markup=keyboard(("Help", "m:help")))
    assert menu.chat.type == "supergroup"
    pressed = await control.press(ANN, button_text="Help", chat_id=group)
    query = (await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0))[-1].callback_query
    assert query is not None and query.id == pressed.callback_query_id
    assert isinstance(query.message, Message) and query.message.chat.id == group
    assert query.from_user.id == ANN
    shown = await control.messages(group, include_user=True)
    assert [m.text for m in shown] == ["/start@orbit_sandbox_bot", "Menu"]


async def test_unknown_method_and_bad_tokens(
    emulator: TelegramEmulator, http: aiohttp.ClientSession, control: TelegramControl
) -> None:
    async with http.post(f"{emulator.base_url}/bot{TOKEN}/sendTelepathy") as resp:
        assert resp.status == 404
        assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    async with http.post(f"{emulator.base_url}/botnot-a-token/getMe") as resp:
        assert resp.status == 401
        assert (await resp.json())["description"] == "Unauthorized"

    revoked = "777:revoked"
    await control.set_token_valid(revoked, False)
    session = AiohttpSession(api=TelegramAPIServer.from_base(str(emulator.base_url)))
    async with Bot(revoked, session=session) as other:
        with pytest.raises(TelegramUnauthorizedError):
            await other.get_me()
    assert [c.method for c in await control.calls()] == ["sendTelepathy"]


async def test_photo_upload_file_id_resend_and_download(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "/start")
    data = png(640, 480)
    sent = await bot.send_photo(
        ANN, BufferedInputFile(data, "qr.png"), caption="<i>Scan</i>", parse_mode="HTML"
    )
    assert sent.photo is not None and sent.caption == "Scan"
    biggest = sent.photo[-1]
    assert (biggest.width, biggest.height, biggest.file_size) == (640, 480, len(data))

    again = await bot.send_photo(ANN, biggest.file_id)
    assert again.photo is not None and again.photo[-1].file_id == biggest.file_id
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(ANN, "AgACno-such-file")
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(ANN, BufferedInputFile(b"not an image", "x.png"))

    file = await bot.get_file(biggest.file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == data
    assert await control.file(biggest.file_id) == data
    shown = await control.messages(ANN)
    assert shown[0].photo is not None and shown[0].caption == "Scan"
    assert shown[0].caption_entities == [{"type": "italic", "offset": 0, "length": 4}]
    call = (await control.calls("sendPhoto"))[0]
    assert call.params["photo"].startswith("attach://")


async def test_users_lists_everyone_the_bot_met_with_their_profile(control: TelegramControl) -> None:
    assert await control.users() == []
    await control.send_text(ANN, "/start", first_name="Ann", username="ann", language_code="ru")
    await control.send_text(ANN + 1, "hi")
    users = await control.users()
    assert [(u.id, u.first_name, u.username, u.language_code) for u in users] == [
        (ANN, "Ann", "ann", "ru"),
        (ANN + 1, f"User {ANN + 1}", f"user{ANN + 1}", "en"),
    ]


async def test_chat_member_and_commands(bot: Bot, control: TelegramControl) -> None:
    channel = -1001234567890
    assert (await bot.get_chat_member(channel, ANN)).status == "left"
    await control.set_member(channel, ANN, "member")
    await control.set_member("@orbit_news", ANN, "administrator")
    assert (await bot.get_chat_member(channel, ANN)).status == "member"
    assert (await bot.get_chat_member("@Orbit_News", ANN)).status == "administrator"

    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="buy", description="Buy"),
    ]
    assert await bot.set_my_commands(commands)
    assert await bot.set_my_commands([BotCommand(command="start", description="Старт")], language_code="ru")
    assert [c.command for c in await bot.get_my_commands()] == ["start", "buy"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    assert [c.description for c in await bot.get_my_commands(language_code="ru")] == ["Старт"]


async def test_webhook_delivers_with_secret_and_blocks_get_updates(
    bot: Bot, control: TelegramControl
) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> SendMessage:
        return message.answer("hello from the webhook")  # executed by the emulator ("reply into webhook")

    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="s3cret").register(app, path="/wh")
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/wh", secret_token="s3cret")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()
        sent = await control.send_text(ANN, "/start")
        [event] = await control.wait_for(ANN, after_seq=sent.seq)
        assert event.message.text == "hello from the webhook"
        info = await bot.get_webhook_info()
        assert info.url.endswith("/wh") and info.pending_update_count == 0
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == []
    finally:
        await runner.cleanup()


async def test_wait_for_more_than_and_timeout(bot: Bot, control: TelegramControl) -> None:
    await control.send_text(ANN, "/start")
    with pytest.raises(TimeoutError):
        await control.wait_for(ANN, timeout=0.05)
    for text in ("a", "b", "c"):
        await bot.send_message(ANN, text)
    events = await control.wait_for(ANN, more_than=1, timeout=1)
    assert [e.message.text for e in events] == ["b", "c"]
    everything = await control.wait_for(ANN, include_user=True, timeout=0)
    assert [e.kind for e in everything] == ["received", "sent", "sent", "sent"]
    assert [m.text for m in await control.messages(ANN, include_user=True)] == ["/start", "a", "b", "c"]


async def test_runs_alone_as_a_module() -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orbit.sandbox.telegram",
        "--port",
        str(port),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stderr is not None
        line = await asyncio.wait_for(process.stderr.readline(), 10)
        assert f"http://127.0.0.1:{port}" in line.decode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe") as resp,
        ):
            assert (await resp.json())["result"]["id"] == 123456
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
