"""`choose_instance`: one Redis round trip, never HTTP; a fallback when the
balancer's scores are missing or stale."""

from __future__ import annotations

import logging
import time

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from orbit import keys
from orbit.marzban import instances
from orbit.marzban.errors import NoInstanceAvailable
from orbit.marzban.instances import Instance
from orbit.marzban.placement import STALE_AFTER, choose_instance
from orbit.settings import Settings


async def _register(db: asyncpg.Pool, *specs: tuple[str, int, bool]) -> None:
    for instance_id, priority, active in specs:
        await instances.insert_instance(
            db,
            Instance(
                id=instance_id,
                name=instance_id,
                base_url=f"http://{instance_id}.invalid",
                username="u",
                password="p",
                priority=priority,
                is_active=active,
            ),
        )


async def _publish(redis: Redis, scores: dict[str, float], age: float = 0.0) -> None:
    await redis.zadd(keys.BALANCER_SCORES, scores)
    await redis.set(keys.BALANCER_REFRESHED_AT, repr(time.time() - age))


async def test_lowest_score_wins_in_one_round_trip_without_http(
    db: asyncpg.Pool, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _register(db, ("a", 0, True), ("b", 0, True), ("c", 0, True))
    await _publish(redis, {"a:n1": 30.0, "a:n2": 12.0, "b:n1": 11.0, "c:core": 20.0})
    commands: list[object] = []
    executes: list[int] = []
    original_command = Redis.execute_command
    original_execute = Pipeline.execute

    async def count_command(self: Redis, *args: object, **kw: object) -> object:
        commands.append(args[0])
        return await original_command(self, *args, **kw)

    async def count_execute(self: Pipeline, *args: object, **kw: object) -> object:
        executes.append(len(self.command_stack))
        return await original_execute(self, *args, **kw)

    monkeypatch.setattr(Redis, "execute_command", count_command)
    monkeypatch.setattr(Pipeline, "execute", count_execute)
    assert await choose_instance(redis, db) == "b"
    assert commands == [] and executes == [2]  # one pipelined round trip: ZRANGE + GET
    monkeypatch.undo()
    assert await choose_instance(redis, db, exclude=frozenset({"b"})) == "a"
    assert await choose_instance(redis, db, exclude=frozenset({"a", "b"})) == "c"
    with pytest.raises(NoInstanceAvailable):
        await choose_instance(redis, db, exclude=frozenset({"a", "b", "c"}))


async def test_fresh_but_empty_scores_mean_nothing_is_healthy(
    db: asyncpg.Pool, redis: Redis
) -> None:
    await _register(db, ("a", 0, True))
    await redis.set(keys.BALANCER_REFRESHED_AT, repr(time.time()))
    with pytest.raises(NoInstanceAvailable):
        await choose_instance(redis, db)


async def test_missing_or_stale_scores_fall_back_to_the_top_priority_instance(
    db: asyncpg.Pool, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await _register(db, ("low", 0, True), ("high", 5, True), ("off", 9, False))
    with caplog.at_level(logging.WARNING, logger="orbit.marzban.placement"):
        assert await choose_instance(redis, db) == "high"
    assert "no scores: is the balancer running?" in caplog.text
    caplog.clear()
    await _publish(redis, {"low:n": 1.0}, age=STALE_AFTER + 5)
    with caplog.at_level(logging.WARNING, logger="orbit.marzban.placement"):
        assert await choose_instance(redis, db) == "high"
        assert await choose_instance(redis, db, exclude=frozenset({"high"})) == "low"
    assert "scores are" in caplog.text and "old" in caplog.text
    with pytest.raises(NoInstanceAvailable):
        await choose_instance(redis, db, exclude=frozenset({"high", "low"}))


async def test_unreachable_redis_falls_back_too(db: asyncpg.Pool, settings: Settings) -> None:
    await _register(db, ("only", 0, True))
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert await choose_instance(broken, db) == "only"
    finally:
        await broken.aclose()


async def test_no_instance_at_all(db: asyncpg.Pool, redis: Redis) -> None:
    with pytest.raises(NoInstanceAvailable, match="no active instance"):
        await choose_instance(redis, db)
