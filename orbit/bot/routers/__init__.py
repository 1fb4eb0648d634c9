"""All handlers, in the order updates try them; `fallback` must stay last."""

from __future__ import annotations

from aiogram import Router

from orbit.bot.routers import (
    admin,
    admin_card,
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


def install(dispatcher: Router) -> None:
    # Menu buttons are the hottest updates: their handlers are the dispatcher's own,
    # tried first and one routing level shallower than the rest (see routers/menu.py).
    # (Banned users are refused before routing: orbit/bot/middlewares/banned.py.)
    menu.register(dispatcher)
    dispatcher.include_routers(*get_routers())


def get_routers() -> list[Router]:
    """The routers below the dispatcher's own (menu) handlers."""
    return [
        subscription.router,
        plans.router,
        start.router,  # before configs/promo: /start and /menu leave any text-input flow
        configs.router,
        promo.router,
        balance.router,
        stars.router,
        admin_card.router,  # the user card's actions and the audit trail (admins only)
        admin.router,
        fallback.router,
    ]
