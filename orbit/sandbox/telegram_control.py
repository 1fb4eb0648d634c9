"""Client and wire shapes of the Telegram emulator's control API (`/control/...`).

The emulator (`orbit.sandbox.telegram`) encodes its answers with the Structs
below, and `TelegramControl` decodes them, so both sides share one definition.
See docs/telegram-emulator.md for every endpoint.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import aiohttp
import msgspec

MemberStatus = Literal["creator", "administrator", "member", "restricted", "left", "kicked"]
EventKind = Literal["sent", "edited", "deleted", "received"]
PaymentStatus = Literal["paid", "rejected", "timeout"]
GroupType = Literal["group", "supergroup", "channel"]

_T = TypeVar("_T")


class _Shape(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


# --- requests ---------------------------------------------------------------------------


class SendTextIn(_Shape):
    user_id: int
    text: str
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_premium: bool | None = None
    reply_to_message_id: int | None = None
    chat_id: int | None = None  # a group or channel (see /control/groups); default: the private chat


class PressIn(_Shape):
    user_id: int
    message_id: int | None = None
    data: str | None = None
    button_text: str | None = None
    forge: bool = False
    chat_id: int | None = None  # the button is on a message in this group; default: the private chat


class GroupIn(_Shape):
    chat_id: int  # negative, as Telegram's group and channel ids are
    type: GroupType = "supergroup"
    title: str = "Group"


class PayIn(_Shape):
    user_id: int
    message_id: int | None = None
    link: str | None = None
    twice: bool = False
    timeout: float = 10.0


class UserIn(_Shape):
    user_id: int


class MemberIn(_Shape):
    chat_id: int | str
    user_id: int
    status: MemberStatus


class TokenIn(_Shape):
    token: str
    valid: bool = False


class BadGatewayIn(_Shape):
    method: str  # a Bot API method name, any case
    on: bool = True


class ClockIn(_Shape):
    advance: float


class ChargeIn(_Shape):
    """A Stars payment Telegram took; `deliver=False`: its `successful_payment` is lost."""

    user_id: int
    total_amount: int
    invoice_payload: str
    deliver: bool = False


class HoldIn(_Shape):
    """Perform `method` as usual, then keep its answer back for `seconds` (`times` calls;
    None = until cleared; seconds 0 clears)."""

    method: str
    seconds: float
    times: int | None = 1


class RateLimits(_Shape):
    enabled: bool = True  # on, as Telegram: what a newcomer sees is what Telegram does
    per_chat_per_sec: int = 1
    global_per_sec: int = 30


class FloodIn(_Shape):
    """A flood wait Telegram imposes after sustained overuse: `seconds` of 429s for one
    chat (`chat_id`) or for the whole bot (`chat_id` null)."""

    seconds: int
    chat_id: int | None = None


class RateLimitsIn(_Shape):
    enabled: bool | None = None
    per_chat_per_sec: int | None = None
    global_per_sec: int | None = None


# --- answers ----------------------------------------------------------------------------


class Sent(_Shape):
    update_id: int
    message_id: int
    chat_id: int
    seq: int
    dropped: bool = False


class Pressed(_Shape):
    update_id: int
    callback_query_id: str
    message_id: int | None
    data: str
    dropped: bool = False


class PaymentOutcome(_Shape):
    status: PaymentStatus
    pre_checkout_query_id: str
    telegram_payment_charge_id: str | None = None
    error_message: str | None = None
    message_id: int | None = None
    update_ids: list[int] = msgspec.field(default_factory=list)
    dropped: bool = False


class UpdateRef(_Shape):
    update_id: int | None = None
    dropped: bool = False


class Button(_Shape):
    text: str
    callback_data: str | None = None
    url: str | None = None


class MessageVersion(_Shape):
    """A message as it was before one edit."""

    date: int
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    caption: str | None = None
    reply_markup: dict[str, Any] | None = None


class ShownPhoto(_Shape):
    file_id: str
    file_unique_id: str
    width: int
    height: int
    file_size: int | None = None
    url: str | None = None


class ShownDocument(_Shape):
    file_id: str
    file_unique_id: str
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None


class ShownInvoice(_Shape):
    title: str
    description: str
    currency: str
    total_amount: int
    payload: str
    paid: bool = False


class ShownMessage(_Shape):
    """One message of a chat as the user sees it now (plain text after parse_mode)."""

    message_id: int
    chat_id: int
    seq: int
    date: int
    from_bot: bool
    kind: str
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    parse_mode: str | None = None
    source_text: str | None = None
    caption: str | None = None
    caption_entities: list[dict[str, Any]] | None = None
    photo: ShownPhoto | None = None
    document: ShownDocument | None = None
    invoice: ShownInvoice | None = None
    successful_payment: dict[str, Any] | None = None
    refunded_payment: dict[str, Any] | None = None
    reply_markup: dict[str, Any] | None = None
    buttons: list[list[Button]] = msgspec.field(default_factory=list)
    link_preview_options: dict[str, Any] | None = None
    edited: bool = False
    edits: list[MessageVersion] = msgspec.field(default_factory=list)
    deleted: bool = False

    def button(self, text: str) -> Button:
        for row in self.buttons:
            for button in row:
                if button.text == text:
                    return button
        raise KeyError(text)

    @property
    def button_texts(self) -> list[str]:
        return [button.text for row in self.buttons for button in row]


class KnownUser(_Shape):
    """A user the bot has met (wrote, paid, was blocked or unblocked), with their profile."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


