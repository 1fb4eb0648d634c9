"""The emulator's state: one world per bot (users, chats, messages, updates, payments)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.constants import (
    BOT_FIRST_NAME,
    BOT_USERNAME,
    MAX_RECORDED_CALLS,
    OPT_IN_UPDATE_TYPES,
)
from orbit.sandbox.telegram.wire import Chat, PhotoSize, RefundedPayment, SuccessfulPayment, User

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
