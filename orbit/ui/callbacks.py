"""Callback data shared across routers (each router keeps its private ones).

Every button's data derives from `ButtonData`: what a press carries is typed by
the user's client, not by us, so it is checked once, where aiogram unpacks it.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery
from pydantic import field_validator

# Every number a button carries is an id, a count or an amount: never negative, and
# it must fit Postgres' bigint, or asyncpg refuses it deep in a handler's query.
BUTTON_INT_MAX = 2**63 - 1


class ButtonData(CallbackData, prefix="orbit"):
    """The base of every button's data (its own prefix is never packed).

    An integer outside 0..2**63-1 fails validation; aiogram's filter then does not
    match, so a forged press falls through to the "out of date" answer instead of
    reaching a handler.
    """

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        in_range = not isinstance(value, int) or isinstance(value, bool) or 0 <= value <= BUTTON_INT_MAX
        if not in_range:
            raise ValueError(f"{value} is out of range for a button")
        return value


class MenuCb(ButtonData, prefix="m"):
    """Navigate to a top-level screen: main, sub, buy, configs, balance, ref, promo,
    settings, help."""

    screen: str


# The screens a broadcast's button may open (orbit/admin/broadcasts.parse_button).
MENU_SCREENS = ("main", "sub", "buy", "configs", "balance", "ref", "promo", "settings", "help")


def screen_buttons() -> dict[str, str]:
    """Each menu screen's name and the callback data of the button that opens it."""
    return {screen: MenuCb(screen=screen).pack() for screen in MENU_SCREENS}


class TrialCb(ButtonData, prefix="trial"):
    """Start the free trial."""


class PlanCb(ButtonData, prefix="plan"):
    """Show the confirmation screen of a plan."""

    plan_id: str


class BuyCb(ButtonData, prefix="buy"):
    """Confirm a purchase: the price shown and a token that makes a double press harmless."""

    plan_id: str
    price: int  # kopecks, as shown on the confirmation screen
    token: str


class AutoRenewCb(ButtonData, prefix="renew"):
    on: bool  # the value to set (not a toggle), so a double press lands on it


class LangCb(ButtonData, prefix="lang"):
    code: str


class GateCb(ButtonData, prefix="gate"):
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
