"""Message text as Telegram measures and parses it: UTF-16 lengths, command entities, HTML parse mode."""

from __future__ import annotations

import html
import re
from typing import Any

from orbit.sandbox.telegram.constants import _COMMAND_RE

# --- text: UTF-16 lengths, commands, HTML parse mode ------------------------------------


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[dict[str, Any]] | None:
    match = _COMMAND_RE.match(text)
    if match is None or (match.end() < len(text) and not text[match.end()].isspace()):
        return None
    return [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group())}]


class HtmlParseError(ValueError):
    pass


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_NAMED_CHAR_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHAR_REF_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")
_TAG_NAME_RE = re.compile(r"</?([^\s>]*)")
_ATTR_RE = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_PLAIN_RUN_RE = re.compile(r"[^<&]+")


def _char_ref(name: str) -> str | None:
    if not name.startswith("#"):
        return _NAMED_CHAR_REFS.get(name)
    code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
    return chr(code) if 0 < code <= 0x10FFFF else None


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: plain text plus entities (offsets in UTF-16 units).

    Raises HtmlParseError with the description Telegram gives after
    "Bad Request: can't parse entities: ".
    """
    out: list[str] = []
    offset = 0
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(source):
        if source[i] == "<":
            i = _html_tag(source, i, offset, stack, entities)
            continue
        if source[i] == "&":
            match = _CHAR_REF_RE.match(source, i)
            decoded = _char_ref(match.group(1)) if match else None
            if match is None or decoded is None:
                piece, i = "&", i + 1
            else:
                piece, i = decoded, match.end()
        else:
            run = _PLAIN_RUN_RE.match(source, i)
            assert run is not None
            piece, i = run.group(), run.end()
        out.append(piece)
        offset += _utf16_len(piece)
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _html_tag(
    source: str,
    i: int,
    offset: int,
    stack: list[tuple[str, int, dict[str, str]]],
    entities: list[dict[str, Any]],
) -> int:
    at = len(source[:i].encode())
    end = source.find(">", i)
    name_match = _TAG_NAME_RE.match(source, i)
    assert name_match is not None
    name = name_match.group(1).lower()
    if source.startswith("</", i):
        if end == -1:
            raise HtmlParseError(f"Unclosed end tag at byte offset {at}")
        if not stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {at}")
        tag, start, attrs = stack.pop()
        if name and name != tag:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {at}, expected "</{tag}>", found "</{name}>"'
            )
        entity = _html_entity(tag, start, offset - start, attrs, stack)
        if entity is not None:
            entities.append(entity)
        return end + 1
    if name_match.end() == len(source):
        raise HtmlParseError(f"Unclosed start tag at byte offset {at}")
    if name not in _HTML_TAGS:
        raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {at}')
    if end == -1:
        raise HtmlParseError(f"Unclosed start tag at byte offset {at}")
    attrs = {
        match.group(1).lower(): html.unescape(next((g for g in match.groups()[1:] if g), ""))
        for match in _ATTR_RE.finditer(source, name_match.end(), end)
    }
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    stack.append((name, offset, attrs))
    return end + 1


def _html_entity(
    tag: str,
    start: int,
    length: int,
    attrs: dict[str, str],
    stack: list[tuple[str, int, dict[str, str]]],
) -> dict[str, Any] | None:
    language = attrs.get("class", "")
    if tag == "code" and stack and stack[-1][0] == "pre" and language.startswith("language-"):
        stack[-1][2]["language"] = language.removeprefix("language-")
        return None
    if length == 0:
        return None
    entity: dict[str, Any] = {"type": _HTML_TAGS[tag], "offset": start, "length": length}
    if tag == "a":
        if not attrs.get("href"):
            return None
        entity["url"] = attrs["href"]
    elif tag == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif tag == "tg-time":
        if not attrs.get("unix", "").isdigit():
            return None
        entity["unix_time"] = int(attrs["unix"])
        if attrs.get("format"):
            entity["date_time_format"] = attrs["format"]
    return entity
