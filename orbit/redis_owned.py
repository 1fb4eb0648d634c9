"""Redis keys one owner holds (a lease, a chore's claim, a panel's token lock, a cached
token): only the holder's value may drop them, checked and deleted in one script."""

from __future__ import annotations

from redis.asyncio import Redis

_DELETE_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


async def delete_if_owner(redis: Redis, key: str, owner: str) -> bool:
    """Delete `key` if it still holds `owner`; whether it did."""
    return bool(await redis.eval(_DELETE_IF_OWNER, 1, key, owner))
