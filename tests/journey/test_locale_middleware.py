"""The i18n middleware: the locale from the loaded row, and no reference cycle per update."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from aiogram.types import TelegramObject, User
from aiogram_i18n import I18nContext

from orbit.bot.middlewares.locale import UserI18nMiddleware, UserLocaleManager
from orbit.i18n import DEFAULT_LOCALE, create_core
from orbit.users.queries import UserRow

EVENT = TelegramObject()


def _row(language: str) -> UserRow:
    return UserRow(id=1, language=language, balance_kop=0, subscription_until=None, trial_used_at=None,
                   auto_renew=True, blocked_at=None, is_banned=False)  # fmt: skip


def _middleware() -> UserI18nMiddleware:
    return UserI18nMiddleware(core=create_core(), manager=UserLocaleManager(), default_locale=DEFAULT_LOCALE)


@pytest.fixture
def no_gc() -> Iterator[None]:
    # Only reference counting frees anything here: what a cycle holds stays alive.
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_the_locale_is_the_stored_choice_else_telegrams_language() -> None:
    middleware = _middleware()
    locales: list[str] = []

    async def handler(event: TelegramObject, data: dict[str, Any]) -> None:
        locales.append(data["i18n"].locale)

    russian_client = User(id=1, is_bot=False, first_name="A", language_code="ru")
    await middleware(handler, EVENT, {"user": _row("en"), "event_from_user": russian_client})
    await middleware(handler, EVENT, {"user": None, "event_from_user": russian_client})
    await middleware(handler, EVENT, {"user": None, "event_from_user": None})
    assert locales == ["en", "ru", "en"]


async def test_a_served_update_leaves_no_reference_cycle(no_gc: None) -> None:
    middleware = _middleware()
    contexts: list[weakref.ref[I18nContext]] = []

    async def handler(event: TelegramObject, data: dict[str, Any]) -> str:
        contexts.append(weakref.ref(data["i18n"]))
        assert data["i18n"].get("btn-menu")  # usable while the handler runs
        return "served"

    data: dict[str, Any] = {"user": _row("ru"), "event_from_user": None}
    assert await middleware(handler, EVENT, data) == "served"
    assert "i18n" not in data
    del data
    assert contexts[0]() is None  # freed at once, not left for a full GC pass


async def test_a_failed_update_keeps_the_context_for_the_error_handler(no_gc: None) -> None:
    middleware = _middleware()

    async def handler(event: TelegramObject, data: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    data: dict[str, Any] = {"user": _row("ru"), "event_from_user": None}
    with pytest.raises(RuntimeError):
        await middleware(handler, EVENT, data)
    assert data["i18n"].locale == "ru"  # the error handler answers in the user's language
