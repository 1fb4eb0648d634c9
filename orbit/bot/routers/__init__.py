"""All routers, in the order updates try them; `fallback` must stay last."""

from __future__ import annotations

from aiogram import Router

from orbit.bot.routers import (
    admin,
    balance,
    configs,
    fallback,
    menu,
    plans,
    promo,
    stars,
    start,
    subscription,
)


def get_routers() -> list[Router]:
    return [
        # Menu buttons are the hottest updates: every router before them costs each press.
        # (Banned users are refused before routing: orbit/bot/middlewares/banned.py.)
        menu.router,
        subscription.router,
        plans.router,
        start.router,  # before configs/promo: /start and /menu leave any text-input flow
        configs.router,
        promo.router,
        balance.router,
        stars.router,
        admin.router,
        fallback.router,
    ]
