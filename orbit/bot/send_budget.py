"""The bot's replies spend the one send budget they share with the outbox (Redis).

Every message-sending call of the bot (replies, edits, photos, invoices) passes here
on its way to Telegram:

1. one at a time per chat in this process (Telegram: one message a second per chat);
   the chat's own interval, shared with the outbox through Redis, is waited out;
2. a pace slot is *reserved* in line (FIFO across every bot process, and ahead of the
   outbox's notifications and broadcasts: orbit/outbox/limiter.py); the caller sleeps
   until it comes, then is admitted (a 429 pause voids the slot, the window keeps a
   31st send out of any second);
3. the request goes out; a 429 pauses *every* sender for `retry_after` (the
   limiter's pause key) and the request waits its turn again, until `max_wait`.

Without Redis (down, cut off) the budget is kept in this process alone (`_LocalBudget`):
the bot goes on answering at Telegram's pace instead of failing every press.

When the screen would wait longer than `ANSWER_PRESS_AFTER`, the press being
handled is answered at once (`answer_press_now`), so the button does not spin
while the screen queues. Edits of the same message waiting
together coalesce: only the newest goes out and every caller gets its answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from redis.exceptions import RedisError

from orbit.bot.middlewares.callback_answer import answer_press_now
from orbit.metrics import Metrics
from orbit.outbox.limiter import ADMITTED, WINDOW, SendLimiter

log = logging.getLogger(__name__)

MAX_WAIT = 300.0  # a reply waits this long for its turn at most (then the error handler, or the outbox)
# A press whose screen would wait longer than this (the chat's own second, a queue) is
# answered at once; a shorter wait keeps the answer with the screen, as without a crowd.
ANSWER_PRESS_AFTER = 1.5
EDIT_METHODS = frozenset(
    {"editMessageText", "editMessageCaption", "editMessageReplyMarkup", "editMessageMedia"}
)
LOCAL_MARGIN = 0.9  # of the shared pace, kept by a process pacing alone
REDIS_RETRY_SECONDS = 5.0  # paced alone this long after a Redis failure, then Redis again
UNCOUNTED = frozenset({"sendChatAction"})  # Telegram does not count it as a message


def counts(api_method: str) -> bool:
    """Does Telegram count this call against the bot's message limits?"""
    if api_method in UNCOUNTED:
        return False
    return api_method.startswith(("send", "edit", "copyMessage", "forwardMessage"))


def _chat_of(method: TelegramMethod[Any]) -> int | None:
    chat = getattr(method, "chat_id", None)
    if isinstance(chat, int):
        return chat
    if isinstance(chat, str) and chat.lstrip("-").isdigit():
        return int(chat)
    return None


@dataclass
class _Edit:
    """An edit of one message waiting for its turn: the newest version, and the callers
    whose older versions it replaced."""

    method: TelegramMethod[Any]
    followers: list[asyncio.Future[Any]] = field(default_factory=list)


class _LocalBudget:
    """The budget of this process alone, for while Redis cannot be reached."""

    def __init__(self, rate_per_second: float, chat_interval: float, window_limit: int) -> None:
        self.interval = 1.0 / rate_per_second
        self.chat_interval = chat_interval
        self.window_limit = window_limit
        self.tat = 0.0
        self.paused_until = 0.0
        self.chat_free_at: dict[int, float] = {}
        # The window, as the shared one: sends in flight, and answers of the last second.
        self.in_flight = 0
        self.answered: deque[float] = deque()

    def window_wait(self) -> float:
        """Seconds until one more send cannot make 31 arrive within a second (0.0: now)."""
        now = time.monotonic()
        while self.answered and self.answered[0] <= now - 1.0:
            self.answered.popleft()
        if self.in_flight + len(self.answered) < self.window_limit:
            return 0.0
        return self.answered[0] + 1.0 - now if self.answered else 0.005

    def ready_in(self, chat_id: int | None) -> float:
        """Seconds until the pause is over and the chat is free (nothing reserved)."""
        chat_free = self.chat_free_at.get(chat_id, 0.0) if chat_id is not None else 0.0
        return max(0.0, max(self.paused_until, chat_free) - time.monotonic())

    def reserve(self) -> float:
        """Take the next pace slot: seconds until it (sleep that long, then send)."""
        now = time.monotonic()
        slot = max(self.tat, now)
        self.tat = slot + self.interval
        return slot - now

    def done(self, chat_id: int | None) -> None:
        now = time.monotonic()
        self.in_flight = max(0, self.in_flight - 1)
        self.answered.append(now)
        while self.answered[0] <= now - 1.0:
            self.answered.popleft()
        if chat_id is not None:
            self.chat_free_at[chat_id] = now + self.chat_interval
        if len(self.chat_free_at) > 10_000:  # forget chats whose second is long over
            self.chat_free_at = {c: t for c, t in self.chat_free_at.items() if t > now}

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


