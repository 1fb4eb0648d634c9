"""Keys one script or MULTI/EXEC touches share a Redis Cluster slot (orbit/keys.py), and
the rate limiter sends a batch per slot when its client is a cluster client."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram.fsm.storage.base import StorageKey
from redis.asyncio import Redis
from redis.crc import key_slot

from orbit import keys
from orbit.bot.fsm_keys import UserTaggedKeys
from orbit.ratelimit import Limit, RateLimiter


def slots(*names: str) -> set[int]:
    return {key_slot(name.encode()) for name in names}


def test_each_scripts_keys_share_a_slot() -> None:
    # The send budget's scripts (orbit/outbox/limiter.py): pace, pause, window, share, a chat.
    budget = (keys.OUTBOX_RATE, keys.OUTBOX_PAUSE, keys.OUTBOX_WINDOW, keys.SEND_NOTIFY_SHARE)
    assert len(slots(*budget, keys.outbox_chat(1), keys.outbox_chat(987654321))) == 1
    # The balancer's MULTI/EXEC (orbit/balancer/refresh.py publish).
    balancer = (keys.BALANCER_SCORES, keys.BALANCER_REFRESHED_AT)
    assert len(slots(*balancer, keys.balancer_instance("s001"), keys.balancer_instance("p2"))) == 1
    # `orbit status`'s MGET of every heartbeat.
    assert len(slots(*(keys.heartbeat(name) for name in keys.WORKERS))) == 1
    # The throttling script: a user's buckets and FSM state key, whatever the user.
    for user in (1, 42, 10**12):
        state = UserTaggedKeys().build(StorageKey(bot_id=7, chat_id=user, user_id=user), "state")
        assert len(slots(state, keys.rate_limit(user, "start"), keys.rate_limit(user, "default"))) == 1
    assert len(slots(keys.rate_limit(1, "start"), keys.rate_limit(2, "start"))) == 2  # users spread out


class _CountingRedis(Redis):
    sent = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent += 1
        return await super().execute_command(*args, **options)


async def test_a_batch_goes_out_per_slot_with_each_hit_its_decision(redis: Redis, redis_url: str) -> None:
    client = _CountingRedis.from_url(redis_url, decode_responses=True)
    try:
        limiter = RateLimiter(client, {"default": Limit(interval=5.0)})
        limiter._per_slot = True  # as with a RedisCluster client; one server serves every slot here
        await limiter.hit(99, "default")  # loads the script
        users = [1, 2, 3, 1, 2]
        for user in (1, 2):
            await client.set(UserTaggedKeys().build(StorageKey(7, user, user), "state"), f"S{user}")
        client.sent = 0
        decisions = await asyncio.gather(
            *(
                limiter.hit(u, "default", also_get=UserTaggedKeys().build(StorageKey(7, u, u), "state"))
                for u in users
            )
        )
        assert client.sent == 3  # one call per user's slot
        assert [d.allowed for d in decisions] == [True, True, True, False, False]
        assert [d.extra for d in decisions] == ["S1", "S2", None, "S1", "S2"]
    finally:
        await client.aclose()
