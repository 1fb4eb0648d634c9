"""The outbox's send limits, shared by every bot process through Redis.

Telegram counts messages when they *arrive*, in a sliding second; we only know
when we sent one (it cannot arrive earlier) and when its answer came back (it
cannot arrive later). So a message may go out only when both hold:

- **Window**: fewer than `limit` sends finished within the last second, or are
  still in flight. A send stays in the window from its grant (scored "in flight")
  until one second after its answer, so any `limit + 1` consecutive arrivals are
  more than a second apart whatever the latency did. A crashed sender's
  in-flight entry expires after `INFLIGHT_US`.
- **Pace**: a GCRA slot every `1/rate` seconds (one number, the theoretical
  arrival time of the next message), so sends are spread over the second
  instead of leaving in bursts. A waiter may take its slot `EARLY_US` early, so
  it does not drift later by its wake-up latency each time.

A 429 sets a pause key for `retry_after`: nobody is granted anything while it lives.

Per chat the same idea with one key: set "in flight" at the grant, then to
live one chat interval from the answer.

Every script reads Redis' own clock (`TIME`), so all processes share one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid

from redis.asyncio import Redis

from orbit import keys

EARLY_US = 5_000  # how early a waiter may take its pace slot (absorbs asyncio wake-up latency)
INFLIGHT_US = 30_000_000  # an unanswered send counts as in flight this long (well above the send timeout)
RECHECK_US = 2_000  # everything in the window is still in flight: ask again soon
KEY_TTL_MS = 60_000  # idle limiter keys vanish

# KEYS: pace, pause, window.
# ARGV: µs per message, early µs, window limit, ticket, in-flight µs, key TTL ms, recheck µs.
# Returns 0 when granted (the ticket is now in the window), else µs to wait before asking again.
_SLOT = """
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused * 1000 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 1000000)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
    local oldest = tonumber(redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2])
    if oldest > now then return tonumber(ARGV[7]) end
    return oldest + 1000000 - now + 1
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local early = tonumber(ARGV[2])
if tat - early > now then return tat - early - now end
if tat < now then tat = now end
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[1])), 'PX', ARGV[6])
redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[5])), ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return 0
"""

# KEYS: window, chat (or none). ARGV: ticket, chat interval ms.
_DONE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now), ARGV[1])
if #KEYS > 1 then redis.call('SET', KEYS[2], 'sent', 'PX', ARGV[2]) end
return 0
"""

# KEYS: chat. ARGV: in-flight ms, chat interval ms. Returns 0 when granted, else ms to wait.
_CHAT = """
if redis.call('SET', KEYS[1], 'inflight', 'NX', 'PX', ARGV[1]) then return 0 end
if redis.call('GET', KEYS[1]) == 'inflight' then return tonumber(ARGV[2]) end
local left = redis.call('PTTL', KEYS[1])
if left < 1 then return 1 end
return left
"""

# KEYS: pause. ARGV: ms. One round trip: the pause must be in place before the next grant.
_PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 0
"""


class SendLimiter:
    def __init__(self, redis: Redis, rate_per_second: float, chat_interval: float = 1.0) -> None:
        if rate_per_second <= 0:
            raise ValueError("the outbox rate must be positive")
        self.redis = redis
        self.interval_us = round(1_000_000 / rate_per_second)
        self.window_limit = max(1, math.floor(rate_per_second))
        self.chat_interval_ms = math.ceil(chat_interval * 1000)
        self._slot = redis.register_script(_SLOT)
        self._done = redis.register_script(_DONE)
        self._chat = redis.register_script(_CHAT)
        self._pause = redis.register_script(_PAUSE)

    async def try_slot(self, ticket: str) -> float:
        """Try to put `ticket` in flight: 0.0 when granted, else the seconds to wait first."""
        wait_us = await self._slot(
            keys=[keys.OUTBOX_RATE, keys.OUTBOX_PAUSE, keys.OUTBOX_WINDOW],
            args=[self.interval_us, EARLY_US, self.window_limit, ticket, INFLIGHT_US, KEY_TTL_MS, RECHECK_US],
        )
        return int(wait_us) / 1_000_000

    async def slot(self, stopping: asyncio.Event) -> str | None:
        """Wait for a global grant; its ticket, or None if `stopping` was set first.
        Every ticket must end with `done` (a send happened) or `release` (none did)."""
        ticket = uuid.uuid4().hex
        while not stopping.is_set():
            wait = await self.try_slot(ticket)
            if wait == 0:
                return ticket
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=wait)
        return None

    async def take_chat(self, chat_id: int) -> float:
        """Reserve the chat: 0.0 when free, else seconds until it may be asked again."""
        left_ms = await self._chat(
            keys=[keys.outbox_chat(chat_id)], args=[INFLIGHT_US // 1000, self.chat_interval_ms]
        )
        return int(left_ms) / 1000

    async def done(self, ticket: str, chat_id: int | None) -> None:
        """The send's answer came back (whatever it was): start its second in the window
        and the chat's interval from now."""
        chat_keys = [keys.outbox_chat(chat_id)] if chat_id is not None else []
        await self._done(keys=[keys.OUTBOX_WINDOW, *chat_keys], args=[ticket, self.chat_interval_ms])

    async def release(self, ticket: str) -> None:
        """Nothing was sent on this ticket (no row, or its chat was busy)."""
        await self.redis.zrem(keys.OUTBOX_WINDOW, ticket)

    async def pause(self, seconds: float) -> None:
        """Telegram said 429: nobody sends for `seconds` (only ever extended, never shortened)."""
        await self._pause(keys=[keys.OUTBOX_PAUSE], args=[max(1, math.ceil(seconds * 1000))])
