"""Text that came from outside (tonapi, Telegram, Crypto Pay, panels), made safe to store.

Postgres `text` refuses NUL; asyncpg cannot encode a lone UTF-16 surrogate
(JSON's `"\\ud800"` decodes to one); control characters garble logs and
screens; and a stranger chooses the length. `clean_text` maps any of these to
something storable instead of raising, so one bad item never stops a batch.
"""

from __future__ import annotations

import unicodedata

REPLACEMENT = "\ufffd"
# Kept in multi-line texts (comments, messages); everything else in category C goes.
_KEPT_CONTROLS = frozenset("\n\t")


def _clean_char(ch: str, keep_newlines: bool) -> str:
    if ch == "\x00":
        return ""
    category = unicodedata.category(ch)
    if category == "Cs":  # a lone surrogate: not encodable as UTF-8
        return REPLACEMENT
    if category in ("Cc", "Cf") and not (keep_newlines and ch in _KEPT_CONTROLS):
        return "" if category == "Cf" else " "
    return ch


def clean_text(value: str | bytes | None, limit: int, *, keep_newlines: bool = False) -> str:
    """`value` with NUL dropped, lone surrogates replaced, other controls made
    spaces (format characters such as RTL overrides dropped), cut to `limit`
    characters. Bytes are decoded as UTF-8 with replacement."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("utf-8", errors="replace")
    # Look at no more than needed: a megabyte comment is cut before it is scanned.
    head = value[: limit * 2]
    if head.isprintable() and len(head) <= limit:
        return head
    out: list[str] = []
    size = 0
    for ch in head:
        cleaned = _clean_char(ch, keep_newlines) if not ch.isprintable() else ch
        if not cleaned:
            continue
        out.append(cleaned)
        size += 1
        if size >= limit:
            break
    return "".join(out)


def is_clean(value: str) -> bool:
    """True when `value` can be stored in Postgres text as it is."""
    return "\x00" not in value and not any(unicodedata.category(ch) == "Cs" for ch in value)
