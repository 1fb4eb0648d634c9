"""Localized text: Fluent catalogs in `orbit/locales/<locale>/LC_MESSAGES/*.ftl`.

We use aiogram-i18n's Fluent core rather than aiogram's gettext i18n: Fluent
has named placeholders and plural/case selectors that Russian needs, needs no
compile step (.mo), and the same core renders texts outside handlers (outbox
messages written by the janitor, the watcher and the CLI).
Each area owns its own `.ftl` file; both locales must have the same keys and
placeholders (tests/test_i18n.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aiogram-i18n imports all of aiogram (seconds): only when a core is built
    from aiogram_i18n.cores import FluentRuntimeCore

LOCALES_PATH = Path(__file__).resolve().parent / "locales" / "{locale}" / "LC_MESSAGES"
LOCALES = ("en", "ru")
DEFAULT_LOCALE = "en"


def language_for(language_code: str | None) -> str:
    """Telegram's `language_code` → our locale: Russian for `ru*`, else English."""
    return "ru" if language_code and language_code.lower().startswith("ru") else "en"


class Translator:
    """Renders a catalog key in a locale; a missing key is an error, never silent."""

    def __init__(self, core: FluentRuntimeCore) -> None:
        self.core = core

    def __call__(self, locale: str, key: str, /, **params: Any) -> str:
        return self.core.get(key, locale if locale in LOCALES else DEFAULT_LOCALE, **params)


def create_core() -> FluentRuntimeCore:
    from aiogram_i18n.cores import FluentRuntimeCore

    core = FluentRuntimeCore(path=LOCALES_PATH, default_locale=DEFAULT_LOCALE, use_td=False)
    core.locales = core.find_locales()
    return core


def create_translator() -> Translator:
    return Translator(create_core())
