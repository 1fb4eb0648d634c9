"""How the bot's routers are built, checked without running them."""

from __future__ import annotations

from aiogram import Router
from aiogram.dispatcher.event.handler import FilterObject

from orbit.bot.routers import get_routers, menu
from orbit.ui.callbacks import ButtonData
from tests.support.bot_harness import button_classes


def _filters(router: Router) -> list[tuple[str, FilterObject]]:
    found = []
    for r in router.chain_tail:
        for name, observer in r.observers.items():
            for f in observer._handler.filters or ():  # the router-level filters
                found.append((f"{r.name}.{name} (router)", f))
            for handler in observer.handlers:
                for f in handler.filters or ():
                    found.append((f"{r.name}.{name} {handler.callback.__name__}", f))
    return found


def test_no_filter_runs_in_a_worker_thread() -> None:
    # aiogram runs a plain callable filter (a bare F... magic filter too) through
    # asyncio.to_thread on every check: on the event loop they must stay.
    own = Router(name="dispatcher")  # stands for the dispatcher, which holds the menu's handlers
    menu.register(own)
    threaded = [
        where
        for router in [own, *get_routers()]
        for where, f in _filters(router)
        if not f.awaitable
    ]
    assert threaded == []


def test_every_button_class_bounds_its_numbers() -> None:
    # Forged data reaches the filters first: each class must inherit the bounds check.
    classes = button_classes()
    assert {cls.__prefix__ for cls in classes} >= {"m", "buy", "tonpaid", "cbchk", "admu", "cfg"}
    assert [cls.__name__ for cls in classes if not issubclass(cls, ButtonData)] == []
