"""Which budget a button spends, read off the update before routing (issue 16, defect 2)."""

from __future__ import annotations

import pytest
from aiogram import Dispatcher, F, Router
from aiogram.filters.callback_data import CallbackData

from orbit.bot import routers
from orbit.bot.middlewares.throttling import RateActions
from orbit.ratelimit import LIMITS
from tests.journey.test_ratelimit import _callback, _update
from tests.support.bot_harness import detach_routers


def test_every_outside_call_of_the_bot_has_a_budget_of_its_own() -> None:
    dp = Dispatcher()
    routers.install(dp)
    try:
        actions = RateActions.scan(dp, set(LIMITS))
    finally:
        detach_routers()  # the next test's dispatcher attaches them again

    def action(data: str) -> str | None:
        return actions.classify(_update(callback_query=_callback(data)))

    assert action("cfg:new:2") == "config_create"  # a panel user created
    assert action("cfg:erase:17") == "config_delete"  # a panel user deleted
    assert action("cfg:show:17") == "panel_read"  # a config's own screen reads its panel
    assert action("cfg:rename:17") == "panel_read"  # the name typed next is answered with usage
    assert action("cfg:qr:17") == "qr"
    assert action("pm:ton:50000") == action("pm:stars:50000") == action("pm:cryptobot:50000") == "payment"
    assert action("tonpaid:5") == action("cbchk:5") == "payment"
    # Navigation and screens that call no outside service stay on the default budget.
    assert action("m:main") == action("m:help") == action("cfg:delete:17") == "default"
    # The list shows the usage stored last and asks no panel (issue 12).
    assert action("cfg:list:0") == action("m:configs") == "default"
    assert action("cfg") == action("cfg:") == action("m") == "default"


class _ItemCb(CallbackData, prefix="titem"):
    action: str
    id: int = 0


def test_a_flag_on_one_value_of_the_first_field_spends_only_that_budget() -> None:
    router = Router()

    @router.callback_query(_ItemCb.filter(F.action == "make"), flags={"rate": "config_create"})
    async def make() -> None: ...

    @router.callback_query(_ItemCb.filter(F.action == "peek"), flags={"rate": "panel_read"})
    async def peek() -> None: ...

    actions = RateActions.scan(router, set(LIMITS))
    assert actions.classify(_update(callback_query=_callback("titem:make:1"))) == "config_create"
    assert actions.classify(_update(callback_query=_callback("titem:peek:1"))) == "panel_read"
    assert actions.classify(_update(callback_query=_callback("titem:other:1"))) == "default"

    # A rule on another field, or not an equality, spends the flag for the whole prefix
    # (as before), and two such flags of one prefix still conflict at start-up.
    broad = Router()

    @broad.callback_query(_ItemCb.filter(F.id > 0), flags={"rate": "config_create"})
    async def any_id() -> None: ...

    @broad.callback_query(_ItemCb.filter(F.action.in_({"a", "b"})), flags={"rate": "panel_read"})
    async def some() -> None: ...

    with pytest.raises(ValueError, match="two rate actions"):
        RateActions.scan(broad, set(LIMITS))