class MessagesOut(_Shape):
    messages: list[ShownMessage]
    last_seq: int


class ChatEvent(_Shape):
    seq: int
    kind: EventKind
    message_id: int
    message: ShownMessage


class EventsOut(_Shape):
    events: list[ChatEvent]
    last_seq: int


class CallbackAnswer(_Shape):
    id: str
    user_id: int
    chat_id: int | None
    message_id: int | None
    data: str
    answered: bool = False
    text: str | None = None
    show_alert: bool = False
    url: str | None = None
    cache_time: int | None = None


class ApiCall(_Shape):
    """One request the bot made, with its parameters as they came over the wire."""

    seq: int
    at: float
    bot_id: int
    method: str
    params: dict[str, Any]
    ok: bool | None = None
    error_code: int | None = None
    description: str | None = None


class TooManyRequests(_Shape):
    at: float
    method: str
    chat_id: int | None
    scope: Literal["chat", "global"]
    retry_after: int
    early: bool = False


class SecondCount(_Shape):
    second: int
    accepted: int


class RateStats(_Shape):
    limits: RateLimits
    accepted_total: int
    per_second: list[SecondCount]
    max_per_chat_window: int
    max_global_window: int
    too_many_requests: list[TooManyRequests]
    early_retries: int


class StarCharge(_Shape):
    telegram_payment_charge_id: str
    user_id: int
    total_amount: int
    invoice_payload: str
    date: int
    refunded: bool = False


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _ErrorBody(msgspec.Struct):
    error: str


