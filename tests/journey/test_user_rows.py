"""The user middleware's row loader: concurrent updates share one query."""

from __future__ import annotations

import asyncio

import asyncpg
from asyncpg.connection import LoggedQuery

from orbit.users.loader import UserRows
from orbit.users.registration import register


async def _counted_pool(database_url: str, statements: list[str]) -> asyncpg.Pool:
    """A second pool on the test database whose connections log every read of `users`
    (asyncpg's own introspection and reset queries left out)."""

    def log(query: LoggedQuery) -> None:
        if "FROM users" in query.query:
            statements.append(query.query)

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(log)

    return await asyncpg.create_pool(database_url, min_size=1, max_size=4, init=log_queries)


async def test_concurrent_reads_share_one_query_each_getting_its_row(
    db: asyncpg.Pool, database_url: str
) -> None:
    for user_id, language in ((1, "en"), (2, "ru"), (3, "en")):
        await register(db, user_id, username=None, first_name="U", language_code=language)
    statements: list[str] = []
    pool = await _counted_pool(database_url, statements)
    try:
        rows = UserRows(pool)
        asked = [1, 2, 3, 2, 404]  # a repeated id (two updates of one user) and an unknown one
        got = await asyncio.gather(*(rows.get(user_id) for user_id in asked))
        assert [row.id if row else None for row in got] == [1, 2, 3, 2, None]
        assert got[1] is not None and got[1].language == "ru"
        assert len(statements) == 1 and "ANY" in statements[0]

        statements.clear()  # a lone read is one query too, and sees the row as it is now
        await db.execute("UPDATE users SET language = 'en' WHERE id = 2")
        alone = await rows.get(2)
        assert alone is not None and alone.language == "en" and len(statements) == 1
    finally:
        await pool.close()


async def test_a_large_turn_is_split_into_batches(db: asyncpg.Pool, database_url: str) -> None:
    statements: list[str] = []
    pool = await _counted_pool(database_url, statements)
    try:
        rows = UserRows(pool, max_batch=10)
        got = await asyncio.gather(*(rows.get(user_id) for user_id in range(25)))
        assert got == [None] * 25 and len(statements) == 3
    finally:
        await pool.close()


async def test_a_failed_query_fails_every_waiter_of_its_batch(database_url: str) -> None:
    statements: list[str] = []
    pool = await _counted_pool(database_url, statements)
    await pool.close()  # every acquire now fails
    rows = UserRows(pool)
    results = await asyncio.gather(rows.get(1), rows.get(2), return_exceptions=True)
    assert all(isinstance(r, asyncpg.InterfaceError) for r in results), results
