"""The pressing user's row, read for concurrent updates in one query.

Under load many updates reach the user middleware in the same turn of the event
loop. A DataLoader (aiodataloader) collects their ids and the rows come back
from one `id = ANY($1)` statement, so concurrent presses share one Postgres
round trip and the client's CPU for it. A lone update still costs one query,
sent on the loop's next turn. Nothing is cached across batches: every update
sees the row as it is now.
"""

from __future__ import annotations

import asyncpg
from aiodataloader import DataLoader

from orbit.users import queries
from orbit.users.queries import UserRow

MAX_BATCH = 256  # ids per statement; a larger turn of the loop is split


class UserRows:
    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = MAX_BATCH) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self._loader: DataLoader[int, UserRow | None] | None = None

    async def get(self, user_id: int) -> UserRow | None:
        if self._loader is None:  # built in the running loop, which DataLoader binds to
            self._loader = DataLoader(self._load, cache=False, max_batch_size=self.max_batch)
        return await self._loader.load(user_id)

    async def _load(self, user_ids: list[int]) -> list[UserRow | None]:
        rows = await queries.get_users(self.pool, user_ids)
        return [rows.get(user_id) for user_id in user_ids]
