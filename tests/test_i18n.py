"""Both catalogs have the same keys and the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from fluent.syntax import FluentParser, ast

from orbit.i18n import LOCALES, LOCALES_PATH, create_translator, language_for

_PLACEABLE = re.compile(r"\{\s*\$([a-zA-Z_][\w-]*)")


def _catalog(locale: str) -> dict[str, set[str]]:
    """key -> placeholders, over every .ftl file of the locale."""
    folder = Path(str(LOCALES_PATH).format(locale=locale))
    entries: dict[str, set[str]] = {}
    parser = FluentParser()
    for path in sorted(folder.glob("*.ftl")):
        source = path.read_text(encoding="utf-8")
        resource = parser.parse(source)
        for entry in resource.body:
            assert not isinstance(entry, ast.Junk), f"{path}: {entry.annotations}"
            if isinstance(entry, ast.Message | ast.Term):
                key = ("-" if isinstance(entry, ast.Term) else "") + entry.id.name
                assert key not in entries, f"{key} defined twice in {locale}"
                text = source[entry.span.start : entry.span.end]
                entries[key] = set(_PLACEABLE.findall(text))
    return entries


def test_catalogs_have_the_same_keys_and_placeholders() -> None:
    catalogs = {locale: _catalog(locale) for locale in LOCALES}
    en = catalogs["en"]
    assert en, "the English catalog is empty"
    for locale, catalog in catalogs.items():
        assert catalog.keys() == en.keys(), (
            f"{locale}: missing {sorted(en.keys() - catalog.keys())}, "
            f"extra {sorted(catalog.keys() - en.keys())}"
        )
        for key, placeholders in en.items():
            assert catalog[key] == placeholders, f"{locale} {key}: {catalog[key]} != {placeholders}"


def test_translator_renders_each_locale() -> None:
    t = create_translator()
    assert t("en", "error-generic") != t("ru", "error-generic")
    assert t("de", "error-generic") == t("en", "error-generic")


def test_language_choice_from_telegram() -> None:
    assert language_for("ru") == "ru"
    assert language_for("ru-RU") == "ru"
    assert language_for("uk") == "en"
    assert language_for(None) == "en"
