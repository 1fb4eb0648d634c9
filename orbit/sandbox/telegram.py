"""In-memory Telegram Bot API emulator for tests and the sandbox.

aiogram talks to it through ``AiohttpSession(api=TelegramAPIServer.from_base(url))``
exactly as it talks to api.telegram.org. Tests and the sandbox play the users
through the control API under ``/control`` (docs/telegram-emulator.md;
client: ``orbit.sandbox.telegram_control.TelegramControl``).

Run alone: ``python -m orbit.sandbox.telegram --host 127.0.0.1 --port 8081``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import mimetypes
import re
import secrets
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from orbit.sandbox import standalone
from orbit.sandbox import telegram_control as ctl

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

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


class BotApiError(Exception):
    """An error answer of the Bot API: HTTP status = error_code."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _bad(message: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {message}")


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- Bot API objects (wire shapes) ------------------------------------------------------


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class User(_Wire):
    id: int
    is_bot: bool
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool | None = None
    can_join_groups: bool | None = None
    can_read_all_group_messages: bool | None = None
    supports_inline_queries: bool | None = None


class Chat(_Wire):
    id: int
    type: str
    title: str | None = None  # groups and channels
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None


class PhotoSize(_Wire):
    file_id: str
    file_unique_id: str
    width: int
    height: int
    file_size: int | None = None


class Document(_Wire):
    file_id: str
    file_unique_id: str
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None


class Invoice(_Wire):
    title: str
    description: str
    start_parameter: str
    currency: str
    total_amount: int


class SuccessfulPayment(_Wire):
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str
    subscription_expiration_date: int | None = None
    is_recurring: bool | None = None
    is_first_recurring: bool | None = None


class RefundedPayment(_Wire):
    currency: str
    total_amount: int
    invoice_payload: str
    telegram_payment_charge_id: str
    provider_payment_charge_id: str | None = None


class Message(_Wire):
    message_id: int
    date: int
    chat: Chat
    from_: User | None = msgspec.field(default=None, name="from")
    sender_chat: Chat | None = None  # a channel post's channel
    edit_date: int | None = None
    reply_to_message: Message | None = None
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    link_preview_options: dict[str, Any] | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    photo: list[PhotoSize] | None = None
    document: Document | None = None
    invoice: Invoice | None = None
    successful_payment: SuccessfulPayment | None = None
    refunded_payment: RefundedPayment | None = None
    reply_markup: dict[str, Any] | None = None


class CallbackQuery(_Wire):
    id: str
    from_: User = msgspec.field(name="from")
    chat_instance: str
    message: Message | None = None
    data: str | None = None


class PreCheckoutQuery(_Wire):
    id: str
    from_: User = msgspec.field(name="from")
    currency: str
    total_amount: int
    invoice_payload: str


class ChatMemberUpdated(_Wire):
    chat: Chat
    from_: User = msgspec.field(name="from")
    date: int
    old_chat_member: dict[str, Any]
    new_chat_member: dict[str, Any]


def _member(status: str, user: User) -> dict[str, Any]:
    """A ChatMember object with every field aiogram requires for `status`."""
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member["can_be_edited"] = False
        member["is_anonymous"] = False
        for right in (
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_promote_members",
            "can_change_info",
            "can_invite_users",
            "can_post_stories",
            "can_edit_stories",
            "can_delete_stories",
            "can_send_welcome_messages",
        ):
            member[right] = True
    elif status == "restricted":
        member["is_member"] = True
        member["until_date"] = 0
        for right in (
            "can_send_messages",
            "can_send_audios",
            "can_send_documents",
            "can_send_photos",
            "can_send_videos",
            "can_send_video_notes",
            "can_send_voice_notes",
            "can_send_polls",
            "can_send_other_messages",
            "can_add_web_page_previews",
            "can_react_to_messages",
            "can_edit_tag",
            "can_change_info",
            "can_invite_users",
            "can_pin_messages",
            "can_manage_topics",
        ):
            member[right] = False
    elif status == "kicked":
        member["until_date"] = 0
    return member


# --- text: UTF-16 lengths, commands, HTML parse mode ------------------------------------


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[dict[str, Any]] | None:
    match = _COMMAND_RE.match(text)
    if match is None or (match.end() < len(text) and not text[match.end()].isspace()):
        return None
    return [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]


class HtmlParseError(ValueError):
    pass


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_NAMED_CHAR_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAR_REF_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")
_TAG_NAME_RE = re.compile(r"</?([^\s>]*)")
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_PLAIN_RUN_RE = re.compile(r"[^<&]+")


def _char_ref(name: str) -> str | None:
    if not name.startswith("#"):
        return _NAMED_CHAR_REFS.get(name)
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    return chr(code) if 0 < code <= 0x10FFFF else None


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: plain text plus entities (offsets in UTF-16 units).

    Raises HtmlParseError with the description Telegram gives after
    "Bad Request: can't parse entities: ".
    """
    out: list[str] = []
    offset = 0
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(source):
        if source[i] == "<":
            i = _html_tag(source, i, offset, stack, entities)
            continue
        if source[i] == "&":
            match = _CHAR_REF_RE.match(source, i)
            decoded = _char_ref(match.group(1)) if match else None
            if match is None or decoded is None:
                piece, i = "&", i + 1
            else:
                piece, i = decoded, match.end()
        else:
            run = _PLAIN_RUN_RE.match(source, i)
            assert run is not None
            piece, i = run.group(), run.end()
        out.append(piece)
        offset += _utf16_len(piece)
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _html_tag(
    source: str,
    i: int,
    offset: int,
    stack: list[tuple[str, int, dict[str, str]]],
    entities: list[dict[str, Any]],
) -> int:
    at = len(source[:i].encode())
    end = source.find(">", i)
    name_match = _TAG_NAME_RE.match(source, i)
    assert name_match is not None
    name = name_match.group(1).lower()
    if source.startswith("</", i):
        if end == -1:
            raise HtmlParseError(f"Unclosed end tag at byte offset {at}")
        if not stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {at}")
        tag, start, attrs = stack.pop()
        if name and name != tag:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {at}, expected "</{tag}>", found "</{name}>"'
            )
        entity = _html_entity(tag, start, offset - start, attrs, stack)
        if entity is not None:
            entities.append(entity)
        return end + 1
    if name_match.end() == len(source):
        raise HtmlParseError(f"Unclosed start tag at byte offset {at}")
    if name not in _HTML_TAGS:
        raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {at}')
    if end == -1:
        raise HtmlParseError(f"Unclosed start tag at byte offset {at}")
    attrs = {
        match.group(1).lower(): html.unescape(next((g for g in match.groups()[1:] if g), ""))
        for match in _ATTR_RE.finditer(source, name_match.end(), end)
    }
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    stack.append((name, offset, attrs))
    return end + 1


def _html_entity(
    tag: str,
    start: int,
    length: int,
    attrs: dict[str, str],
    stack: list[tuple[str, int, dict[str, str]]],
) -> dict[str, Any] | None:
    language = attrs.get("class", "")
    if tag == "code" and stack and stack[-1][0] == "pre" and language.startswith("language-"):
        stack[-1][2]["language"] = language.removeprefix("language-")
        return None
    if length == 0:
        return None
    entity: dict[str, Any] = {"type": _HTML_TAGS[tag], "offset": start, "length": length}
    if tag == "a":
        if not attrs.get("href"):
            return None
        entity["url"] = attrs["href"]
    elif tag == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif tag == "tg-time":
        if not attrs.get("unix", "").isdigit():
            return None
        entity["unix_time"] = int(attrs["unix"])
        if attrs.get("format"):
            entity["date_time_format"] = attrs["format"]
    return entity


# --- images ----------------------------------------------------------------------------

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image; None if it is none of them."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            width = 1 + int.from_bytes(data[24:27], "little")
            height = 1 + int.from_bytes(data[27:30], "little")
            return width, height
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD9:
            i += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _scaled(width: int, height: int, side: int) -> tuple[int, int]:
    big = max(width, height)
    if big <= side:
        return width, height
    return max(1, round(width * side / big)), max(1, round(height * side / big))


# --- emulator state --------------------------------------------------------------------


class _Changes:
    """Wakes every waiter whenever something in a bot's world changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self.notify()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closed:
                return False
            event = self._event
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return predicate()
        return True


@dataclass(slots=True)
class _Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    path: str
    data: bytes | None = None
    url: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    sizes: list[PhotoSize] = field(default_factory=list)

    @property
    def size(self) -> int | None:
        return len(self.data) if self.data is not None else None


@dataclass(slots=True)
class _InvoiceSpec:
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    start_parameter: str
    subscription_period: int | None = None
    paid: bool = False


@dataclass(slots=True)
class _StoredMessage:
    message_id: int
    chat_id: int
    date: int
    from_bot: bool
    kind: str
    seq: int = 0
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    source_text: str | None = None
    parse_mode: str | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    photo: _StoredFile | None = None
    document: _StoredFile | None = None
    invoice: _InvoiceSpec | None = None
    successful_payment: SuccessfulPayment | None = None
    refunded_payment: RefundedPayment | None = None
    reply_markup: dict[str, Any] | None = None
    link_preview_options: dict[str, Any] | None = None
    reply_to: int | None = None
    edit_date: int | None = None
    history: list[ctl.MessageVersion] = field(default_factory=list)
    deleted: bool = False
    sender_id: int | None = None  # who wrote a user message in a group (in a private chat: the chat)

    @property
    def inline_markup(self) -> dict[str, Any] | None:
        markup = self.reply_markup
        return markup if markup is not None and "inline_keyboard" in markup else None


