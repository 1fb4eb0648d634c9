"""Credentials out of anything printed: settings' repr, start-up errors, `orbit status`.

A setting named like a secret (`*_token`, `*_password`, `*_key`, `*_secret`) is
shown as `***`; any other text value that is a URL keeps its scheme, host and
path but loses the password of its userinfo and the values of query parameters
that name a credential (`redis://:pw@host`, `postgresql://u:pw@h/db?password=x`).
`scrub` applies both to free text (an exception message) given the settings whose
values must not appear in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
MIN_SCRUBBED = 6  # shorter secret values are not searched for in free text
_SECRET_SUFFIXES = ("_token", "_password", "_key", "_secret")
_SECRET_QUERY_NAMES = frozenset({"password", "pass", "passwd", "token", "key", "secret", "apikey"})
# scheme://userinfo@ inside any text (an exception message quoting a URL).
_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/@]*)@")


def is_secret_name(name: str) -> bool:
    return name.lower().endswith(_SECRET_SUFFIXES)


def mask_url(url: str) -> str:
    """`url` without the password in its userinfo or credential query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in _SECRET_QUERY_NAMES for name, _ in pairs):
            query = urlencode(
                [(n, MASK if n.lower() in _SECRET_QUERY_NAMES else v) for n, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def location(url: str) -> str:
    """`host:port/path` of a URL: where it points, without any credential."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    return f"{host}{port}{parts.path}"


def shown(name: str, value: object) -> object:
    """What may be printed of the setting `name` holding `value`."""
    if value is None:
        return None
    if is_secret_name(name):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def secret_values(fields: Iterable[tuple[str, object]]) -> list[str]:
    """Every credential among `(name, value)` settings: secret-named values and URL passwords."""
    found: list[str] = []
    for name, value in fields:
        if not isinstance(value, str) or not value:
            continue
        if is_secret_name(name):
            found.append(value)
            found.append(value.partition(":")[2])  # a bot token's secret half, quoted alone
        elif "://" in value:
            found.extend(_url_secrets(value))
    # Longest first, so a secret containing another is replaced whole. A short one (the
    # development default `orbit`) would blank out ordinary words: URLs are masked by shape.
    return sorted({s for s in found if len(s) >= MIN_SCRUBBED}, key=len, reverse=True)


def _url_secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = []
    if parts.password:
        found.append(parts.password)
    found += [v for n, v in parse_qsl(parts.query) if n.lower() in _SECRET_QUERY_NAMES and v]
    return found


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every given secret and every URL's userinfo password replaced by `***`."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _USERINFO_RE.sub(_mask_userinfo, text)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, has_password, _ = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:{MASK}@" if has_password else f"{match['scheme']}{MASK}@"
