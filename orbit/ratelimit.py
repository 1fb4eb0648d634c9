"""Per-user, per-action token buckets in Redis, taken by one Lua script (one round
trip for all the hits made in one turn of the event loop).

A bucket `rl:{<user>}:{action}` (the user's hash tag: orbit/keys.py) holds `burst`
tokens and regains one every `interval` seconds; a hit takes one or is refused with the time until the next.
The script reads Redis' own clock (`TIME`), so every bot process agrees on it,
and always sets a TTL (the time a bucket takes to refill), so idle buckets
vanish by themselves. It can also GET one more key in the same round trip: the
bot uses that to read the update's FSM state along with the rate limit.
"""

from __future__ import annotations

import asyncio
import math
from typing import NamedTuple

import msgspec
from aiodataloader import DataLoader
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from orbit import keys


class Limit(msgspec.Struct, frozen=True):
    interval: float  # seconds per token
    burst: int = 1

    @property
    def ttl_ms(self) -> int:
        return math.ceil(self.burst * self.interval * 1000) + 1000


# Action names are what handlers put in their `rate` flag. Navigation may burst
# (back and forth between two screens is quick) but sustains 1 per 0.8 s. Every
# action that makes an outside service work has a budget of its own
# (docs/RELIABILITY.md, access): a Marzban panel (config_create, config_delete,
# panel_read: the usage a config's own screen reads live; the list shows the stored
# one and asks no panel), the CPU (qr), a payment API
# (payment: TON, Stars and Crypto Pay invoices and checks). Daily and standing caps
# where a rate is not enough live with the business rules (CONFIGS_PER_DAY,
# MAX_PENDING_PAYMENTS).
LIMITS: dict[str, Limit] = {
    "start": Limit(interval=3.0),
    "payment": Limit(interval=6.0),
    "purchase": Limit(interval=2.5),
    "config_create": Limit(interval=60.0, burst=3),
    "config_delete": Limit(interval=20.0, burst=3),
    "panel_read": Limit(interval=3.0, burst=5),
    "qr": Limit(interval=10.0, burst=3),
    "default": Limit(interval=0.8, burst=3),
    # Not a handler's flag: the fallback takes a token before it answers a message it
    # does not understand, so a flood gets one hint to /menu, not one per message.
    "hint": Limit(interval=30.0),
}
DEFAULT_ACTION = "default"


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after: float  # seconds until a token is back (0 when allowed)
    first_refusal: bool  # refused, and the previous hit was not: warn once, then stay quiet
    extra: str | None = None  # the value of the extra key, if one was asked for


# Hits of concurrent updates go in one call (see RateLimiter): for hit i (from 0),
# KEYS[2i+1] is its bucket and KEYS[2i+2] a key to GET in the same round trip;
# ARGV[4i+1..4i+4]: milliseconds per token, burst, TTL in milliseconds, 1 if that
# key is to be read. Returns {allowed, retry_after_ms, first_refusal, extra} per hit,
# flattened. Hits run in order, so two hits on one bucket in a batch both count.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {}
for i = 0, #KEYS / 2 - 1 do
    local key = KEYS[2 * i + 1]
    local interval = tonumber(ARGV[4 * i + 1])
    local burst = tonumber(ARGV[4 * i + 2])
    local bucket = redis.call('HMGET', key, 'tokens', 'ts', 'refused')
    local tokens = tonumber(bucket[1])
    local ts = tonumber(bucket[2])
    if tokens == nil or ts == nil then
        tokens = burst
        ts = now
    end
    tokens = math.min(burst, tokens + math.max(0, now - ts) / interval)
    local allowed, retry, first = 0, 0, 0
    if tokens >= 1 then
        tokens = tokens - 1
        allowed = 1
        redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now, 'refused', 0)
    else
        retry = math.ceil((1 - tokens) * interval)
        if bucket[3] ~= '1' then first = 1 end
        redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now, 'refused', 1)
    end
    redis.call('PEXPIRE', key, ARGV[4 * i + 3])
    local extra = false
    if ARGV[4 * i + 4] == '1' then extra = redis.call('GET', KEYS[2 * i + 2]) end
    out[4 * i + 1] = allowed
    out[4 * i + 2] = retry
    out[4 * i + 3] = first
    out[4 * i + 4] = extra