@dataclass
class _ChatLine:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SendBudget(BaseRequestMiddleware):
    def __init__(self, limiter: SendLimiter, metrics: Metrics, *, max_wait: float = MAX_WAIT) -> None:
        self.limiter = limiter
        self.metrics = metrics
        self.max_wait = max_wait
        self._edits: dict[tuple[int, int], _Edit] = {}
        self._chats: dict[int, _ChatLine] = {}
        # Alone it has no window to absorb latency jitter: a margin below the shared pace instead.
        rate = LOCAL_MARGIN * 1_000_000 / limiter.interval_us
        self._local = _LocalBudget(rate, limiter.chat_interval_ms / 1000, limiter.window_limit)
        self._redis_back_at = 0.0  # after a Redis failure, try it again from this moment

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        self.metrics.inc("telegram_requests_total", method=name)  # Bot API method names: bounded
        if not counts(name):
            return await make_request(bot, method)
        chat_id = _chat_of(method)
        message_id = getattr(method, "message_id", None)
        key = (chat_id, message_id) if name in EDIT_METHODS and chat_id is not None and message_id else None
        if key is None:
            return await self._in_line(make_request, bot, chat_id, None, _Edit(method))
        waiting = self._edits.get(key)
        if waiting is not None:  # an older edit of this message is still in line: ride on it
            return await self._follow(waiting, method)
        edit = self._edits[key] = _Edit(method)
        return await self._in_line(make_request, bot, chat_id, key, edit)

    async def _follow(self, waiting: _Edit, method: TelegramMethod[Any]) -> Any:
        waiting.method = method
        self.metrics.inc("telegram_edits_coalesced_total")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting.followers.append(future)
        return await future

    async def _in_line(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        chat_id: int | None,
        key: tuple[int, int] | None,
        edit: _Edit,
    ) -> Any:
        try:
            result = await self._send(make_request, bot, chat_id, key, edit)
        except asyncio.CancelledError:
            for future in edit.followers:
                future.cancel()
            raise
        except BaseException as exc:
            for future in edit.followers:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            if key is not None and self._edits.get(key) is edit:
                del self._edits[key]
        for future in edit.followers:
            if not future.done():
                future.set_result(result)
        return result

    async def _send(
        self,
        make_request: NextRequestMiddlewareType[Any],
        bot: Bot,
        chat_id: int | None,
        key: tuple[int, int] | None,
        edit: _Edit,
    ) -> Any:
        started = time.monotonic()
        deadline = started + self.max_wait
        line = self._chat_line(chat_id)
        handoff: _Edit | None = None
        try:
            async with line.lock if line is not None else _NO_LOCK:
                while True:
                    ticket = await self._turn_anyhow(chat_id, started, deadline, edit)
                    if key is not None and self._edits.get(key) is edit:
                        del self._edits[key]  # from here a newer edit is a new request
                    try:
                        return await make_request(bot, edit.method)
                    except TelegramRetryAfter as exc:
                        await self._pause(exc.retry_after)  # first: before anyone else goes
                        self.metrics.inc("telegram_retry_after_total", outcome="paused")
                        log.warning(
                            "%s to chat %s: 429, every sender pauses %ss",
                            edit.method.__api_method__, chat_id, exc.retry_after,
                        )
                        if time.monotonic() + exc.retry_after > deadline:
                            raise
                        if key is not None:
                            handoff = self._edits.get(key)
                            if handoff is not None:  # a newer version queued meanwhile: it goes instead
                                handoff.followers.extend(edit.followers)
                                edit.followers.clear()
                                break
                            self._edits[key] = edit
                    finally:
                        await self._done(ticket, chat_id)
        finally:
            if line is not None:
                line.users -= 1
                if line.users == 0:
                    del self._chats[chat_id]  # type: ignore[arg-type]
        assert handoff is not None
        return await self._follow(handoff, handoff.method)

    def _chat_line(self, chat_id: int | None) -> _ChatLine | None:
        if chat_id is None:
            return None
        line = self._chats.get(chat_id)
        if line is None:
            line = self._chats[chat_id] = _ChatLine()
        line.users += 1
        return line

    async def _turn_anyhow(
        self, chat_id: int | None, started: float, deadline: float, edit: _Edit
    ) -> str | None:
        """The shared turn (its ticket), or the local one (None) while Redis is unreachable."""
        # Back to the shared line only once the local one has drained: two lines at once
        # would each spend the whole budget.
        if time.monotonic() >= self._redis_back_at and self._local.tat <= time.monotonic():
            try:
                await self._share_pause()
                ticket = await self._turn(chat_id, started, deadline, edit)
                self._local.in_flight += 1
                return ticket
            except (RedisError, OSError) as exc:
                self._redis_back_at = time.monotonic() + REDIS_RETRY_SECONDS
                self.metrics.inc("send_budget_redis_errors_total")
                log.warning("send budget: Redis unreachable (%s); this process paces alone", exc)
        while True:
            while (wait := self._local.ready_in(chat_id)) > 0:
                await self._wait(wait, started, deadline, edit)
            await self._wait(self._local.reserve(), started, deadline, edit)
            while (wait := self._local.window_wait()) > 0:
                await asyncio.sleep(wait)
            if self._local.ready_in(chat_id) == 0:  # no 429 pause began while we waited
                self._local.in_flight += 1
                return None

    async def outbox_turn(self) -> None:
        """The outbox sender of this process asks first: while the replies pace alone (Redis
        was away, the local line has not drained), a notification takes a place in that line
        and honours its pause, or the two would spend the budget twice."""
        now = time.monotonic()
        if now >= self._redis_back_at and self._local.tat <= now:
            return
        while (wait := self._local.ready_in(None)) > 0:
            await asyncio.sleep(wait)
        await asyncio.sleep(self._local.reserve())

    async def _share_pause(self) -> None:
        """A 429 pause this process saw while Redis was away: every sender must know it, and
        a pause lost with a restarted Redis still holds here."""
        left = self._local.ready_in(None)
        if left > 0:
            await self.limiter.pause(left)

    async def _done(self, ticket: str | None, chat_id: int | None) -> None:
        self._local.done(chat_id)
        if ticket is None:
            return
        try:
            await self.limiter.done(ticket, chat_id)
        except (RedisError, OSError) as exc:  # the ticket then counts as in flight until it expires
            log.warning("send budget: limiter not told of an answer: %s", exc)

    async def _pause(self, seconds: float) -> None:
        self._local.pause(seconds)
        try:
            await self.limiter.pause(seconds)
        except (RedisError, OSError) as exc:
            log.warning("send budget: 429 pause kept in this process only: %s", exc)

    async def _turn(self, chat_id: int | None, started: float, deadline: float, edit: _Edit) -> str:
        """Wait for the chat and a slot of the budget; the admitted ticket."""
        ticket = uuid.uuid4().hex
        while True:
            if chat_id is not None:
                wait = await self.limiter.chat_free_in(chat_id)
                if wait > 0:
                    await self._wait(wait, started, deadline, edit)
                    continue
            paused, wait = await self.limiter.reserve()
            await self._wait(wait, started, deadline, edit)
            if paused:
                continue
            if self._local.ready_in(None) > 0:  # a pause Redis lost (restarted) while we slept
                await self._share_pause()
                continue
            # Chat and window in the same round trip as the grant: the send follows at once.
            while (admitted := await self.limiter.admit(ticket, chat_id))[0] == WINDOW:
                await asyncio.sleep(admitted[1])
            code, wait = admitted
            if code == ADMITTED:
                return ticket
            # A 429 pause began, or the outbox wrote to this chat, while we waited: the slot is void.
            await self._wait(wait, started, deadline, edit)

    async def _wait(self, seconds: float, started: float, deadline: float, edit: _Edit) -> None:
        if seconds <= 0:
            return
        now = time.monotonic()
        if now + seconds > deadline:
            self.metrics.inc("telegram_retry_after_total", outcome="gave_up")
            raise TelegramRetryAfter(
                edit.method, "Too Many Requests: the send budget is exhausted", round(seconds)
            )
        if now + seconds - started > ANSWER_PRESS_AFTER:
            await answer_press_now()
        await asyncio.sleep(seconds)


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()
