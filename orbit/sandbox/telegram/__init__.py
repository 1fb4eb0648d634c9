"""A Telegram Bot API emulator in memory, for tests and the sandbox.

aiogram talks to it through ``AiohttpSession(api=TelegramAPIServer.from_base(url))``
exactly as it talks to api.telegram.org. Tests and the sandbox play the users
through the control API under ``/control`` (docs/telegram-emulator.md;
client: ``orbit.sandbox.telegram_control.TelegramControl``).

One module per concern: ``constants`` (limits, error texts), ``errors``, ``wire``
(Bot API objects), ``formatting`` (UTF-16, HTML parse mode), ``images``, ``state``
(one world per bot), ``params`` (reading a call), ``transport`` (HTTP, flood limits),
``messages`` (storing and showing messages), ``api_*`` (the Bot API methods by area),
``control_*`` (the control API), ``emulator`` (the assembled class), ``run`` (alone).

Run alone: ``python -m orbit.sandbox.telegram --host 127.0.0.1 --port 8081``.
"""

from __future__ import annotations

from orbit.sandbox.telegram.constants import (
    BAD_GATEWAY_HTML,
    BLOCKED,
    BOT_FIRST_NAME,
    BOT_USERNAME,
    CALLBACK_DEADLINE,
    DELETE_DEADLINE,
    MAX_CALLBACK_DATA,
    MAX_CALLBACK_TEXT,
    MAX_CAPTION,
    MAX_GET_FILE,
    MAX_POLL_TIMEOUT,
    MAX_RECORDED_CALLS,
    MAX_TEXT,
    MAX_UPLOAD,
    NOT_FOUND,
    NOT_MODIFIED,
    OPT_IN_UPDATE_TYPES,
    POLL_CONFLICT,
    QUERY_TOO_OLD,
    RATE_LIMITED_METHODS,
    SECRET_HEADER,
    STARS_SUBSCRIPTION_PERIOD,
    UNAUTHORIZED,
    WEBHOOK_CONFLICT,
    WEBHOOK_RETRY_MAX,
    WEBHOOK_RETRY_MIN,
    WEBHOOK_TIMEOUT,
    WRONG_FILE,
)
from orbit.sandbox.telegram.emulator import TelegramEmulator
from orbit.sandbox.telegram.errors import BotApiError
from orbit.sandbox.telegram.formatting import HtmlParseError, parse_html
from orbit.sandbox.telegram.images import image_size
from orbit.sandbox.telegram.wire import (
    CallbackQuery,
    Chat,
    ChatMemberUpdated,
    Document,
    Invoice,
    Message,
    PhotoSize,
    PreCheckoutQuery,
    RefundedPayment,
    SuccessfulPayment,
    User,
)

__all__ = [
    "BAD_GATEWAY_HTML",
    "BLOCKED",
    "BOT_FIRST_NAME",
    "BOT_USERNAME",
    "CALLBACK_DEADLINE",
    "DELETE_DEADLINE",
    "MAX_CALLBACK_DATA",
    "MAX_CALLBACK_TEXT",
    "MAX_CAPTION",
    "MAX_GET_FILE",
    "MAX_POLL_TIMEOUT",
    "MAX_RECORDED_CALLS",
    "MAX_TEXT",
    "MAX_UPLOAD",
    "NOT_FOUND",
    "NOT_MODIFIED",
    "OPT_IN_UPDATE_TYPES",
    "POLL_CONFLICT",
    "QUERY_TOO_OLD",
    "RATE_LIMITED_METHODS",
    "SECRET_HEADER",
    "STARS_SUBSCRIPTION_PERIOD",
    "UNAUTHORIZED",
    "WEBHOOK_CONFLICT",
    "WEBHOOK_RETRY_MAX",
    "WEBHOOK_RETRY_MIN",
    "WEBHOOK_TIMEOUT",
    "WRONG_FILE",
    "BotApiError",
    "CallbackQuery",
    "Chat",
    "ChatMemberUpdated",
    "Document",
    "HtmlParseError",
    "Invoice",
    "Message",
    "PhotoSize",
    "PreCheckoutQuery",
    "RefundedPayment",
    "SuccessfulPayment",
    "TelegramEmulator",
    "User",
    "image_size",
    "parse_html",
]
