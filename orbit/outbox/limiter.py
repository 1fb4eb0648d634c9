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

**One budget, three priorities.** Every message the bot sends goes through here:

- `INTERACTIVE` (a reply to a person who just acted) *reserves* the next pace slot
  (`reserve`: FIFO, no polling: the caller sleeps until its slot), then is
  `admit`ted (pause and window checked, ticket put in flight) when it comes.
- `NOTIFY` (an outbox row) gets a slot at once when nobody has reserved one ahead
  (no backlog), else only `NOTIFY_SHARE` of the budget while the backlog lasts, so
  a payment's notice still moves under a crowd.
- `BROADCAST` gets a slot only when nobody has reserved one ahead: what is left.

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
NOTIFY_SHARE = 0.1  # of the budget, for notifications while replies queue

INTERACTIVE = 0
NOTIFY = 1
BROADCAST = 2

# What `admit` says.
ADMITTED = 0
WINDOW = 1
PAUSED = 2
CHAT_BUSY = 3

# KEYS: pace, pause, window, notify share.
# ARGV: µs per message, early µs, window limit, ticket, in-flight µs, key TTL ms, recheck µs,
#       priority (1 notify, 2 broadcast), ms between notifications taken from a backlog.
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
if tat - early > now then
    -- Replies have reserved the slots ahead: a broadcast waits them out; a
    -- notification may take its small share, pushing every reservation one slot later.
    -- (Within one interval is only the pace itself, not a queue of replies.)
    if tonumber(ARGV[8]) ~= 1 or tat - now <= tonumber(ARGV[1]) + early then return tat - early - now end
    local share = redis.call('PTTL', KEYS[4])
    if share > 0 then return math.min(share * 1000, tat - early - now) end
    redis.call('SET', KEYS[4], '1', 'PX', ARGV[9])
    tat = tat + tonumber(ARGV[1])
    local ttl = math.ceil((tat - now) / 1000) + tonumber(ARGV[6])
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', ttl)
    redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[5])), ARGV[4])
    redis.call('PEXPIRE', KEYS[3], ARGV[6])
    return 0
end
if tat < now then tat = now end
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[1])), 'PX', ARGV[6])
redis.call('ZADD', KEYS[3], string.format('%.0f', now + tonumber(ARGV[5])), ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return 0
"""

# KEYS: pace, pause. ARGV: µs per message, key TTL ms.
# Returns {0, µs until the reserved slot} or {1, µs the pause still lasts} (nothing reserved).
_RESERVE = """
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return {1, paused * 1000} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + tonumber(ARGV[1])
local ttl = math.ceil((after - now) / 1000) + tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', ttl)
return {0, tat - now}
"""

# KEYS: pause, window, chat (or none). ARGV: window limit, ticket, in-flight µs, key TTL ms,
# recheck µs, chat interval ms. A reserved slot has come; one round trip, so the send
# follows at once: {0, 0} the ticket is in flight (and the chat taken); {1, µs} wait for
# the window; {2, µs} a 429 pause (the slot is void: reserve again after it); {3, µs} the
# chat is busy (the slot is void: wait for the chat, then reserve again).
_ADMIT = """
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then return {2, paused * 1000} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 1000000)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then
    local oldest = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])
    if oldest > now then return {1, tonumber(ARGV[5])} end
    return {1, oldest + 1000000 - now + 1}
end
local hold = math.ceil(tonumber(ARGV[3]) / 1000)
if #KEYS > 2 and not redis.call('SET', KEYS[3], 'inflight', 'NX', 'PX', hold) then
    if redis.call('GET', KEYS[3]) == 'inflight' then return {3, tonumber(ARGV[6]) * 1000} end
    return {3, math.max(1, redis.call('PTTL', KEYS[3])) * 1000}
end
redis.call('ZADD', KEYS[2], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {0, 0}
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
        self.notify_gap_ms = max(1, round(1000 / max(rate_per_second * NOTIFY_SHARE, 0.001)))
        self._slot = redis.register_script(_SLOT)
        self._reserve = redis.register_script(_RESERVE)
        self._admit = redis.register_script(_ADMIT)
        self._done = redis.register_script(_DONE)
        self._chat = redis.register_script(_CHAT)
        self._pause = redis.register_script(_PAUSE)

    async def try_slot(self, ticket: str, priority: int = NOTIFY) -> float:
        """Try to put `ticket` in flight: 0.0 when granted, else the seconds to wait first."""
        wait_us = await self._slot(
            keys=[keys.OUTBOX_RATE, keys.OUTBOX_PAUSE, keys.OUTBOX_WINDOW, keys.SEND_NOTIFY_SHARE],
            args=[
                self.interval_us, EARLY_US, self.window_limit, ticket, INFLIGHT_US, KEY_TTL_MS,
                RECHECK_US, priority, self.notify_gap_ms,
            ],
        )
        return int(wait_us) / 1_000_000

    async def reserve(self) -> tuple[bool, float]:
        """An interactive reply takes the next pace slot in line: (False, seconds until it)
        — then `admit` — or (True, seconds a 429 pause still lasts), nothing reserved."""
        paused, wait_us = await self._reserve(
            keys=[keys.OUTBOX_RATE, keys.OUTBOX_PAUSE], args=[self.interval_us, KEY_TTL_MS]
        )
        return bool(paused), int(wait_us) / 1_000_000

    async def admit(self, ticket: str, chat_id: int | None = None) -> tuple[int, float]:
        """A reserved slot has come: (ADMITTED, 0.0) when `ticket` is in flight and the chat
        taken; (WINDOW, s) ask again in s; (PAUSED, s) or (CHAT_BUSY, s): the slot is void,
        reserve again after s."""
        chat_keys = [keys.outbox_chat(chat_id)] if chat_id is not None else []
        code, wait_us = await self._admit(
            keys=[keys.OUTBOX_PAUSE, keys.OUTBOX_WINDOW, *chat_keys],
            args=[self.window_limit, ticket, INFLIGHT_US, KEY_TTL_MS, RECHECK_US, self.chat_interval_ms],
        )
        return int(code), int(wait_us) / 1_000_000

    async def paused_for(self) -> float:
        """Seconds the 429 pause still lasts (0.0 when none)."""
        left = await self.redis.pttl(keys.OUTBOX_PAUSE)
        return max(0, int(left)) / 1000

    async def slot(self, stopping: asyncio.Event, priority: int = NOTIFY) -> str | None:
        """Wait for a global grant; its ticket, or None if `stopping` was set first.
        Every ticket must end with `done` (a send happened) or `release` (none did)."""
        ticket = uuid.uuid4().hex
        while not stopping.is_set():
            wait = await self.try_slot(ticket, priority)
            if wait == 0:
                return ticket
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=wait)
        return None

    async def take_chat(self, chat_id: int, hold: float = INFLIGHT_US / 1_000_000) -> float:
        """Reserve the chat for up to `hold` seconds: 0.0 when free, else seconds until it
        may be asked again."""
        left_ms = await self._chat(
            keys=[keys.outbox_chat(chat_id)], args=[math.ceil(hold * 1000), self.chat_interval_ms]
        )
        return int(left_ms) / 1000

    async def chat_free_in(self, chat_id: int) -> float:
        """Seconds until the chat may be written to (0.0 now), without reserving it."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.outbox_chat(chat_id))
            pipe.pttl(keys.outbox_chat(chat_id))
            state, left = await pipe.execute()
        if state is None:
            return 0.0
        if state in (b"inflight", "inflight"):
            return self.chat_interval_ms / 1000
        return max(0, int(left)) / 1000

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
