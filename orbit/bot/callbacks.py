"""Callback data shared across routers (each router keeps its private ones)."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery


class MenuCb(CallbackData, prefix="m"):
    """Navigate to a top-level screen: main, sub, buy, configs, balance, ref, promo,
    settings, help."""

    screen: str


class TrialCb(CallbackData, prefix="trial"):
    """Start the free trial."""


class PlanCb(CallbackData, prefix="plan"):
    """Show the confirmation screen of a plan."""

    plan_id: str


class BuyCb(CallbackData, prefix="buy"):
    """Confirm a purchase: the price shown and a token that makes a double press harmless."""

    plan_id: str
    price: int  # kopecks, as shown on the confirmation screen
    token: str


class AutoRenewCb(CallbackData, prefix="renew"):
    on: bool  # the value to set (not a toggle), so a double press lands on it


class LangCb(CallbackData, prefix="lang"):
    code: str


class GateCb(CallbackData, prefix="gate"):
    """Check the channel membership again, then go on with `then`: "trial" or a plan id."""

    then: str


class Pressed(Filter):
    """This one button: its packed data compared as a string.

    For the hottest handlers (menu navigation): `MenuCb.filter(F.screen == ...)`
    unpacks the data into a model and resolves a magic filter for every handler
    it is checked against, and a press may be checked against several.
    """

    def __init__(self, button: CallbackData) -> None:
        self.data = button.pack()

    async def __call__(self, callback: CallbackQuery) -> bool:
        return callback.data == self.data
