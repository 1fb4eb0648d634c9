"""Localized text: Fluent catalogs in `orbit/locales/<locale>/LC_MESSAGES/*.ftl`.

We use aiogram-i18n's Fluent core rather than aiogram's gettext i18n: Fluent
has named placeholders and plural/case selectors that Russian needs, needs no
compile step (.mo), and the same core renders texts outside handlers (outbox
messages written by the janitor, the watcher and the CLI).
Each area owns its own `.ftl` file; both locales must have the same keys and
placeholders (tests/test_i18n.py).

Every message is Telegram HTML, so every value put into one is escaped here, once,
by the core itself (`HtmlFluentCore`): handlers pass raw values (a user's name, a
promo line an admin mistyped with a `<`) and never call `html.escape`. A rendered
message is `Markup`, so a message put into another (a status into a list line)
keeps its tags; a fragment built by hand must be `Markup` too (`markupsafe`'s
`Markup(...).format(...)` escapes its arguments). Text shown where Telegram parses
no HTML (a callback alert) goes through `plain_text`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

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
        # A plain str: these texts are stored (outbox rows, panel notes), and msgspec
        # encodes no str subclass.
        return str(self.core.get(key, locale if locale in LOCALES else DEFAULT_LOCALE, **params))


def escape_params(params: dict[str, Any]) -> dict[str, Any]:
    """Text values HTML-escaped (`Markup`, already safe, is kept); numbers stay numbers
    for Fluent's plural selectors."""
    return {k: escape(v) if isinstance(v, str) else v for k, v in params.items()}


def plain_text(text: str) -> str:
    """What Telegram would show of an HTML message, for places that parse no HTML
    (callback alerts): the escaped values read as typed again."""
    return html.unescape(text)


def create_core() -> FluentRuntimeCore:
    from aiogram_i18n.cores import FluentRuntimeCore

    class HtmlFluentCore(FluentRuntimeCore):
        """Renders Telegram HTML: values escaped, the result `Markup` (see the module)."""

        def get(self, message_id: str, locale: str | None = None, /, **kwargs: Any) -> str:
            return Markup(super().get(message_id, locale, **escape_params(kwargs)))

    core = HtmlFluentCore(path=LOCALES_PATH, default_locale=DEFAULT_LOCALE, use_td=False)
    core.locales = core.find_locales()
    return core


def create_translator() -> Translator:
    return Translator(create_core())