@dataclass(slots=True)
class _Chat:
    chat_id: int
    next_message_id: int = 1
    messages: dict[int, _StoredMessage] = field(default_factory=dict)
    events: list[ctl.ChatEvent] = field(default_factory=list)


@dataclass(slots=True)
class _Callback:
    id: str
    user_id: int
    chat_id: int | None
    message_id: int | None
    data: str
    created: float
    answered: bool = False
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int | None = None


@dataclass(slots=True)
class _PreCheckout:
    id: str
    user_id: int
    invoice: _InvoiceSpec
    deadline: float
    answered: bool = False
    ok: bool = False
    error_message: str | None = None
    expired: bool = False


@dataclass(slots=True)
class _Charge:
    charge_id: str
    user_id: int
    amount: int
    payload: str
    date: int
    refunded: bool = False
    refund_date: int = 0


@dataclass(slots=True)
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    ip_address: str | None
    task: asyncio.Task[None] | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(slots=True)
class _Queued:
    update_id: int
    kind: str
    payload: Any

    def encode(self) -> dict[str, Any]:
        return {"update_id": self.update_id, self.kind: self.payload}


@dataclass(slots=True)
class _RateState:
    global_window: deque[float] = field(default_factory=deque)
    chat_windows: dict[int, deque[float]] = field(default_factory=dict)
    penalties: dict[int | None, float] = field(default_factory=dict)
    per_second: dict[int, int] = field(default_factory=dict)
    accepted_total: int = 0
    max_chat_window: int = 0
    max_global_window: int = 0
    given: list[ctl.TooManyRequests] = field(default_factory=list)
    early_retries: int = 0
    # Flood waits imposed through the control API: until when, and whether the bot was told yet.
    floods: dict[int | None, float] = field(default_factory=dict)
    flood_told: set[int | None] = field(default_factory=set)


class _World:
    """Everything one bot (one bot id) sees: chats, updates, queries, payments, files."""

    def __init__(self, bot_id: int | None) -> None:
        self.bot_id = bot_id
        self.users: dict[int, User] = {}
        self.chats: dict[int, _Chat] = {}
        self.groups: dict[int, ctl.GroupIn] = {}  # group, supergroup and channel chats the bot is in
        self.blocked: set[int] = set()
        self.updates: deque[_Queued] = deque()
        self.next_update_id = 1
        self.allowed_updates: frozenset[str] | None = None
        self.poll_generation = 0
        self.webhook: _Webhook | None = None
        self.seq = 0
        self.call_seq = 0
        self.callbacks: dict[str, _Callback] = {}
        self.pre_checkouts: dict[str, _PreCheckout] = {}
        self.charges: dict[str, _Charge] = {}
        self.invoice_links: dict[str, _InvoiceSpec] = {}
        self.files: dict[str, _StoredFile] = {}
        self.file_paths: dict[str, _StoredFile] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.settings: dict[str, dict[str, Any]] = {}
        self.calls: deque[ctl.ApiCall] = deque(maxlen=MAX_RECORDED_CALLS)
        self.rate = _RateState()
        self.changes = _Changes()

    def bot_user(self) -> User:
        return User(id=self.bot_id or 0, is_bot=True, first_name=BOT_FIRST_NAME, username=BOT_USERNAME)

    def user(self, user_id: int) -> User:
        return self.users.get(user_id) or User(id=user_id, is_bot=False, first_name=f"User {user_id}")

    def chat(self, chat_id: int) -> Chat:
        group = self.groups.get(chat_id)
        if group is not None:
            return Chat(id=chat_id, type=group.type, title=group.title)
        user = self.user(chat_id)
        return Chat(
            id=chat_id,
            type="private",
            first_name=user.first_name,
            last_name=user.last_name,
            username=user.username,
        )

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def accepts(self, kind: str) -> bool:
        if not self.allowed_updates:
            return kind not in OPT_IN_UPDATE_TYPES
        return kind in self.allowed_updates

    def push(self, kind: str, payload: Any) -> tuple[int, bool]:
        """Queue an update; returns (update_id, dropped by allowed_updates)."""
        update_id = self.next_update_id
        self.next_update_id += 1
        if not self.accepts(kind):
            return update_id, True
        self.updates.append(_Queued(update_id, kind, payload))
        self.changes.notify()
        return update_id, False


