"""clean_text: anything from outside becomes storable, bounded text."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbit.text import clean_text, is_clean
from tests.support.loop_thread import LoopThread


@given(st.text(), st.integers(min_value=1, max_value=300), st.booleans())
def test_any_text_becomes_clean_and_bounded(raw: str, limit: int, keep: bool) -> None:
    out = clean_text(raw, limit, keep_newlines=keep)
    assert is_clean(out)
    assert len(out) <= limit
    out.encode("utf-8")  # never raises


@given(st.binary(max_size=400), st.integers(min_value=1, max_value=100))
def test_bytes_are_decoded_with_replacement(raw: bytes, limit: int) -> None:
    out = clean_text(raw, limit)
    assert is_clean(out) and len(out) <= limit


def test_what_it_keeps_and_drops() -> None:
    assert clean_text("pay\x00ment", 50) == "payment"
    assert clean_text("a\ud800b", 50) == "a\ufffdb"
    assert clean_text("line1\nline2\tx", 50) == "line1 line2 x"
    assert clean_text("line1\nline2\tx", 50, keep_newlines=True) == "line1\nline2\tx"
    assert clean_text("evil\u202eexe", 50) == "evilexe"
    assert clean_text("Привет 🙂", 50) == "Привет 🙂"
    assert clean_text(None, 5) == ""
    assert clean_text("x" * 10_000_000, 64) == "x" * 64


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def test_postgres_stores_what_clean_text_returns(database_url: str, loop_thread: LoopThread) -> None:

    conn = loop_thread.run(asyncpg.connect(database_url))

    @settings(max_examples=100, deadline=None)
    @given(st.text(max_size=200) | st.binary(max_size=200))
    def check(raw: str | bytes) -> None:
        out = clean_text(raw, 200, keep_newlines=True)
        assert loop_thread.run(conn.fetchval("SELECT $1::text", out)) == out

    try:
        check()
    finally:
        loop_thread.run(conn.close())