class TelegramControl:
    """Drives the emulator as a Telegram user would, and reads back what the bot did."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, *, bot_id: int | None = None) -> None:
        self._base = base_url.rstrip("/") + "/control"
        self._session = session
        self._query = {"bot_id": str(bot_id)} if bot_id is not None else {}

    async def _request(
        self,
        method: str,
        path: str,
        type_: type[_T],
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> _T:
        data = msgspec.json.encode(body) if body is not None else None
        async with self._session.request(
            method,
            self._base + path,
            data=data,
            params={**self._query, **(query or {})},
            headers={"Content-Type": "application/json"},
        ) as resp:
            raw = await resp.read()
        if resp.status >= 400:
            try:
                message = msgspec.json.decode(raw, type=_ErrorBody).error
            except msgspec.DecodeError:
                message = raw.decode(errors="replace")
            raise ControlError(resp.status, message)
        return msgspec.json.decode(raw, type=type_)

    async def send_text(self, user_id: int, text: str, **user: Any) -> Sent:
        """`user` may carry first_name, last_name, username, language_code, is_premium,
        and `chat_id` to write in a group instead of the private chat."""
        body = SendTextIn(user_id=user_id, text=text, **user)
        return await self._request("POST", "/messages", Sent, body)

    async def create_group(self, chat_id: int, type: GroupType = "supergroup", title: str = "Group") -> None:
        """A group, supergroup or channel the bot is a member of (users write there with `chat_id`)."""
        await self._request("POST", "/groups", dict, GroupIn(chat_id=chat_id, type=type, title=title))

    async def press(
        self,
        user_id: int,
        message_id: int | None = None,
        data: str | None = None,
        button_text: str | None = None,
        *,
        forge: bool = False,
        chat_id: int | None = None,
    ) -> Pressed:
        body = PressIn(
            user_id=user_id,
            message_id=message_id,
            data=data,
            button_text=button_text,
            forge=forge,
            chat_id=chat_id,
        )
        return await self._request("POST", "/press", Pressed, body)

    async def pay(
        self,
        user_id: int,
        message_id: int | None = None,
        *,
        link: str | None = None,
        twice: bool = False,
        timeout: float = 10.0,
    ) -> PaymentOutcome:
        body = PayIn(user_id=user_id, message_id=message_id, link=link, twice=twice, timeout=timeout)
        return await self._request("POST", "/pay", PaymentOutcome, body)

    async def messages(self, chat_id: int, *, include_user: bool = False) -> list[ShownMessage]:
        query = {"include_user": "true"} if include_user else {}
        out = await self._request("GET", f"/chats/{chat_id}/messages", MessagesOut, query=query)
        return out.messages

    async def users(self) -> list[KnownUser]:
        """Every user the bot has met, in the order they first appeared."""
        return await self._request("GET", "/users", list[KnownUser])

    async def last_seq(self, chat_id: int) -> int:
        out = await self._request("GET", f"/chats/{chat_id}/messages", MessagesOut)
        return out.last_seq

    async def wait_for(
        self,
        chat_id: int,
        after_seq: int = 0,
        timeout: float = 5.0,
        *,
        more_than: int | None = None,
        include_user: bool = False,
    ) -> list[ChatEvent]:
        """Events after `after_seq` (or once the chat has more than `more_than` events).

        Raises TimeoutError when nothing new arrived within `timeout` seconds.
        """
        query = {"after": str(after_seq), "timeout": str(timeout)}
        if more_than is not None:
            query["more_than"] = str(more_than)
        if include_user:
            query["include_user"] = "true"
        out = await self._request("GET", f"/chats/{chat_id}/events", EventsOut, query=query)
        if not out.events:
            raise TimeoutError(f"chat {chat_id}: nothing new after seq {after_seq} in {timeout}s")
        return out.events

    async def callback_answer(self, callback_query_id: str, *, timeout: float = 5.0) -> CallbackAnswer:
        """The query's answer, waiting up to `timeout` seconds for the bot to give one."""
        query = {"timeout": str(timeout)}
        return await self._request("GET", f"/callbacks/{callback_query_id}", CallbackAnswer, query=query)

    async def block(self, user_id: int) -> UpdateRef:
        return await self._request("POST", "/block", UpdateRef, UserIn(user_id=user_id))

    async def unblock(self, user_id: int) -> UpdateRef:
        return await self._request("POST", "/unblock", UpdateRef, UserIn(user_id=user_id))

    async def set_member(self, chat: int | str, user: int, status: MemberStatus) -> None:
        body = MemberIn(chat_id=chat, user_id=user, status=status)
        await self._request("POST", "/members", dict, body)

    async def set_rate_limits(
        self,
        enabled: bool = True,
        *,
        per_chat_per_sec: int | None = None,
        global_per_sec: int | None = None,
    ) -> RateLimits:
        body = RateLimitsIn(enabled=enabled, per_chat_per_sec=per_chat_per_sec, global_per_sec=global_per_sec)
        return await self._request("POST", "/rate", RateLimits, body)

    async def flood(self, seconds: int, chat_id: int | None = None) -> None:
        """Refuse sends (to `chat_id`, or all) for `seconds` with 429 retry_after."""
        await self._request("POST", "/flood", dict, FloodIn(seconds=seconds, chat_id=chat_id))

    async def rate_stats(self) -> RateStats:
        return await self._request("GET", "/rate", RateStats)

    async def calls(self, method: str | None = None) -> list[ApiCall]:
        query = {"method": method} if method else {}
        return await self._request("GET", "/calls", list[ApiCall], query=query)

    async def charges(self) -> list[StarCharge]:
        return await self._request("GET", "/charges", list[StarCharge])

    async def charge(
        self, user_id: int, total_amount: int, invoice_payload: str, *, deliver: bool = False
    ) -> StarCharge:
        """A Stars charge made without the bot's pre-checkout answer (already paid)."""
        body = ChargeIn(
            user_id=user_id, total_amount=total_amount, invoice_payload=invoice_payload, deliver=deliver
        )
        return await self._request("POST", "/charges", StarCharge, body)

    async def refund_charge(self, charge_id: str) -> StarCharge:
        """Someone other than the bot (support, another tool holding the token) refunds it."""
        return await self._request("POST", f"/charges/{charge_id}/refund", StarCharge)

    async def hold_answers(self, method: str, seconds: float, count: int = 1) -> None:
        await self.hold(method, seconds, times=count)

    async def inject_update(self, update: dict[str, Any]) -> UpdateRef:
        """Queue a raw update as given; `update_id` is assigned by the emulator."""
        return await self._request("POST", "/updates", UpdateRef, update)

    async def set_token_valid(self, token: str, valid: bool) -> None:
        await self._request("POST", "/tokens", dict, TokenIn(token=token, valid=valid))

    async def set_bad_gateway(self, method: str, on: bool = True) -> None:
        """Answer `method` with an HTML 502 page (a reverse proxy's) instead of the Bot API."""
        await self._request("POST", "/bad_gateway", dict, BadGatewayIn(method=method, on=on))

    async def advance_clock(self, seconds: float) -> None:
        await self._request("POST", "/clock", dict, ClockIn(advance=seconds))

    async def hold(self, method: str, seconds: float, times: int | None = 1) -> None:
        """The next `times` successful `method` calls take effect, then wait `seconds`
        before answering: a client that dies meanwhile never learns it succeeded."""
        await self._request("POST", "/hold", dict, HoldIn(method=method, seconds=seconds, times=times))

    async def file(self, file_id: str) -> bytes:
        async with self._session.get(self._base + f"/files/{file_id}", params=self._query) as resp:
            if resp.status >= 400:
                raise ControlError(resp.status, await resp.text())
            return await resp.read()

    async def reset(self) -> None:
        await self._request("POST", "/reset", dict)