end
return out
"""

MAX_BATCH = 256  # hits per script call; a larger turn of the event loop is split


class _Hit(NamedTuple):
    bucket: str
    limit: Limit
    also_get: str | None


class RateLimiter:
    """Build one per process (it registers the script); share it across updates.

    Hits made in the same turn of the event loop (concurrent updates) are sent as
    one script call by a DataLoader (aiodataloader): under load, updates share a
    Redis round trip and the client's CPU for it; a lone hit is one call, sent on
    the loop's next turn. Each hit still gets its own Decision.
    """

    def __init__(
        self,
        redis: Redis,
        limits: dict[str, Limit] | None = None,
        *,
        scale: float = 1.0,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.limits = {
            action: Limit(interval=limit.interval * scale, burst=limit.burst)
            for action, limit in (LIMITS if limits is None else limits).items()
        }
        if DEFAULT_ACTION not in self.limits:
            raise ValueError(f"limits need a {DEFAULT_ACTION!r} entry")
        # EVALSHA, falling back to EVAL (one extra round trip) only when Redis lost the script.
        self._script = redis.register_script(_SCRIPT)
        # A script's keys must share a slot on Redis Cluster (not supported, see orbit/keys.py):
        # a bucket and its extra key carry the user's tag, so a batch goes out per slot there.
        self._per_slot = isinstance(redis, RedisCluster)
        self.max_batch = max_batch
        self._loader: DataLoader[_Hit, Decision] | None = None

    def limit(self, action: str) -> Limit:
        return self.limits.get(action) or self.limits[DEFAULT_ACTION]

    async def hit(self, user_id: int, action: str, *, also_get: str | None = None) -> Decision:
        """Take a token from the user's bucket for `action`; raises Redis errors to the caller."""
        if self._loader is None:  # built in the running loop, which DataLoader binds to
            self._loader = DataLoader(self._hit_many, cache=False, max_batch_size=self.max_batch)
        bucket = keys.rate_limit(user_id, action if action in self.limits else DEFAULT_ACTION)
        return await self._loader.load(_Hit(bucket, self.limit(action), also_get))

    async def _hit_many(self, hits: list[_Hit]) -> list[Decision]:
        if not self._per_slot:
            return await self._call(hits)
        by_slot: dict[int, list[int]] = {}
        for i, hit in enumerate(hits):
            by_slot.setdefault(key_slot(hit.bucket.encode()), []).append(i)
        groups = list(by_slot.values())
        answers = await asyncio.gather(*(self._call([hits[i] for i in group]) for group in groups))
        decisions: list[Decision | None] = [None] * len(hits)
        for group, answer in zip(groups, answers, strict=True):
            for i, decision in zip(group, answer, strict=True):
                decisions[i] = decision
        return [d for d in decisions if d is not None]

    async def _call(self, hits: list[_Hit]) -> list[Decision]:
        script_keys: list[str] = []
        args: list[int] = []
        for hit in hits:
            interval_ms = max(1, round(hit.limit.interval * 1000))
            script_keys += (hit.bucket, hit.also_get or hit.bucket)
            args += (interval_ms, hit.limit.burst, hit.limit.ttl_ms, int(hit.also_get is not None))
        out = await self._script(keys=script_keys, args=args)
        decisions = []
        for i in range(0, len(out), 4):
            allowed, retry_ms, first, extra = out[i : i + 4]
            if isinstance(extra, bytes):
                extra = extra.decode()
            decisions.append(
                Decision(
                    allowed=bool(allowed),
                    retry_after=int(retry_ms) / 1000,
                    first_refusal=bool(first),
                    extra=extra,
                )
            )
        return decisions
