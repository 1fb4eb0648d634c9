"""What the bot's top-up screens need besides the methods themselves: which
methods are configured, the preset amounts, and the "I paid" poke for TON."""

from __future__ import annotations

import logging

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orbit import clock, keys
from orbit.money import rub_to_kopecks
from orbit.payments import service
from orbit.payments.queries import PaymentRow
from orbit.settings import Settings

log = logging.getLogger(__name__)

PRESETS_RUB = (100, 300, 500, 1000, 2000)


def available_methods(settings: Settings) -> tuple[str, ...]:
    """The methods to offer, in screen order: TON with a wallet address, Stars
    always, CryptoBot with a token."""
    methods: list[str] = []
    if settings.ton_address:
        methods.append("ton")
    methods.append("stars")
    if settings.cryptobot_token:
        methods.append("cryptobot")
    return tuple(methods)


def preset_amounts(settings: Settings) -> list[int]:
    """Preset top-ups in kopecks, those within the limits (the smallest allowed first)."""
    low, high = service.topup_limits(settings)
    amounts = {low} | {rub_to_kopecks(r) for r in PRESETS_RUB if low <= rub_to_kopecks(r) <= high}
    return sorted(amounts)[:5]


async def shown_status(pool: asyncpg.Pool, payment: PaymentRow) -> str:
    """The payment's status as its screen shows it: a pending payment whose window has
    passed (on the one clock) is expired, before the janitor has marked it so."""
    if payment.status == "pending" and payment.expires_at <= await clock.now(pool):
        return "expired"
    return payment.status


async def poke_ton_watcher(pool: asyncpg.Pool, redis: Redis, user_id: int, payment_id: int) -> PaymentRow:
    """The user says they paid: wake the watcher now instead of at its next poll.
    Raises `service.PaymentNotFound` unless it is this user's TON payment."""
    payment = await service.get_payment(pool, payment_id)
    if payment is None or payment.user_id != user_id or payment.method != "ton":
        raise service.PaymentNotFound(payment_id)
    if payment.status == "pending":
        try:
            await redis.publish(keys.channel(redis, keys.TON_POKE_CHANNEL), str(payment_id))
        except (RedisError, OSError) as exc:  # the watcher's timer finds the transfer anyway
            log.warning("TON watcher poke not published: %s", exc)
    return payment