class _Params:
    """Method parameters as they came: strings from a form, or JSON values."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, name: str) -> Any:
        value = self.raw.get(name)
        return None if value is None or value == "" else value

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                raise _bad(f"{name} is empty")
            return None
        if isinstance(value, _Upload):
            raise _bad(f"{name} must be a String")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            return msgspec.json.encode(value).decode()
        return str(value)

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.get(name)
        if value is None:
            if required:
                raise _bad(f"{name} is empty")
            return None
        if isinstance(value, int):
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise _bad(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if isinstance(value, bool):
            return value
        return value is not None and str(value).lower() in ("true", "1")

    def json(self, name: str) -> Any:
        value = self.get(name)
        if isinstance(value, _Upload):
            raise _bad(f"can't parse {name} JSON object")
        if isinstance(value, str):
            try:
                return msgspec.json.decode(value)
            except msgspec.DecodeError:
                raise _bad(f"can't parse {name} JSON object") from None
        return value

    def file(self, name: str) -> _Upload | str | None:
        value = self.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            attached = self.raw.get(value.removeprefix("attach://"))
            if not isinstance(attached, _Upload):
                raise _bad(f"file {value} not found in the request")
            return attached
        if value is None or isinstance(value, _Upload):
            return value
        return str(value)

    def chat_id(self) -> int:
        value = self.get("chat_id")
        if value is None:
            raise _bad("chat_id is empty")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise _bad("chat not found") from None

    def describe(self) -> dict[str, Any]:
        return {
            key: (
                {"filename": v.filename, "content_type": v.content_type, "size": len(v.data)}
                if isinstance(v, _Upload)
                else v
            )
            for key, v in self.raw.items()
        }


_Method = Callable[["_World", _Params], Awaitable[Any]]


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.read()
        if body:
            try:
                decoded = msgspec.json.decode(body)
            except msgspec.DecodeError:
                raise _bad("can't parse JSON object") from None
            if not isinstance(decoded, dict):
                raise _bad("can't parse JSON object")
            params.update(decoded)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                data = value.file.read()
                value.file.close()
                params[key] = _Upload(value.filename, value.content_type, data)
            else:
                params[key] = value
    return params


async def _read_webhook_reply(resp: aiohttp.ClientResponse) -> dict[str, Any] | None:
    """A method the webhook answered with ("reply into webhook"), if any."""
    if resp.content_type == "application/json":
        body = await resp.read()
        try:
            decoded = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            return None
        return decoded if isinstance(decoded, dict) and "method" in decoded else None
    if resp.content_type != "multipart/form-data":
        return None
    params: dict[str, Any] = {}
    reader = aiohttp.MultipartReader(resp.headers, resp.content)
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        if part.filename:
            content_type = part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream")
            params[part.name] = _Upload(part.filename, content_type, await part.read())
        else:
            params[part.name] = await part.text()
    return params


def _check_markup(markup: Any, *, inline_only: bool) -> dict[str, Any]:
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('can\'t parse inline keyboard: field "inline_keyboard" must be an Array')
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return markup
    if inline_only:
        raise _bad("inline keyboard expected")
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('can\'t parse reply keyboard: field "keyboard" must be an Array')
        for row in rows:
            for button in row:
                text = button.get("text") if isinstance(button, dict) else button
                if not isinstance(text, str) or not text:
                    raise _bad("can't parse keyboard button: Text must be a String")
        return markup
    if markup.get("remove_keyboard") or markup.get("force_reply"):
        return markup
    raise _bad("can't parse reply keyboard markup JSON object")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad("can't parse inline keyboard button: Text must be a String")
    if not any(action in button for action in _BUTTON_ACTIONS):
        raise _bad("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if data is not None and (not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA):
        raise _bad("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and (not isinstance(url, str) or not _BUTTON_URL_RE.fullmatch(url)):
        raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _buttons(markup: dict[str, Any] | None) -> list[list[ctl.Button]]:
    if not markup:
        return []
    rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
    shown: list[list[ctl.Button]] = []
    for row in rows:
        shown_row = []
        for button in row:
            if isinstance(button, str):
                shown_row.append(ctl.Button(text=button))
            else:
                shown_row.append(
                    ctl.Button(
                        text=button["text"],
                        callback_data=button.get("callback_data"),
                        url=button.get("url"),
                    )
                )
        shown.append(shown_row)
    return shown


def _chat_key(chat: int | str) -> int | str:
    if isinstance(chat, int):
        return chat
    if chat.startswith("@"):
        return chat.lower()
    return int(chat)


class TelegramEmulator:
    """A fake api.telegram.org for one or more bots, with a control API for the users' side."""

    def __init__(
        self,
        *,
        callback_deadline: float = CALLBACK_DEADLINE,
        rate_limits: ctl.RateLimits | None = None,
    ) -> None:
        self.base_url: str | None = None
        self.rate_limits = rate_limits or ctl.RateLimits()
        self._callback_deadline = callback_deadline
        self._worlds: dict[int, _World] = {}
        self._unclaimed: _World | None = None
        self._memberships: dict[tuple[int | str, int], str] = {}
        self._invalid_tokens: set[str] = set()
        self._bad_gateway: set[str] = set()  # lower-cased methods answered with BAD_GATEWAY_HTML
        self._clock_offset = 0.0
        self._hold: ctl.HoldIn | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._methods: dict[str, tuple[str, _Method]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._get_me),
                ("logOut", self._accept),
                ("close", self._accept),
                ("getUpdates", self._get_updates),
                ("setWebhook", self._set_webhook),
                ("deleteWebhook", self._delete_webhook),
                ("getWebhookInfo", self._get_webhook_info),
                ("sendMessage", self._send_message),
                ("sendPhoto", self._send_photo),
                ("sendDocument", self._send_document),
                ("sendChatAction", self._send_chat_action),
                ("editMessageText", self._edit_message_text),
                ("editMessageCaption", self._edit_message_caption),
                ("editMessageReplyMarkup", self._edit_message_reply_markup),
                ("deleteMessage", self._delete_message),
                ("deleteMessages", self._delete_messages),
                ("answerCallbackQuery", self._answer_callback_query),
                ("getFile", self._get_file),
                ("sendInvoice", self._send_invoice),
                ("createInvoiceLink", self._create_invoice_link),
                ("answerPreCheckoutQuery", self._answer_pre_checkout_query),
                ("refundStarPayment", self._refund_star_payment),
                ("getStarTransactions", self._get_star_transactions),
                ("getChatMember", self._get_chat_member),
                ("setMyCommands", self._set_my_commands),
                ("getMyCommands", self._get_my_commands),
                ("deleteMyCommands", self._delete_my_commands),
                ("setMyName", self._setting("setMyName")),
                ("setMyDescription", self._setting("setMyDescription")),
                ("setMyShortDescription", self._setting("setMyShortDescription")),
                ("setChatMenuButton", self._setting("setChatMenuButton")),
            )
        }

    # --- lifecycle -----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[self._control_errors])
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        r = app.router
        r.add_route("*", "/bot{token}/{method}", self._handle_api)
        r.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        r.add_post("/control/reset", self._c_reset)
        r.add_post("/control/messages", self._c_send_text)
        r.add_post("/control/groups", self._c_groups)
        r.add_post("/control/press", self._c_press)
        r.add_post("/control/pay", self._c_pay)
        r.add_post("/control/block", self._c_block)
        r.add_post("/control/unblock", self._c_unblock)
        r.add_post("/control/members", self._c_members)
        r.add_get("/control/chats/{chat_id}/messages", self._c_messages)
        r.add_get("/control/chats/{chat_id}/events", self._c_events)
        r.add_get("/control/callbacks/{callback_id}", self._c_callback)
        r.add_get("/control/calls", self._c_calls)
        r.add_get("/control/rate", self._c_rate_stats)
        r.add_post("/control/rate", self._c_set_rate)
        r.add_post("/control/flood", self._c_flood)
        r.add_post("/control/updates", self._c_inject)
        r.add_get("/control/charges", self._c_charges)
        r.add_post("/control/charges", self._c_charge)
        r.add_post("/control/charges/{charge_id}/refund", self._c_refund_charge)
        r.add_post("/control/tokens", self._c_tokens)
        r.add_post("/control/bad_gateway", self._c_bad_gateway)
        r.add_post("/control/clock", self._c_clock)
        r.add_post("/control/hold", self._c_hold)
        r.add_get("/control/files/{file_id}", self._c_file)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = any free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(
            self.make_app(), shutdown_timeout=1.0, handler_cancellation=True, access_log=None
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        bound = runner.addresses[0][1]
        self.base_url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def reset(self) -> None:
        """Forget every bot, user, message, payment and setting."""
        worlds = self._all_worlds()
        tasks = [task for world in worlds if (task := self._drop_webhook(world))]
        for world in worlds:
            world.changes.close()
        self._worlds.clear()
        self._unclaimed = None
        self._memberships.clear()
        self._invalid_tokens.clear()
        self._bad_gateway.clear()
        self.rate_limits = ctl.RateLimits()
        self._clock_offset = 0.0
        self._hold = None
        if tasks:
            await asyncio.wait(tasks)

    async def _on_startup(self, app: web.Application) -> None:
        self._closing = False
        for world in self._all_worlds():
            world.changes = _Changes()

    async def _on_shutdown(self, app: web.Application) -> None:
        # Before the server waits for its handlers: long polls must end now.
        self._closing = True
        for world in self._all_worlds():
            world.changes.close()

    async def _on_cleanup(self, app: web.Application) -> None:
        tasks = [task for world in self._all_worlds() if (task := self._drop_webhook(world))]
        if tasks:
            await asyncio.wait(tasks)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _all_worlds(self) -> list[_World]:
        worlds = list(self._worlds.values())
        if self._unclaimed is not None:
            worlds.append(self._unclaimed)
        return worlds

    def _world_for_bot(self, bot_id: int) -> _World:
        world = self._worlds.get(bot_id)
        if world is None:
            # Users may write before the bot first calls: the first bot adopts that world.
            world, self._unclaimed = self._unclaimed or _World(bot_id), None
            world.bot_id = bot_id
            self._worlds[bot_id] = world
        return world

    def _control_world(self, request: web.Request) -> _World:
        raw = request.query.get("bot_id")
        if raw:
            try:
                return self._world_for_bot(int(raw))
            except ValueError:
                raise _ControlError(400, "bot_id must be an integer") from None
        if len(self._worlds) == 1:
            return next(iter(self._worlds.values()))
        if self._worlds:
            raise _ControlError(400, "several bots use this emulator: pass ?bot_id=")
        if self._unclaimed is None:
            self._unclaimed = _World(None)
        return self._unclaimed

    def _now(self) -> int:
        return int(time.time() + self._clock_offset)

    def _mono(self) -> float:
        return time.monotonic() + self._clock_offset

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    # --- Bot API transport ---------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        match = _TOKEN_RE.fullmatch(token)
        if match is None or token in self._invalid_tokens:
            return _json_response({"ok": False, "error_code": 401, "description": UNAUTHORIZED}, 401)
        if request.match_info["method"].lower() in self._bad_gateway:
            return web.Response(status=502, text=BAD_GATEWAY_HTML, content_type="text/html")
        world = self._world_for_bot(int(match[1]))
        try:
            raw = await _read_params(request)
        except BotApiError as exc:
            return _json_response(
                {"ok": False, "error_code": exc.code, "description": exc.description}, exc.code
            )
        status, body = await self._invoke(world, request.match_info["method"], raw)
        await self._held(request.match_info["method"], status)
        return _json_response(body, status)

    async def _held(self, method: str, status: int) -> None:
        """`/control/hold`: the call took effect; its answer is kept back (a crash window)."""
        hold = self._hold
        if hold is None or status != 200 or hold.method.lower() != method.lower():
            return
        if hold.times is not None:
            hold.times -= 1
            if hold.times <= 0:
                self._hold = None
        await asyncio.sleep(hold.seconds)

    async def _invoke(self, world: _World, method: str, raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        entry = self._methods.get(method.lower())
        params = _Params(raw)
        world.call_seq += 1
        call = ctl.ApiCall(
            seq=world.call_seq,
            at=time.time() + self._clock_offset,
            bot_id=world.bot_id or 0,
            method=entry[0] if entry else method,
            params=params.describe(),
        )
        world.calls.append(call)
        try:
            if entry is None:
                raise BotApiError(404, NOT_FOUND)
            result = await entry[1](world, params)
        except BotApiError as exc:
            call.ok, call.error_code, call.description = False, exc.code, exc.description
            status = exc.code
            body: dict[str, Any] = {
                "ok": False,
                "error_code": exc.code,
                "description": exc.description,
            }
            if exc.parameters:
                body["parameters"] = exc.parameters
        else:
            call.ok = True
            status, body = 200, {"ok": True, "result": result}
        logger.debug(
            "bot %s %s -> %s in %.1f ms",
            world.bot_id,
            call.method,
            status,
            (time.perf_counter() - started) * 1000,
        )
        return status, body

    async def _handle_file(self, request: web.Request) -> web.Response:
        match = _TOKEN_RE.fullmatch(request.match_info["token"])
        if match is None or request.match_info["token"] in self._invalid_tokens:
            raise web.HTTPUnauthorized()
        stored = self._world_for_bot(int(match[1])).file_paths.get(request.match_info["path"])
        if stored is None or stored.data is None:
            raise web.HTTPNotFound()
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    # --- rate limits ---------------------------------------------------------------------

    def _throttle(self, world: _World, method: str, chat_id: int) -> None:
        limits = self.rate_limits
        if not limits.enabled or method not in RATE_LIMITED_METHODS:
            return
        rate = world.rate
        now = self._mono()
        self._prune(rate, chat_id, now)
        for key in (chat_id, None):
            until = rate.floods.get(key)
            if until is None:
                continue
            if now >= until:
                del rate.floods[key]
                rate.flood_told.discard(key)
                continue
            told = key in rate.flood_told
            rate.flood_told.add(key)
            rate.early_retries += told
            self._too_many(world, method, chat_id, key, math.ceil(until - now), early=told)
        for key in (chat_id, None):
            until = rate.penalties.get(key)
            if until is None:
                continue
            if now >= until:
                del rate.penalties[key]
                continue
            rate.early_retries += 1
            self._too_many(world, method, chat_id, key, math.ceil(until - now), early=True)
        chat_window = rate.chat_windows.get(chat_id) or deque()
        if len(chat_window) >= limits.per_chat_per_sec:
            key, oldest = chat_id, chat_window[-limits.per_chat_per_sec]
        elif len(rate.global_window) >= limits.global_per_sec:
            key, oldest = None, rate.global_window[-limits.global_per_sec]
        else:
            return
        retry_after = max(1, math.ceil(oldest + 1.0 - now))
        rate.penalties[key] = now + retry_after
        self._too_many(world, method, chat_id, key, retry_after, early=False)

    def _too_many(
        self,
        world: _World,
        method: str,
        chat_id: int,
        key: int | None,
        retry_after: int,
        *,
        early: bool,
    ) -> None:
        world.rate.given.append(
            ctl.TooManyRequests(
                at=time.time() + self._clock_offset,
                method=method,
                chat_id=chat_id,
                scope="global" if key is None else "chat",
                retry_after=retry_after,
                early=early,
            )
        )
        raise BotApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    def _count(self, world: _World, method: str, chat_id: int) -> None:
        if method not in RATE_LIMITED_METHODS:
            return
        rate = world.rate
        now = self._mono()
        rate.global_window.append(now)
        rate.chat_windows.setdefault(chat_id, deque()).append(now)
        self._prune(rate, chat_id, now)
        rate.max_global_window = max(rate.max_global_window, len(rate.global_window))
        rate.max_chat_window = max(rate.max_chat_window, len(rate.chat_windows[chat_id]))
        second = int(time.time() + self._clock_offset)
        rate.per_second[second] = rate.per_second.get(second, 0) + 1
        rate.accepted_total += 1

    @staticmethod
    def _prune(rate: _RateState, chat_id: int, now: float) -> None:
        horizon = now - 1.0
        while rate.global_window and rate.global_window[0] <= horizon:
            rate.global_window.popleft()
        window = rate.chat_windows.get(chat_id)
        if window is not None:
            while window and window[0] <= horizon:
                window.popleft()
            if not window:
                del rate.chat_windows[chat_id]

    # --- messages ------------------------------------------------------------------------

    def _target_chat(self, world: _World, params: _Params) -> _Chat:
        chat_id = params.chat_id()
        chat = world.chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        if chat_id in world.blocked:
            raise BotApiError(403, BLOCKED)
        return chat

    def _add_message(
        self, world: _World, chat: _Chat, *, from_bot: bool, kind: str, **fields: Any
    ) -> _StoredMessage:
        message = _StoredMessage(
            message_id=chat.next_message_id,
            chat_id=chat.chat_id,
            date=self._now(),
            from_bot=from_bot,
            kind=kind,
            **fields,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        self._event(world, chat, message, "sent" if from_bot else "received")
        return message

    def _event(self, world: _World, chat: _Chat, message: _StoredMessage, kind: str) -> None:
        message.seq = world.next_seq()
        chat.events.append(
            ctl.ChatEvent(
                seq=message.seq,
                kind=kind,  # type: ignore[arg-type]
                message_id=message.message_id,
                message=self._shown(message),
            )
        )
        world.changes.notify()

    def _edit(self, world: _World, chat: _Chat, message: _StoredMessage, **changes: Any) -> None:
        message.history.append(
            ctl.MessageVersion(
                date=message.edit_date or message.date,
                text=message.text,
                entities=message.entities,
                caption=message.caption,
                reply_markup=message.reply_markup,
            )
        )
        for name, value in changes.items():
            setattr(message, name, value)
        message.edit_date = self._now()
        self._event(world, chat, message, "edited")

    def _wire(self, world: _World, message: _StoredMessage, *, nested: bool = False) -> Message:
        reply_to = None
        if message.reply_to is not None and not nested:
            original = world.chats[message.chat_id].messages.get(message.reply_to)
            if original is not None and not original.deleted:
                reply_to = self._wire(world, original, nested=True)
        spec = message.invoice
        chat = world.chat(message.chat_id)
        if message.from_bot:
            sender: User | None = world.bot_user()
        elif chat.type == "channel":
            sender = None  # a channel post is signed by the channel (`sender_chat`)
        else:
            sender = world.user(message.sender_id or message.chat_id)
        return Message(
            message_id=message.message_id,
            date=message.date,
            chat=chat,
            from_=sender,
            sender_chat=chat if chat.type == "channel" else None,
            edit_date=message.edit_date,
            reply_to_message=reply_to,
            text=message.text,
            entities=message.entities,
            link_preview_options=message.link_preview_options,
            caption=message.caption,
            caption_entities=message.caption_entities,
            photo=list(message.photo.sizes) if message.photo else None,
            document=self._document(message.document) if message.document else None,
            invoice=Invoice(
                title=spec.title,
                description=spec.description,
                start_parameter=spec.start_parameter,
                currency=spec.currency,
                total_amount=spec.amount,
            )
            if spec
            else None,
            successful_payment=message.successful_payment,
            refunded_payment=message.refunded_payment,
            reply_markup=message.inline_markup,
        )

    @staticmethod
    def _document(stored: _StoredFile) -> Document:
        return Document(
            file_id=stored.file_id,
            file_unique_id=stored.file_unique_id,
            file_name=stored.file_name,
            mime_type=stored.mime_type,
            file_size=stored.size,
        )

    def _shown(self, message: _StoredMessage) -> ctl.ShownMessage:
        photo = message.photo
        spec = message.invoice
        return ctl.ShownMessage(
            message_id=message.message_id,
            chat_id=message.chat_id,
            seq=message.seq,
            date=message.date,
            from_bot=message.from_bot,
            kind=message.kind,
            text=message.text,
            entities=message.entities,
            parse_mode=message.parse_mode,
            source_text=message.source_text,
            caption=message.caption,
            photo=ctl.ShownPhoto(
                file_id=photo.file_id,
                file_unique_id=photo.file_unique_id,
                width=photo.width,
                height=photo.height,
                file_size=photo.size,
                url=photo.url,
            )
            if photo
            else None,
            document=msgspec.convert(msgspec.to_builtins(self._document(message.document)), ctl.ShownDocument)
            if message.document
            else None,
            invoice=ctl.ShownInvoice(
                title=spec.title,
                description=spec.description,
                currency=spec.currency,
                total_amount=spec.amount,
                payload=spec.payload,
                paid=spec.paid,
            )
            if spec
            else None,
            successful_payment=msgspec.to_builtins(message.successful_payment)
            if message.successful_payment
            else None,
            refunded_payment=msgspec.to_builtins(message.refunded_payment)
            if message.refunded_payment
            else None,
            reply_markup=message.reply_markup,
            buttons=_buttons(message.reply_markup),
            link_preview_options=message.link_preview_options,
            edited=bool(message.history),
            edits=list(message.history),
            deleted=message.deleted,
        )

    @staticmethod
    def _render(
        params: _Params,
        text_field: str,
        entities_field: str,
        *,
        limit: int,
        empty: str,
        too_long: str,
        required: bool,
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        source = params.string(text_field)
        if source is None:
            if required:
                raise _bad(empty)
            return None, None
        entities = params.json(entities_field)
        parse_mode = params.string("parse_mode")
        text = source
        if entities is not None:
            if not isinstance(entities, list):
                raise _bad(f"can't parse {entities_field} JSON object")
        elif parse_mode is not None:
            mode = parse_mode.lower()
            if mode == "html":
                try:
                    text, entities = parse_html(source)
                except HtmlParseError as exc:
                    raise _bad(f"can't parse entities: {exc}") from None
            elif mode not in ("markdown", "markdownv2"):
                raise _bad("unsupported parse_mode")
        if not text.strip():
            raise _bad(empty)
        if len(text) > limit:
            raise _bad(too_long)
        return text, entities or None

    @staticmethod
    def _markup(params: _Params, *, inline_only: bool) -> dict[str, Any] | None:
        markup = params.json("reply_markup")
        return None if markup is None else _check_markup(markup, inline_only=inline_only)

    @staticmethod
    def _link_preview(params: _Params) -> dict[str, Any] | None:
        options = params.json("link_preview_options")
        if options is None and params.flag("disable_web_page_preview"):
            return {"is_disabled": True}
        if options is not None and not isinstance(options, dict):
            raise _bad("can't parse link_preview_options JSON object")
        return options

    @staticmethod
    def _reply_to(params: _Params, chat: _Chat) -> int | None:
        reply = params.json("reply_parameters")
        message_id = reply.get("message_id") if isinstance(reply, dict) else None
        if message_id is None:
            message_id = params.integer("reply_to_message_id")
        if message_id is None:
            return None
        if message_id not in chat.messages:
            raise _bad("message to be replied not found")
        return int(message_id)

    def _editable(self, world: _World, params: _Params) -> tuple[_Chat, _StoredMessage]:
        if params.get("inline_message_id") is not None:
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._target_chat(world, params)
        message_id = params.integer("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad("message to edit not found")
        if not message.from_bot:
            raise _bad("message can't be edited")
        return chat, message

    def _send(self, world: _World, chat: _Chat, method: str, *, kind: str, **fields: Any) -> Message:
        """The bot's new message, within the flood limits: checked before, counted once stored."""
        self._throttle(world, method, chat.chat_id)
        message = self._add_message(world, chat, from_bot=True, kind=kind, **fields)
        self._count(world, method, chat.chat_id)
        return self._wire(world, message)

    def _edited(
        self, world: _World, chat: _Chat, message: _StoredMessage, method: str, **changes: Any
    ) -> Message:
        """The bot's message changed, within the flood limits like a new one."""
        self._throttle(world, method, chat.chat_id)
        self._edit(world, chat, message, **changes)
        self._count(world, method, chat.chat_id)
        return self._wire(world, message)

    # --- Bot API methods -----------------------------------------------------------------

    async def _accept(self, world: _World, params: _Params) -> bool:
        return True

    def _setting(self, name: str) -> _Method:
        async def store(world: _World, params: _Params) -> bool:
            world.settings[name] = params.describe()
            return True

        return store

    async def _get_me(self, world: _World, params: _Params) -> User:
        return User(
            id=world.bot_id or 0,
            is_bot=True,
            first_name=BOT_FIRST_NAME,
            username=BOT_USERNAME,
            can_join_groups=True,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
        )

    async def _get_updates(self, world: _World, params: _Params) -> list[dict[str, Any]]:
        if world.webhook is not None:
            raise BotApiError(409, WEBHOOK_CONFLICT)
        offset = params.integer("offset") or 0
        limit = min(max(params.integer("limit") or 100, 1), 100)
        timeout = min(max(params.integer("timeout") or 0, 0), MAX_POLL_TIMEOUT)
        self._set_allowed_updates(world, params)
        if offset > 0:
            while world.updates and world.updates[0].update_id < offset:
                world.updates.popleft()
        elif offset < 0:
            while len(world.updates) > -offset:
                world.updates.popleft()
        world.poll_generation += 1
        generation = world.poll_generation
        world.changes.notify()
        if not world.updates and timeout > 0:
            await world.changes.wait_until(
                lambda: bool(world.updates) or world.poll_generation != generation, timeout
            )
        if world.poll_generation != generation:
            raise BotApiError(409, POLL_CONFLICT)
        return [queued.encode() for queued in islice(world.updates, limit)]

    @staticmethod
    def _set_allowed_updates(world: _World, params: _Params) -> None:
        allowed = params.json("allowed_updates")
        if allowed is None:
            return
        if not isinstance(allowed, list) or not all(isinstance(kind, str) for kind in allowed):
            raise _bad("can't parse allowed_updates JSON object")
        world.allowed_updates = frozenset(allowed) or None

    async def _set_webhook(self, world: _World, params: _Params) -> bool:
        url = params.string("url")
        if not url:
            return await self._delete_webhook(world, params)
        if not url.startswith(("http://", "https://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.string("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise _bad("secret token contains unallowed characters")
        self._set_allowed_updates(world, params)
        if params.flag("drop_pending_updates"):
            world.updates.clear()
        old = self._drop_webhook(world)
        if old is not None:
            await asyncio.wait([old])
        hook = _Webhook(
            url=url,
            secret_token=secret,
            max_connections=params.integer("max_connections") or 40,
            ip_address=params.string("ip_address"),
        )
        world.webhook = hook
        hook.task = asyncio.create_task(self._deliver(world, hook))
        return True

    async def _delete_webhook(self, world: _World, params: _Params) -> bool:
        if params.flag("drop_pending_updates"):
            world.updates.clear()
        task = self._drop_webhook(world)
        if task is not None:
            await asyncio.wait([task])
        return True

    @staticmethod
    def _drop_webhook(world: _World) -> asyncio.Task[None] | None:
        hook, world.webhook = world.webhook, None
        world.changes.notify()
        if hook is None or hook.task is None or hook.task is asyncio.current_task():
            return None
        hook.task.cancel()
        return hook.task

    async def _get_webhook_info(self, world: _World, params: _Params) -> dict[str, Any]:
        hook = world.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(world.updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if hook.ip_address:
                info["ip_address"] = hook.ip_address
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        if world.allowed_updates:
            info["allowed_updates"] = sorted(world.allowed_updates)
        return info

    async def _deliver(self, world: _World, hook: _Webhook) -> None:
        backoff = WEBHOOK_RETRY_MIN
        while world.webhook is hook and not self._closing:
            if not world.updates:
                await world.changes.wait_until(lambda: bool(world.updates) or world.webhook is not hook, 60.0)
                if world.changes.closed:
                    return
                continue
            queued = world.updates[0]
            error = await self._post_update(world, hook, queued)
            if error is None:
                backoff = WEBHOOK_RETRY_MIN
                continue
            hook.last_error_date = self._now()
            hook.last_error_message = error
            logger.info("webhook %s: update %s: %s", hook.url, queued.update_id, error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, WEBHOOK_RETRY_MAX)

    async def _post_update(self, world: _World, hook: _Webhook, queued: _Queued) -> str | None:
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers[SECRET_HEADER] = hook.secret_token
        try:
            async with self._client().post(
                hook.url,
                data=msgspec.json.encode(queued.encode()),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT),
            ) as resp:
                if resp.status >= 300:
                    return f"Wrong response from the webhook: {resp.status} {resp.reason}"
                reply = await _read_webhook_reply(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"Connection failed: {type(exc).__name__}"
        if world.updates and world.updates[0] is queued:
            world.updates.popleft()
        if reply is not None:
            method = str(reply.pop("method"))
            status, body = await self._invoke(world, method, reply)
            if status != 200:
                logger.info("webhook reply %s failed: %s", method, body.get("description"))
        return None

    def _text(self, params: _Params) -> tuple[str | None, list[dict[str, Any]] | None]:
        return self._render(
            params,
            "text",
            "entities",
            limit=MAX_TEXT,
            empty="message text is empty",
            too_long="message is too long",
            required=True,
        )

    async def _send_message(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        text, entities = self._text(params)
        markup = self._markup(params, inline_only=False)
        reply_to = self._reply_to(params, chat)
        return self._send(
            world,
            chat,
            "sendMessage",
            kind="text",
            text=text,
            entities=entities,
            source_text=params.string("text"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
            link_preview_options=self._link_preview(params),
            reply_to=reply_to,
        )

    def _caption(self, params: _Params) -> tuple[str | None, list[dict[str, Any]] | None]:
        return self._render(
            params,
            "caption",
            "caption_entities",
            limit=MAX_CAPTION,
            empty="message caption is empty",
            too_long="message caption is too long",
            required=False,
        )

    async def _send_photo(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        photo = params.file("photo")
        if photo is None:
            raise _bad("there is no photo in the request")
        caption, caption_entities = self._caption(params)
        markup = self._markup(params, inline_only=False)
        stored = self._photo(world, photo)
        return self._send(
            world,
            chat,
            "sendPhoto",
            kind="photo",
            photo=stored,
            caption=caption,
            caption_entities=caption_entities,
            source_text=params.string("caption"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
        )

    def _photo(self, world: _World, photo: _Upload | str) -> _StoredFile:
        if isinstance(photo, str):
            if photo.startswith(("http://", "https://")):
                stored = self._store_file(world, "photo", url=photo)
                stored.sizes = [
                    PhotoSize(
                        file_id=stored.file_id,
                        file_unique_id=stored.file_unique_id,
                        width=0,
                        height=0,
                    )
                ]
                return stored
            known = world.files.get(photo)
            if known is None or known.kind != "photo":
                raise _bad(WRONG_FILE)
            return known
        if not photo.data:
            raise _bad("file must be non-empty")
        size = image_size(photo.data)
        if size is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        width, height = size
        if min(size) == 0 or width + height > 10000 or max(size) > 20 * min(size):
            raise _bad("PHOTO_INVALID_DIMENSIONS")
        stored = self._store_file(
            world,
            "photo",
            data=photo.data,
            file_name=photo.filename,
            mime_type=mimetypes.guess_type(photo.filename)[0] or photo.content_type,
            width=width,
            height=height,
        )
        sides = [90] if max(size) > 90 else []
        for side in [*sides, 1280]:
            w, h = _scaled(width, height, side)
            is_main = side == 1280
            file_id = stored.file_id if is_main else self._file_id("AgACAgIAAxk")
            stored.sizes.append(
                PhotoSize(
                    file_id=file_id,
                    file_unique_id=stored.file_unique_id if is_main else self._file_id("AQAD")[:20],
                    width=w,
                    height=h,
                    file_size=len(photo.data)
                    if is_main
                    else max(1, len(photo.data) * w * h // (width * height)),
                )
            )
            world.files[file_id] = stored
        return stored

    @staticmethod
    def _file_id(prefix: str) -> str:
        return prefix + secrets.token_urlsafe(24)

    def _store_file(self, world: _World, kind: str, **fields: Any) -> _StoredFile:
        file_id = self._file_id("AgACAgIAAxk" if kind == "photo" else "BQACAgIAAxk")
        extension = mimetypes.guess_extension(fields.get("mime_type") or "") or ""
        stored = _StoredFile(
            file_id=file_id,
            file_unique_id=self._file_id("AQAD")[:20],
            kind=kind,
            path=f"{kind}s/file_{len(world.file_paths)}{extension}",
            **fields,
        )
        world.files[file_id] = stored
        world.file_paths[stored.path] = stored
        return stored

    async def _send_document(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        document = params.file("document")
        if document is None:
            raise _bad("there is no document in the request")
        caption, caption_entities = self._caption(params)
        markup = self._markup(params, inline_only=False)
        if isinstance(document, str):
            stored = world.files.get(document)
            if stored is None or stored.kind != "document":
                raise _bad(WRONG_FILE)
        elif not document.data:
            raise _bad("file must be non-empty")
        else:
            stored = self._store_file(
                world,
                "document",
                data=document.data,
                file_name=document.filename,
                mime_type=mimetypes.guess_type(document.filename)[0] or document.content_type,
            )
        return self._send(
            world,
            chat,
            "sendDocument",
            kind="document",
            document=stored,
            caption=caption,
            caption_entities=caption_entities,
            source_text=params.string("caption"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
        )

    async def _get_file(self, world: _World, params: _Params) -> dict[str, Any]:
        stored = world.files.get(params.string("file_id", required=True) or "")
        if stored is None or stored.data is None:
            raise _bad("wrong file_id or the file is temporarily unavailable")
        if len(stored.data) > MAX_GET_FILE:
            raise _bad("file is too big")
        return {
            "file_id": params.string("file_id"),
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.path,
        }

    async def _send_chat_action(self, world: _World, params: _Params) -> bool:
        self._target_chat(world, params)
        params.string("action", required=True)
        return True

    async def _edit_message_text(self, world: _World, params: _Params) -> Message:
        chat, message = self._editable(world, params)
        if message.kind != "text":
            raise _bad("there is no text in the message to edit")
        text, entities = self._text(params)
        markup = self._markup(params, inline_only=True)
        if (text, entities, markup) == (message.text, message.entities, message.inline_markup):
            raise _bad(NOT_MODIFIED)
        changes: dict[str, Any] = {
            "text": text,
            "entities": entities,
            "source_text": params.string("text"),
            "parse_mode": params.string("parse_mode"),
            "link_preview_options": self._link_preview(params),
        }
        if markup is not None or message.inline_markup is not None:
            changes["reply_markup"] = markup
        return self._edited(world, chat, message, "editMessageText", **changes)

    async def _edit_message_caption(self, world: _World, params: _Params) -> Message:
        chat, message = self._editable(world, params)
        if message.kind not in ("photo", "document"):
            raise _bad("there is no caption in the message to edit")
        caption, caption_entities = self._caption(params)
        markup = self._markup(params, inline_only=True)
        current = (message.caption, message.caption_entities, message.inline_markup)
        if (caption, caption_entities, markup) == current:
            raise _bad(NOT_MODIFIED)
        return self._edited(
            world,
            chat,
            message,
            "editMessageCaption",
            caption=caption,
            caption_entities=caption_entities,
            source_text=params.string("caption"),
            parse_mode=params.string("parse_mode"),
            reply_markup=markup,
        )

    async def _edit_message_reply_markup(self, world: _World, params: _Params) -> Message:
        chat, message = self._editable(world, params)
        markup = self._markup(params, inline_only=True)
        if markup == message.inline_markup:
            raise _bad(NOT_MODIFIED)
        return self._edited(world, chat, message, "editMessageReplyMarkup", reply_markup=markup)

    def _delete(self, world: _World, chat: _Chat, message_id: int) -> None:
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad("message to delete not found")
        if self._now() - message.date > DELETE_DEADLINE:
            raise _bad("message can't be deleted")
        message.deleted = True
        self._event(world, chat, message, "deleted")

    async def _delete_message(self, world: _World, params: _Params) -> bool:
        chat_id = params.chat_id()
        chat = world.chats.get(chat_id)
        if chat is None:
            raise _bad("chat not found")
        self._delete(world, chat, params.integer("message_id", required=True) or 0)
        return True

    async def _delete_messages(self, world: _World, params: _Params) -> bool:
        chat = world.chats.get(params.chat_id())
        if chat is None:
            raise _bad("chat not found")
        ids = params.json("message_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise _bad("message_ids must be a non-empty array of at most 100 identifiers")
        for message_id in ids:
            try:
                self._delete(world, chat, int(message_id))
            except BotApiError:
                continue
        return True

    async def _answer_callback_query(self, world: _World, params: _Params) -> bool:
        query = world.callbacks.get(params.string("callback_query_id", required=True) or "")
        if query is None or query.answered or self._mono() - query.created > self._callback_deadline:
            raise _bad(QUERY_TOO_OLD)
        text = params.string("text")
        if text is not None and len(text) > MAX_CALLBACK_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        query.text = text
        query.show_alert = params.flag("show_alert")
        query.url = params.string("url")
        query.cache_time = params.integer("cache_time")
        world.changes.notify()
        return True

    def _invoice_spec(self, params: _Params, *, link: bool) -> _InvoiceSpec:
        title = params.string("title", required=True) or ""
        description = params.string("description", required=True) or ""
        payload = params.string("payload", required=True) or ""
        currency = (params.string("currency", required=True) or "").upper()
        if len(title) > 32:
            raise _bad("title is too long")
        if len(description) > 255:
            raise _bad("description is too long")
        if not 1 <= len(payload.encode()) <= 128:
            raise _bad("INVOICE_PAYLOAD_INVALID")
        prices = params.json("prices")
        if (
            not isinstance(prices, list)
            or not prices
            or not all(
                isinstance(price, dict)
                and isinstance(price.get("label"), str)
                and isinstance(price.get("amount"), int)
                for price in prices
            )
        ):
            raise _bad("can't parse prices JSON object")
        amount = sum(price["amount"] for price in prices)
        period = params.integer("subscription_period") if link else None
        if currency == "XTR":
            tips = params.get("max_tip_amount") or params.get("suggested_tip_amounts")
            if len(prices) != 1 or amount < 1 or tips or params.string("provider_token"):
                raise _bad("STARS_INVOICE_INVALID")
            if period is not None and (period != STARS_SUBSCRIPTION_PERIOD or amount > 10000):
                raise _bad("SUBSCRIPTION_PERIOD_INVALID")
        else:
            if not params.string("provider_token"):
                raise _bad("PAYMENT_PROVIDER_INVALID")
            if amount < 1:
                raise _bad("CURRENCY_TOTAL_AMOUNT_INVALID")
            if period is not None:
                raise _bad("SUBSCRIPTION_PERIOD_INVALID")
        return _InvoiceSpec(
            title=title,
            description=description,
            payload=payload,
            currency=currency,
            amount=amount,
            start_parameter=params.string("start_parameter") or "",
            subscription_period=period,
        )

    async def _send_invoice(self, world: _World, params: _Params) -> Message:
        chat = self._target_chat(world, params)
        spec = self._invoice_spec(params, link=False)
        markup = self._markup(params, inline_only=True)
        return self._send(world, chat, "sendInvoice", kind="invoice", invoice=spec, reply_markup=markup)

    async def _create_invoice_link(self, world: _World, params: _Params) -> str:
        spec = self._invoice_spec(params, link=True)
        slug = secrets.token_urlsafe(16)
        world.invoice_links[slug] = spec
        return f"https://t.me/${slug}"

    async def _answer_pre_checkout_query(self, world: _World, params: _Params) -> bool:
        query = world.pre_checkouts.get(params.string("pre_checkout_query_id", required=True) or "")
        if query is None or query.answered or query.expired or self._mono() > query.deadline:
            raise _bad(QUERY_TOO_OLD)
        ok = params.flag("ok")
        error_message = params.string("error_message")
        if not ok and not error_message:
            raise _bad("error_message is empty")
        query.answered, query.ok, query.error_message = True, ok, error_message
        world.changes.notify()
        return True

    async def _refund_star_payment(self, world: _World, params: _Params) -> bool:
        user_id = params.integer("user_id", required=True)
        charge = world.charges.get(params.string("telegram_payment_charge_id", required=True) or "")
        if charge is None or charge.user_id != user_id:
            raise _bad("CHARGE_ID_INVALID")
        if charge.refunded:
            raise _bad("CHARGE_ALREADY_REFUNDED")
        self._refund(world, charge)
        return True

    def _refund(self, world: _World, charge: _Charge) -> None:
        """The Stars go back; the payer's chat gets the `refunded_payment` service message."""
        charge.refunded = True
        charge.refund_date = self._now()
        chat = world.chats.setdefault(charge.user_id, _Chat(charge.user_id))
        message = self._add_message(
            world,
            chat,
            from_bot=False,
            kind="refunded_payment",
            refunded_payment=RefundedPayment(
                currency="XTR",
                total_amount=charge.amount,
                invoice_payload=charge.payload,
                telegram_payment_charge_id=charge.charge_id,
                provider_payment_charge_id="",
            ),
        )
        world.push("message", self._wire(world, message))

    async def _get_star_transactions(self, world: _World, params: _Params) -> dict[str, Any]:
        offset = max(params.integer("offset") or 0, 0)
        limit = min(max(params.integer("limit") or 100, 1), 100)
        rows: list[tuple[int, dict[str, Any]]] = []
        for charge in world.charges.values():
            partner = {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": world.user(charge.user_id),
                "invoice_payload": charge.payload,
            }
            payment = {"id": charge.charge_id, "amount": charge.amount, "date": charge.date}
            rows.append((charge.date, {**payment, "source": partner}))
            if charge.refunded:
                refund = {**payment, "date": charge.refund_date, "receiver": partner}
                rows.append((charge.refund_date, refund))
        rows.sort(key=lambda row: row[0])
        return {"transactions": [tx for _, tx in rows[offset : offset + limit]]}

    async def _get_chat_member(self, world: _World, params: _Params) -> dict[str, Any]:
        raw_chat = params.get("chat_id")
        if raw_chat is None:
            raise _bad("chat_id is empty")
        try:
            key = _chat_key(raw_chat if isinstance(raw_chat, int) else str(raw_chat))
        except ValueError:
            raise _bad("chat not found") from None
        user_id = params.integer("user_id", required=True) or 0
        status = self._memberships.get((key, user_id), "left")
        return _member(status, world.user(user_id))

    @staticmethod
    def _commands_key(params: _Params) -> str:
        scope = params.json("scope")
        scope_type = scope.get("type", "default") if isinstance(scope, dict) else "default"
        suffix = f":{scope['chat_id']}" if isinstance(scope, dict) and "chat_id" in scope else ""
        return f"{scope_type}{suffix}/{params.string('language_code') or ''}"

    async def _set_my_commands(self, world: _World, params: _Params) -> bool:
        commands = params.json("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            description = command.get("description") if isinstance(command, dict) else None
            if not isinstance(name, str) or not _BOT_COMMAND_RE.fullmatch(name.lower()):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        world.commands[self._commands_key(params)] = [
            {"command": c["command"].lower(), "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, world: _World, params: _Params) -> list[dict[str, Any]]:
        return world.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, world: _World, params: _Params) -> bool:
        world.commands.pop(self._commands_key(params), None)
        return True

    # --- control API ---------------------------------------------------------------------

    @web.middleware
    async def _control_errors(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except _ControlError as exc:
            return _json_response({"error": exc.message}, exc.status)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _json_response({"error": str(exc)}, 400)

    @staticmethod
    async def _body(request: web.Request, type_: type[_T]) -> _T:
        return msgspec.json.decode(await request.read() or b"{}", type=type_)

    @staticmethod
    def _query_number(request: web.Request, name: str, default: float) -> float:
        raw = request.query.get(name)
        try:
            return float(raw) if raw else default
        except ValueError:
            raise _ControlError(400, f"{name} must be a number") from None

    @staticmethod
    def _path_int(request: web.Request, name: str) -> int:
        try:
            return int(request.match_info[name])
        except ValueError:
            raise _ControlError(400, f"{name} must be an integer") from None

    def _remember_user(
        self, world: _World, user_id: int, given: ctl.SendTextIn | None, *, open_chat: bool = True
    ) -> User:
        known = world.users.get(user_id)
        profile = {
            "first_name": f"User {user_id}",
            "username": f"user{user_id}",
            "language_code": "en",
        }
        if known is not None:
            profile = {
                key: value for key, value in msgspec.to_builtins(known).items() if key not in ("id", "is_bot")
            }
        if given is not None:
            for key in ("first_name", "last_name", "username", "language_code", "is_premium"):
                value = getattr(given, key)
                if value is not None:
                    profile[key] = value
        user = User(id=user_id, is_bot=False, **profile)
        world.users[user_id] = user
        if open_chat:  # writing in a group opens no private chat: the bot cannot write first
            world.chats.setdefault(user_id, _Chat(user_id))
        return user

    def _set_blocked(self, world: _World, user_id: int, blocked: bool) -> ctl.UpdateRef:
        self._remember_user(world, user_id, None)
        if blocked == (user_id in world.blocked):
            return ctl.UpdateRef()
        if blocked:
            world.blocked.add(user_id)
        else:
            world.blocked.discard(user_id)
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        update_id, dropped = world.push(
            "my_chat_member",
            ChatMemberUpdated(
                chat=world.chat(user_id),
                from_=world.user(user_id),
                date=self._now(),
                old_chat_member=_member(old, world.bot_user()),
                new_chat_member=_member(new, world.bot_user()),
            ),
        )
        return ctl.UpdateRef(update_id=update_id, dropped=dropped)

    async def _c_reset(self, request: web.Request) -> web.Response:
        await self.reset()
        return _json_response({})

    async def _c_groups(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.GroupIn)
        if body.chat_id >= 0:
            raise _ControlError(400, "group and channel ids are negative")
        world.groups[body.chat_id] = body
        world.chats.setdefault(body.chat_id, _Chat(body.chat_id))
        return _json_response({})

    def _group_message(self, world: _World, body: ctl.SendTextIn) -> ctl.Sent:
        """A user writes in a group (a `message`), or a channel posts (a `channel_post`)."""
        assert body.chat_id is not None
        group = world.groups.get(body.chat_id)
        if group is None:
            raise _ControlError(404, f"no group {body.chat_id} (POST /control/groups first)")
        self._remember_user(world, body.user_id, body, open_chat=False)
        chat = world.chats[body.chat_id]
        if body.reply_to_message_id is not None and body.reply_to_message_id not in chat.messages:
            raise _ControlError(404, f"message {body.reply_to_message_id} not found")
        message = self._add_message(
            world,
            chat,
            from_bot=False,
            kind="text",
            text=body.text,
            entities=_command_entities(body.text),
            reply_to=body.reply_to_message_id,
            sender_id=body.user_id,
        )
        kind = "channel_post" if group.type == "channel" else "message"
        update_id, dropped = world.push(kind, self._wire(world, message))
        return ctl.Sent(
            update_id=update_id, message_id=message.message_id, chat_id=chat.chat_id, seq=message.seq,
            dropped=dropped,
        )  # fmt: skip

    async def _c_send_text(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.SendTextIn)
        if body.chat_id is not None and body.chat_id != body.user_id:
            return _json_response(self._group_message(world, body))
        if body.user_id in world.blocked:
            # Writing to a bot one has blocked means pressing "Restart" first.
            self._set_blocked(world, body.user_id, False)
        self._remember_user(world, body.user_id, body)
        chat = world.chats[body.user_id]
        if body.reply_to_message_id is not None and body.reply_to_message_id not in chat.messages:
            raise _ControlError(404, f"message {body.reply_to_message_id} not found")
        message = self._add_message(
            world,
            chat,
            from_bot=False,
            kind="text",
            text=body.text,
            entities=_command_entities(body.text),
            reply_to=body.reply_to_message_id,
        )
        update_id, dropped = world.push("message", self._wire(world, message))
        return _json_response(
            ctl.Sent(
                update_id=update_id,
                message_id=message.message_id,
                chat_id=chat.chat_id,
                seq=message.seq,
                dropped=dropped,
            )
        )

    def _bot_message(self, world: _World, user_id: int, message_id: int | None, want: str) -> _StoredMessage:
        chat = world.chats.get(user_id)
        if chat is None:
            raise _ControlError(404, f"user {user_id} has no chat with the bot")
        if message_id is None:
            candidates = [
                m
                for m in reversed(chat.messages.values())
                if m.from_bot and not m.deleted and (m.inline_markup if want == "keyboard" else m.invoice)
            ]
            if not candidates:
                raise _ControlError(404, f"no bot message with an {want} in chat {user_id}")
            return candidates[0]
        message = chat.messages.get(message_id)
        if message is None or not message.from_bot:
            raise _ControlError(404, f"no bot message {message_id} in chat {user_id}")
        if message.deleted:
            raise _ControlError(409, f"message {message_id} was deleted")
        return message

    def _press_target(self, world: _World, body: ctl.PressIn) -> _StoredMessage | None:
        chat_id = body.user_id if body.chat_id is None else body.chat_id
        if body.message_id is not None or not body.forge:
            return self._bot_message(world, chat_id, body.message_id, "keyboard")
        # Forged data with no message named: the newest bot message, or none at all.
        chat = world.chats.get(chat_id)
        messages = reversed(chat.messages.values()) if chat else iter(())
        return next((m for m in messages if m.from_bot and not m.deleted), None)

    async def _c_press(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.PressIn)
        if body.user_id not in world.users:
            raise _ControlError(404, f"user {body.user_id} has no chat with the bot")
        message = self._press_target(world, body)
        buttons = [b for row in _buttons(message.inline_markup if message else None) for b in row]
        data = body.data
        if body.button_text is not None:
            match = next((b for b in buttons if b.text == body.button_text), None)
            if match is None:
                raise _ControlError(404, f"no button {body.button_text!r} on the message")
            if match.callback_data is None:
                raise _ControlError(409, f"button {body.button_text!r} has no callback_data")
            data = match.callback_data
        elif data is None:
            raise _ControlError(400, "give data or button_text")
        elif not body.forge and all(b.callback_data != data for b in buttons):
            raise _ControlError(404, f"no button with callback_data {data!r} (forge=true?)")
        query = _Callback(
            id=str(secrets.randbits(62)),
            user_id=body.user_id,
            chat_id=message.chat_id if message else None,
            message_id=message.message_id if message else None,
            data=data,
            created=self._mono(),
        )
        world.callbacks[query.id] = query
        update_id, dropped = world.push(
            "callback_query",
            CallbackQuery(
                id=query.id,
                from_=world.user(body.user_id),
                chat_instance=str((world.bot_id or 0) * 1_000_003 + (body.chat_id or body.user_id)),
                message=self._wire(world, message) if message else None,
                data=data,
            ),
        )
        return _json_response(
            ctl.Pressed(
                update_id=update_id,
                callback_query_id=query.id,
                message_id=query.message_id,
                data=data,
                dropped=dropped,
            )
        )

    async def _c_pay(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.PayIn)
        if body.link is not None:
            spec = world.invoice_links.get(body.link.rsplit("$", 1)[-1])
            if spec is None:
                raise _ControlError(404, f"unknown invoice link {body.link}")
            self._remember_user(world, body.user_id, None)
        else:
            spec = self._bot_message(world, body.user_id, body.message_id, "invoice").invoice
            if spec is None:
                raise _ControlError(409, f"message {body.message_id} is not an invoice")
            if spec.paid:
                raise _ControlError(409, "this invoice is already paid")
        query = _PreCheckout(
            id=str(secrets.randbits(62)),
            user_id=body.user_id,
            invoice=spec,
            deadline=self._mono() + body.timeout,
        )
        world.pre_checkouts[query.id] = query
        _, dropped = world.push(
            "pre_checkout_query",
            PreCheckoutQuery(
                id=query.id,
                from_=world.user(body.user_id),
                currency=spec.currency,
                total_amount=spec.amount,
                invoice_payload=spec.payload,
            ),
        )
        answered = not dropped and await world.changes.wait_until(lambda: query.answered, body.timeout)
        if not answered:
            query.expired = True
            outcome = ctl.PaymentOutcome(status="timeout", pre_checkout_query_id=query.id, dropped=dropped)
            return _json_response(outcome)
        if not query.ok:
            outcome = ctl.PaymentOutcome(
                status="rejected", pre_checkout_query_id=query.id, error_message=query.error_message
            )
            return _json_response(outcome)
        return _json_response(self._paid(world, query, twice=body.twice))

    def _paid(self, world: _World, query: _PreCheckout, *, twice: bool) -> ctl.PaymentOutcome:
        spec = query.invoice
        charge = _Charge(
            charge_id="stx" + secrets.token_urlsafe(32),
            user_id=query.user_id,
            amount=spec.amount,
            payload=spec.payload,
            date=self._now(),
        )
        world.charges[charge.charge_id] = charge
        spec.paid = spec.paid or spec.subscription_period is None
        recurring = spec.subscription_period is not None
        payment = SuccessfulPayment(
            currency=spec.currency,
            total_amount=spec.amount,
            invoice_payload=spec.payload,
            telegram_payment_charge_id=charge.charge_id,
            provider_payment_charge_id="",
            subscription_expiration_date=charge.date + (spec.subscription_period or 0) if recurring else None,
            is_recurring=True if recurring else None,
            is_first_recurring=True if recurring else None,
        )
        chat = world.chats[query.user_id]
        message = self._add_message(
            world, chat, from_bot=False, kind="successful_payment", successful_payment=payment
        )
        wire = self._wire(world, message)
        update_ids = [world.push("message", wire)[0] for _ in range(2 if twice else 1)]
        return ctl.PaymentOutcome(
            status="paid",
            pre_checkout_query_id=query.id,
            telegram_payment_charge_id=charge.charge_id,
            message_id=message.message_id,
            update_ids=update_ids,
        )

    async def _c_block(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.UserIn)
        return _json_response(self._set_blocked(world, body.user_id, True))

    async def _c_unblock(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.UserIn)
        return _json_response(self._set_blocked(world, body.user_id, False))

    async def _c_members(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.MemberIn)
        try:
            key = _chat_key(body.chat_id)
        except ValueError:
            raise _ControlError(400, "chat_id must be an integer or @username") from None
        self._memberships[(key, body.user_id)] = body.status
        return _json_response({})

    async def _c_messages(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        chat = world.chats.get(self._path_int(request, "chat_id"))
        include_user = request.query.get("include_user") in ("1", "true")
        messages = [
            self._shown(message)
            for message in (chat.messages.values() if chat else ())
            if include_user or message.from_bot
        ]
        return _json_response(ctl.MessagesOut(messages=messages, last_seq=world.seq))

    async def _c_events(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        chat_id = self._path_int(request, "chat_id")
        after = int(self._query_number(request, "after", 0))
        more_than = request.query.get("more_than")
        skip = int(more_than) if more_than else 0
        include_user = request.query.get("include_user") in ("1", "true")
        timeout = min(self._query_number(request, "timeout", 5.0), 300.0)

        def selected() -> list[ctl.ChatEvent]:
            chat = world.chats.get(chat_id)
            if chat is None:
                return []
            events = [e for e in chat.events if include_user or e.kind != "received"]
            return [e for e in events[skip:] if e.seq > after]

        await world.changes.wait_until(lambda: bool(selected()), timeout)
        return _json_response(ctl.EventsOut(events=selected(), last_seq=world.seq))

    async def _c_callback(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        query = world.callbacks.get(request.match_info["callback_id"])
        if query is None:
            raise _ControlError(404, "unknown callback query")
        timeout = min(self._query_number(request, "timeout", 0.0), 300.0)
        await world.changes.wait_until(lambda: query.answered, timeout)
        return _json_response(
            ctl.CallbackAnswer(
                id=query.id,
                user_id=query.user_id,
                chat_id=query.chat_id,
                message_id=query.message_id,
                data=query.data,
                answered=query.answered,
                text=query.text,
                show_alert=query.show_alert,
                url=query.url,
                cache_time=query.cache_time,
            )
        )

    async def _c_calls(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        method = request.query.get("method", "").lower()
        calls = [call for call in world.calls if not method or call.method.lower() == method]
        return _json_response(calls)

    async def _c_rate_stats(self, request: web.Request) -> web.Response:
        rate = self._control_world(request).rate
        return _json_response(
            ctl.RateStats(
                limits=self.rate_limits,
                accepted_total=rate.accepted_total,
                per_second=[
                    ctl.SecondCount(second=second, accepted=count)
                    for second, count in sorted(rate.per_second.items())
                ],
                max_per_chat_window=rate.max_chat_window,
                max_global_window=rate.max_global_window,
                too_many_requests=rate.given,
                early_retries=rate.early_retries,
            )
        )

    async def _c_set_rate(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.RateLimitsIn)
        changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
        if any(isinstance(v, int) and not isinstance(v, bool) and v < 1 for v in changes.values()):
            raise _ControlError(400, "limits must be positive")
        self.rate_limits = msgspec.structs.replace(self.rate_limits, **changes)
        return _json_response(self.rate_limits)

    async def _c_flood(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        body = await self._body(request, ctl.FloodIn)
        if body.seconds < 1:
            raise _ControlError(400, "seconds must be positive")
        world.rate.floods[body.chat_id] = self._mono() + body.seconds
        world.rate.flood_told.discard(body.chat_id)
        return _json_response({"ok": True})

    async def _c_inject(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        update = await self._body(request, dict[str, Any])
        kinds = [key for key in update if key != "update_id"]
        if len(kinds) != 1:
            raise _ControlError(400, "an update carries exactly one field besides update_id")
        payload = update[kinds[0]]
        chat = payload.get("chat") if isinstance(payload, dict) else None
        sender = payload.get("from") if isinstance(payload, dict) else None
        if isinstance(chat, dict) and chat.get("type") == "private" and isinstance(sender, dict):
            try:
                user = msgspec.convert(sender, User)
            except msgspec.ValidationError:
                user = None
            if user is not None:
                world.users.setdefault(user.id, user)
                chat_state = world.chats.setdefault(user.id, _Chat(user.id))
                message_id = payload.get("message_id")
                if isinstance(message_id, int):
                    chat_state.next_message_id = max(chat_state.next_message_id, message_id + 1)
        update_id, dropped = world.push(kinds[0], payload)
        return _json_response(ctl.UpdateRef(update_id=update_id, dropped=dropped))

    async def _c_charges(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        return _json_response(
            [
                ctl.StarCharge(
                    telegram_payment_charge_id=charge.charge_id,
                    user_id=charge.user_id,
                    total_amount=charge.amount,
                    invoice_payload=charge.payload,
                    date=charge.date,
                    refunded=charge.refunded,
                )
                for charge in world.charges.values()
            ]
        )

    @staticmethod
    def _star_charge(charge: _Charge) -> ctl.StarCharge:
        return ctl.StarCharge(
            telegram_payment_charge_id=charge.charge_id,
            user_id=charge.user_id,
            total_amount=charge.amount,
            invoice_payload=charge.payload,
            date=charge.date,
            refunded=charge.refunded,
        )

    async def _c_charge(self, request: web.Request) -> web.Response:
        """A charge as Telegram records it; with `deliver` the payer's chat also gets the
        `successful_payment` (and the bot its update), else that update was lost."""
        world = self._control_world(request)
        body = await self._body(request, ctl.ChargeIn)
        if body.total_amount < 1:
            raise _ControlError(400, "total_amount must be positive")
        self._remember_user(world, body.user_id, None)
        charge = _Charge(
            charge_id="stx" + secrets.token_urlsafe(32),
            user_id=body.user_id,
            amount=body.total_amount,
            payload=body.invoice_payload,
            date=self._now(),
        )
        world.charges[charge.charge_id] = charge
        if body.deliver:
            chat = world.chats.setdefault(body.user_id, _Chat(body.user_id))
            paid = SuccessfulPayment(
                currency="XTR",
                total_amount=charge.amount,
                invoice_payload=charge.payload,
                telegram_payment_charge_id=charge.charge_id,
                provider_payment_charge_id="",
            )
            message = self._add_message(
                world, chat, from_bot=False, kind="successful_payment", successful_payment=paid
            )
            world.push("message", self._wire(world, message))
        return _json_response(self._star_charge(charge))

    async def _c_refund_charge(self, request: web.Request) -> web.Response:
        world = self._control_world(request)
        charge = world.charges.get(request.match_info["charge_id"])
        if charge is None:
            raise _ControlError(404, "unknown charge")
        if charge.refunded:
            raise _ControlError(409, "CHARGE_ALREADY_REFUNDED")
        self._refund(world, charge)
        return _json_response(self._star_charge(charge))

    async def _c_tokens(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.TokenIn)
        if body.valid:
            self._invalid_tokens.discard(body.token)
        else:
            self._invalid_tokens.add(body.token)
        return _json_response({})

    async def _c_bad_gateway(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.BadGatewayIn)
        if body.on:
            self._bad_gateway.add(body.method.lower())
        else:
            self._bad_gateway.discard(body.method.lower())
        return _json_response({"methods": sorted(self._bad_gateway)})

    async def _c_clock(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.ClockIn)
        if body.advance < 0:
            raise _ControlError(400, "the clock only goes forward")
        self._clock_offset += body.advance
        return _json_response({"offset": self._clock_offset})

    async def _c_hold(self, request: web.Request) -> web.Response:
        body = await self._body(request, ctl.HoldIn)
        if body.seconds < 0 or (body.times is not None and body.times < 1):
            raise _ControlError(400, "seconds must be >= 0 and times >= 1")
        self._hold = body if body.seconds > 0 else None
        return _json_response({"hold": self._hold})

    async def _c_file(self, request: web.Request) -> web.Response:
        stored = self._control_world(request).files.get(request.match_info["file_id"])
        if stored is None or stored.data is None:
            raise _ControlError(404, "unknown file or a file sent by URL")
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")


async def _serve(host: str, port: int, *, rate_limits: bool = True) -> None:
    emulator = TelegramEmulator(rate_limits=ctl.RateLimits(enabled=rate_limits))

    def ready() -> None:
        logger.info("Telegram Bot API emulator listening on %s", emulator.base_url)

    try:
        await standalone.run_until_signal(host, [(emulator, port)], ready)
    finally:
        logger.info("Telegram Bot API emulator stopped")


def main() -> None:
    parser = standalone.arguments("In-memory Telegram Bot API emulator", port=8081)
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="accept any rate (Telegram's limits are on by default)"
    )
    args = standalone.parse(parser, None)
    asyncio.run(_serve(args.host, args.port, rate_limits=not args.no_rate_limits))


if __name__ == "__main__":
    main()
