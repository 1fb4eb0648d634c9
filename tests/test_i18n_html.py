"""Every catalog message stays valid Telegram HTML whatever values it is given (issue 16, defect 5).

Each message of each locale is rendered with hostile text in every placeholder and
parsed by the Telegram emulator's HTML parser, which refuses what Telegram refuses
("can't parse entities"); the hostile text must read back exactly as it was given.
"""

from __future__ import annotations

from markupsafe import Markup

from orbit.admin.errors import InvalidPromoLine
from orbit.admin.promo_line import parse_promo_line
from orbit.i18n import LOCALES, create_translator
from orbit.sandbox.telegram import parse_html
from tests.test_i18n import _catalog

HOSTILE = ['<b>', '&', '</code>', 'x<y & z>"q"\'s', '<a href="https://evil">', "&amp;"]


def test_every_message_parses_with_hostile_values() -> None:
    t = create_translator()
    checked = 0
    for locale in LOCALES:
        for key, placeholders in _catalog(locale).items():
            if key.startswith("-"):
                continue  # terms are only used inside messages
            for hostile in HOSTILE:
                values = {name: f"[{hostile}]" for name in placeholders}
                rendered = t(locale, key, **values)
                text, _ = parse_html(rendered)  # raises HtmlParseError as Telegram would refuse it
                for name in placeholders:
                    # Each value reads back as typed (unless a plural selector swallowed it).
                    if f"[{hostile}]" not in text:
                        assert _only_in_selectors(locale, key, name), (locale, key, name, rendered)
                checked += 1
    assert checked > 2 * len(HOSTILE) * 100  # every message of both catalogs, not a handful


def _only_in_selectors(locale: str, key: str, name: str) -> bool:
    """Whether `$name` is used only to choose a variant (`{ $count -> ... }`), never shown."""
    from pathlib import Path

    from fluent.syntax import FluentParser, ast

    from orbit.i18n import LOCALES_PATH

    folder = Path(str(LOCALES_PATH).format(locale=locale))
    for path in folder.glob("*.ftl"):
        for entry in FluentParser().parse(path.read_text(encoding="utf-8")).body:
            if isinstance(entry, ast.Message) and entry.id.name == key:
                shown = _shown_variables(entry.value)
                return name not in shown
    return False


def _shown_variables(pattern: object) -> set[str]:
    from fluent.syntax import ast

    found: set[str] = set()
    if isinstance(pattern, ast.Pattern):
        for element in pattern.elements:
            if isinstance(element, ast.Placeable):
                expression = element.expression
                if isinstance(expression, ast.VariableReference):
                    found.add(expression.id.name)
                elif isinstance(expression, ast.SelectExpression):
                    for variant in expression.variants:
                        found |= _shown_variables(variant.value)
    return found


def test_a_mistyped_admin_promo_line_is_answered_in_valid_html() -> None:
    """The reported case: a `<` in a promo line an admin typed, quoted back in the refusal."""
    t = create_translator()
    for line in ("SPRING balance 1<0", "SPRING da<ys 30", "SPRING days 30 5<b>"):
        try:
            parse_promo_line(line)
        except InvalidPromoLine as exc:
            refusal = exc
        else:
            raise AssertionError(f"{line!r} was accepted")
        for locale in LOCALES:
            text, _ = parse_html(t(locale, refusal.message_key, **refusal.params))
            assert refusal.params["reason"] in text


def test_rendered_messages_nest_without_double_escaping() -> None:
    from orbit.i18n import create_core

    core = create_core()

    def t(locale: str, key: str, **params: object) -> str:
        return core.get(key, locale, **params)

    inner = t("en", "admin-promo-created", code="A&B")
    assert isinstance(inner, Markup)
    assert "A&amp;B" in inner and "&amp;amp;" not in inner
    # A rendered message put into another keeps its tags and its escaped values.
    outer = t("en", "admin-promo-refused", reason=inner)
    assert "&amp;amp;" not in outer
    assert "A&B" in parse_html(outer)[0]


def test_plain_text_reads_values_as_typed() -> None:
    from orbit.i18n import plain_text

    t = create_translator()
    alert = plain_text(t("en", "banned-text", support="@help & <support>"))
    assert "@help & <support>" in alert
