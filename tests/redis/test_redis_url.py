"""REDIS_URL: redis-py's forms and `redis+sentinel://`, parsed at start; a malformed
one is a one-line configuration error naming REDIS_URL, never the password."""

from __future__ import annotations

import pytest

from orbit.redis_url import SentinelUrl, parse_sentinel
from orbit.settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,sentinel-3/orbit/2",
            SentinelUrl((("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-3", 26379)), "orbit", 2),
        ),
        ("redis+sentinel://h/mymaster", SentinelUrl((("h", 26379),), "mymaster", 0)),
        ("redis+sentinel://h:1/m/", SentinelUrl((("h", 1),), "m", 0)),
        (
            "redis+sentinel://:s%40cret@[::1]:26379,[fe80::1]/m/0",
            SentinelUrl((("::1", 26379), ("fe80::1", 26379)), "m", 0, None, "s@cret"),
        ),
        ("redis+sentinel://app:pw@h/m/1", SentinelUrl((("h", 26379),), "m", 1, "app", "pw")),
    ],
)
def test_sentinel_urls_are_parsed(url: str, expected: SentinelUrl) -> None:
    assert parse_sentinel(url) == expected
    assert load_settings({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://:hunter2@h:26379", "service name is missing"),
        ("redis+sentinel://h//0", "service name is missing"),
        ("redis+sentinel://h/m/x", "the db must be a number, got 'x'"),
        ("redis+sentinel://h/m/0/extra", "service name is missing"),
        ("redis+sentinel://h:99999/m", "bad sentinel port '99999'"),
        ("redis+sentinel://h:,/m", "a sentinel host is empty"),
        ("redis+sentinel://:hunter2@h/m?ssl=1", "no query or fragment"),
        ("sentinel://:hunter2@h/m", "expected a URL starting with redis://"),
        ("localhost:6379", "expected a URL starting with redis://"),
    ],
)
def test_malformed_redis_urls_are_named_without_the_password(url: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"REDIS_URL": url})
    message = str(caught.value)
    assert message.startswith("REDIS_URL expected")
    assert expected in message
    assert "hunter2" not in message


@pytest.mark.parametrize("url", ["redis://localhost", "rediss://u:p@h:6380/1", "unix:///run/redis.sock"])
def test_redis_py_urls_pass(url: str) -> None:
    assert load_settings({"REDIS_URL": url}).redis_url == url
