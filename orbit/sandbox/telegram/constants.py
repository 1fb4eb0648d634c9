"""Telegram's limits, its error texts, and the patterns the Bot API checks input against."""

from __future__ import annotations

import re

BOT_FIRST_NAME = "Orbit Sandbox"
BOT_USERNAME = "orbit_sandbox_bot"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_TEXT = 200
MAX_UPLOAD = 50 * 1024 * 1024
MAX_GET_FILE = 20 * 1024 * 1024
MAX_RECORDED_CALLS = 100_000
MAX_POLL_TIMEOUT = 600
CALLBACK_DEADLINE = 15 * 60.0
DELETE_DEADLINE = 48 * 3600
STARS_SUBSCRIPTION_PERIOD = 2592000
WEBHOOK_TIMEOUT = 10.0
WEBHOOK_RETRY_MIN = 0.1
WEBHOOK_RETRY_MAX = 5.0

# Update types a bot gets when allowed_updates is empty or was never given.
OPT_IN_UPDATE_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Sends and edits that count against the flood limits.
RATE_LIMITED_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendInvoice",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
    }
)

UNAUTHORIZED = "Unauthorized"
NOT_FOUND = "Not Found"
# What a reverse proxy in front of a Bot API server answers while that server is down.
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
BLOCKED = "Forbidden: bot was blocked by the user"
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
WRONG_FILE = "wrong file identifier/HTTP URL specified"

_TOKEN_RE = re.compile(r"(\d+):(\S+)")
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_BUTTON_URL_RE = re.compile(r"(?:https?|tg)://\S+", re.IGNORECASE)
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
