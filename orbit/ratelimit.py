"""Per-user, per-action token buckets in Redis, each hit one Lua script (one round trip).

A bucket `rl:{user}:{action}` holds `burst` tokens and regains one every
`interval` seconds; a hit takes one or is refused with the time until the next.
The script reads Redis' own clock (`TIME`), so every bot process agrees on it,
and always sets a TTL (the time a bucket takes to refill), so idle buckets
vanish by themselves. It can also GET one more key in the same round trip: the
bot uses that to read the update's FSM state along with the rate limit.
"""

from __future__ import annotations

import math

import msgspec
from redis.asyncio import Redis

from orbit import keys


class Limit(msgspec.Struct, frozen=True):
    interval: float  # seconds per token
    burst: int = 1

    @property
    def ttl_ms(self) -> int:
        return math.ceil(self.burst * self.interval * 1000) + 1000


# Action names are what handlers put in their `rate` flag. Navigation may burst
# (back and forth between two screens is quick) but sustains 1 per 0.8 s.
LIMITS: dict[str, Limit] = {
    "start": Limit(interval=3.0),
    "payment": Limit(interval=6.0),
    "purchase": Limit(interval=2.5),
    "default": Limit(interval=0.8, burst=3),
}
DEFAULT_ACTION = "default"


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    retry_after: float  # seconds until a token is back (0 when allowed)
    first_refusal: bool  # refused, and the previous hit was not: warn once, then stay quiet
    extra: str | None = None  # the value of the extra key, if one was asked for


# KEYS[1] bucket, KEYS[2] (optional) a key to GET in the same round trip.
# ARGV[1] milliseconds per token, ARGV[2] burst, ARGV[3] TTL in milliseconds.
# Returns {allowed, retry_after_ms, first_refusal, extra}.
_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'refused')
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
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'refused', 0)
else
    retry = math.ceil((1 - tokens) * interval)
    if bucket[3] ~= '1' then first = 1 end
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'refused', 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local extra = false
if #KEYS > 1 then extra = redis.call('GET', KEYS[2]) end
return {allowed, retry, first, extra}
"""


class RateLimiter:
    """Build one per process (it registers the script); share it across updates."""

    def __init__(
        self, redis: Redis, limits: dict[str, Limit] | None = None, *, scale: float = 1.0
    ) -> None:
        self.limits = {
            action: Limit(interval=limit.interval * scale, burst=limit.burst)
            for action, limit in (LIMITS if limits is None else limits).items()
        }
        if DEFAULT_ACTION not in self.limits:
            raise ValueError(f"limits need a {DEFAULT_ACTION!r} entry")
        # EVALSHA, falling back to EVAL (one extra round trip) only when Redis lost the script.
        self._script = redis.register_script(_SCRIPT)

    def limit(self, action: str) -> Limit:
        return self.limits.get(action) or self.limits[DEFAULT_ACTION]

    async def hit(self, user_id: int, action: str, *, also_get: str | None = None) -> Decision:
        """Take a token from the user's bucket for `action`; raises Redis errors to the caller."""
        limit = self.limit(action)
        bucket = keys.rate_limit(user_id, action if action in self.limits else DEFAULT_ACTION)
        script_keys = [bucket] if also_get is None else [bucket, also_get]
        allowed, retry_ms, first, extra = await self._script(
            keys=script_keys,
            args=[max(1, round(limit.interval * 1000)), limit.burst, limit.ttl_ms],
        )
        if isinstance(extra, bytes):
            extra = extra.decode()
        return Decision(
            allowed=bool(allowed),
            retry_after=int(retry_ms) / 1000,
            first_refusal=bool(first),
            extra=extra,
        )
