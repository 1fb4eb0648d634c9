"""The Redis token bucket and how updates map to rate-limit actions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import Update
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import keys
from orbit.bot.middlewares.throttling import RateActions
from orbit.ratelimit import LIMITS, Limit, RateLimiter


async def test_a_bucket_refuses_when_empty_and_refills(redis: Redis) -> None:
    limiter = RateLimiter(redis, {"default": Limit(interval=0.2, burst=2)})
    first, second, third = [await limiter.hit(7, "default") for _ in range(3)]
    assert first.allowed and second.allowed
    assert not third.allowed and third.first_refusal and 0 < third.retry_after <= 0.2
    fourth = await limiter.hit(7, "default")
    assert not fourth.allowed and not fourth.first_refusal  # warned once already
    await asyncio.sleep(0.25)
    again = await limiter.hit(7, "default")
    assert again.allowed and not again.first_refusal
    refused = await limiter.hit(7, "default")
    refused = refused if not refused.allowed else await limiter.hit(7, "default")
    assert not refused.allowed and refused.first_refusal  # a new flood warns again


async def test_buckets_are_per_user_and_action_and_always_expire(redis: Redis) -> None:
    limiter = RateLimiter(redis, {"default": Limit(interval=5.0), "start": Limit(interval=3.0)})
    assert (await limiter.hit(1, "start")).allowed
    assert not (await limiter.hit(1, "start")).allowed
    assert (await limiter.hit(2, "start")).allowed  # another user
    assert (await limiter.hit(1, "default")).allowed  # another action
    assert (await limiter.hit(1, "no-such-action")).allowed is False  # counts as default
    for key in (keys.rate_limit(1, "start"), keys.rate_limit(2, "start"), keys.rate_limit(1, "default")):
        ttl = await redis.pttl(key)
        assert 0 < ttl <= 6_000, (key, ttl)
    assert await redis.exists(keys.rate_limit(1, "no-such-action")) == 0


async def test_the_extra_key_is_read_in_the_same_call(redis: Redis) -> None:
    limiter = RateLimiter(redis)
    await redis.set("fsm:state-key", "PromoForm:code")
    decision = await limiter.hit(1, "default", also_get="fsm:state-key")
    assert decision.allowed and decision.extra == "PromoForm:code"
    assert (await limiter.hit(1, "default", also_get="fsm:missing")).extra is None


class _CountingRedis(Redis):
    """A real client that counts the commands it sends (each one round trip)."""

    sent = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent += 1
        return await super().execute_command(*args, **options)


async def test_concurrent_hits_share_one_call_each_with_its_decision(redis: Redis, redis_url: str) -> None:
    client = _CountingRedis.from_url(redis_url, decode_responses=True)  # `redis` emptied the db
    try:
        await client.set("fsm:2", "PromoForm:code")
        limiter = RateLimiter(client, {"default": Limit(interval=5.0), "start": Limit(interval=3.0)})
        await limiter.hit(99, "default")  # loads the script (EVALSHA, then EVAL once)
        client.sent = 0
        first, second, other, start, with_state = await asyncio.gather(
            limiter.hit(1, "default"),
            limiter.hit(1, "default"),  # the same bucket in the same call: it counts twice
            limiter.hit(2, "default"),
            limiter.hit(1, "start"),
            limiter.hit(2, "start", also_get="fsm:2"),
        )
        assert client.sent == 1
        assert first.allowed and first.extra is None
        assert not second.allowed and second.first_refusal and second.retry_after > 4
        assert other.allowed and start.allowed
        assert with_state.allowed and with_state.extra == "PromoForm:code"
        assert not (await limiter.hit(1, "start")).allowed  # later calls see what the batch did
    finally:
        await client.aclose()


async def test_a_large_turn_is_split_into_calls(redis: Redis, redis_url: str) -> None:
    client = _CountingRedis.from_url(redis_url, decode_responses=True)
    try:
        limiter = RateLimiter(client, max_batch=10)
        await limiter.hit(99, "default")
        client.sent = 0
        decisions = await asyncio.gather(*(limiter.hit(user, "default") for user in range(25)))
        assert all(d.allowed for d in decisions) and client.sent == 3
    finally:
        await client.aclose()


async def test_scale_shrinks_every_interval(redis: Redis) -> None:
    limiter = RateLimiter(redis, scale=0.001)
    assert limiter.limit("start").interval == pytest.approx(LIMITS["start"].interval / 1000)
    assert (await limiter.hit(1, "start")).allowed
    await asyncio.sleep(0.01)
    assert (await limiter.hit(1, "start")).allowed


async def test_an_unreachable_redis_raises_for_the_middleware_to_catch() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    try:
        limiter = RateLimiter(dead)
        with pytest.raises(RedisError):
            await limiter.hit(1, "default")
        # Every hit of a batch that failed gets the error.
        both = limiter.hit(1, "default"), limiter.hit(2, "start")
        results = await asyncio.gather(*both, return_exceptions=True)
        assert all(isinstance(r, RedisError) for r in results), results
    finally:
        await dead.aclose()


class _BuyCb(CallbackData, prefix="tbuy"):
    plan: str


class _NavCb(CallbackData, prefix="tnav"):
    screen: str


def _update(**fields: object) -> Update:
    return Update.model_validate({"update_id": 1, **fields})


def _message(text: str, **extra: object) -> dict[str, object]:
    return {
        "message_id": 1,
        "date": 0,
        "chat": {"id": 5, "type": "private"},
        "from": {"id": 5, "is_bot": False, "first_name": "U"},
        "text": text,
        **extra,
    }


def _callback(data: str) -> dict[str, object]:
    return {
        "id": "q",
        "from": {"id": 5, "is_bot": False, "first_name": "U"},
        "chat_instance": "c",
        "data": data,
    }


def test_actions_come_from_the_handlers_flags() -> None:
    router = Router()

    @router.message(CommandStart(), flags={"rate": "start"})
    async def start() -> None: ...

    @router.message(Command("pay", "topup"), flags={"rate": "payment"})
    async def pay() -> None: ...

    @router.callback_query(_BuyCb.filter(), flags={"rate": "purchase"})
    async def buy() -> None: ...

    @router.callback_query(_NavCb.filter())
    async def nav() -> None: ...

    actions = RateActions.scan(router, set(LIMITS))
    assert actions.classify(_update(message=_message("/start ref_5"))) == "start"
    assert actions.classify(_update(message=_message("/START@orbit_bot"))) == "start"
    assert actions.classify(_update(message=_message("/topup 100"))) == "payment"
    assert actions.classify(_update(message=_message("/help"))) == "default"
    assert actions.classify(_update(message=_message("hello"))) == "default"
    assert actions.classify(_update(message=_message("/"))) == "default"
    assert actions.classify(_update(callback_query=_callback("tbuy:1m"))) == "purchase"
    assert actions.classify(_update(callback_query=_callback("tnav:main"))) == "default"
    assert actions.classify(_update(callback_query=_callback("forged garbage"))) == "default"
    # Telegram's own payment messages are never limited.
    paid = _message("", successful_payment={
        "currency": "XTR", "total_amount": 5, "invoice_payload": "p",
        "telegram_payment_charge_id": "c", "provider_payment_charge_id": "",
    })
    del paid["text"]
    assert actions.classify(_update(message=paid)) is None
    assert actions.classify(_update(pre_checkout_query={
        "id": "p", "from": {"id": 5, "is_bot": False, "first_name": "U"},
        "currency": "XTR", "total_amount": 5, "invoice_payload": "p",
    })) is None


def test_unknown_or_conflicting_actions_fail_at_start_up() -> None:
    typo = Router()

    @typo.callback_query(_BuyCb.filter(), flags={"rate": "purchse"})
    async def buy() -> None: ...

    with pytest.raises(ValueError, match="unknown rate action"):
        RateActions.scan(typo, set(LIMITS))

    twice = Router()

    @twice.callback_query(_BuyCb.filter(), flags={"rate": "purchase"})
    async def buy_a() -> None: ...

    @twice.callback_query(_BuyCb.filter(), flags={"rate": "payment"})
    async def buy_b() -> None: ...

    with pytest.raises(ValueError, match="two rate actions"):
        RateActions.scan(twice, set(LIMITS))


def test_a_rate_flag_the_scan_cannot_read_off_the_update_fails_at_start_up() -> None:
    # Actions are decided before routing, from the update alone: a flag on a handler
    # matched some other way (here a filter on the button's whole data) would be ignored.
    pressed = Router()

    async def is_buy_button(callback: object) -> bool:
        return True

    @pressed.callback_query(is_buy_button, flags={"rate": "purchase"})
    async def buy() -> None: ...

    with pytest.raises(ValueError, match="handler buy: a 'rate' flag needs"):
        RateActions.scan(pressed, set(LIMITS))

    text = Router()

    @text.message(flags={"rate": "payment"})
    async def amount() -> None: ...

    with pytest.raises(ValueError, match="handler amount"):
        RateActions.scan(text, set(LIMITS))
