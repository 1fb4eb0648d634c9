"""Fuzz: hostile tonapi pages through the real client, over real HTTP, into the watcher.

Each example builds a page of transactions in tonapi's shape (the emulator's own
builders, then bent): comments with NUL and other controls, lone UTF-16 surrogates
(as raw `\\ud800` escapes, or as bytes that are not UTF-8), oversized and binary
comments, bounced and failed transfers, outgoing ones, jetton notifications, zero and
huge values, items of the wrong shape; some listed twice, the page shuffled. The
emulator serves it as-is (`script_page`) and the watcher's unit of work
(`poll_wallet`) runs. After each example: nothing escaped, the audit holds, the cursor
is the page's highest lt, every stored text is clean, no jetton was taken for TON.

Examples per run: `FUZZ_EXAMPLES` (default 50; `make fuzz` runs many more).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from orbit.connections import create_pool
from orbit.i18n import Translator, create_translator
from orbit.payments import service
from orbit.payments.audit import audit
from orbit.payments.ton_watch import cursor_name, poll_wallet
from orbit.payments.tonapi import TonapiClient
from orbit.sandbox.tonapi import TonapiEmulator
from orbit.settings import Settings
from orbit.text import is_clean
from tests.support.loop_thread import LoopThread

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
WALLET = "0:" + "ab" * 32
OTHER = "0:" + "cd" * 32
KEY = "fuzz-key"
NANO = 10**9
# Pending, expired long ago (the late rule), and a referee's: the comments pages may pay.
COMMENTS = ("ORBFUZZ22", "ORBFUZZ33", "ORBLATE44", "ORBREFE55")
JETTON_NOTIFY = "0x7362d09c"


@dataclass
class Rig:
    runner: LoopThread
    tonapi: TonapiEmulator
    scratch: TonapiEmulator  # never served: builds transactions in tonapi's shape
    pool: asyncpg.Pool
    redis: Redis
    http: aiohttp.ClientSession
    translator: Translator
    settings: Settings


@pytest.fixture(scope="module")
def rig(base_settings: Settings) -> Iterator[Rig]:
    runner = LoopThread()

    async def start() -> Rig:
        tonapi = TonapiEmulator(api_key=KEY)
        await tonapi.start()
        settings = msgspec.structs.replace(
            base_settings, ton_address=WALLET, tonapi_url=tonapi.base_url or "", tonapi_key=KEY
        )
        pool = await create_pool(settings, max_size=4)
        redis = Redis.from_url(settings.redis_url, decode_responses=True)
        return Rig(runner, tonapi, TonapiEmulator(), pool, redis, aiohttp.ClientSession(),
                   create_translator(), settings)

    rig = runner.run(start())
    runner.run(_fresh_shop(rig))
    yield rig

    async def stop() -> None:
        await rig.http.close()
        await rig.redis.aclose()
        await rig.pool.close()
        await rig.tonapi.stop()

    runner.run(stop())
    runner.close()


async def _fresh_shop(rig: Rig) -> None:
    await rig.pool.execute(
        "TRUNCATE users, ledger, payments, referrals, outbox, ton_transactions, cursors"
        " RESTART IDENTITY CASCADE"
    )
    await rig.redis.flushdb()
    await rig.pool.executemany("INSERT INTO users (id) VALUES ($1)", [(1,), (2,), (3,)])
    await rig.pool.execute("INSERT INTO referrals (referee_id, referrer_id) VALUES (3, 2)")
    soon = datetime.now(UTC) + timedelta(minutes=10)
    long_ago = datetime.now(UTC) - timedelta(days=2)
    async with rig.pool.acquire() as conn, conn.transaction():
        owners = zip(COMMENTS, (1, 1, 2, 3), (soon, soon, long_ago, soon), strict=True)
        for text, user, expires in owners:
            await service.create_payment(conn, user, "ton", 10_000, "TON", NANO // 2, expires, comment=text)


# --- what a page may hold ---------------------------------------------------------------------

surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
controls = st.text(st.characters(max_codepoint=0x1F) | st.sampled_from("\x7f\u200b\u202e\ufeff"), max_size=6)
paying = st.sampled_from(COMMENTS).map(str.lower) | st.sampled_from(COMMENTS)
comment = st.one_of(
    st.none(),
    paying,
    st.text(max_size=40),
    st.builds(lambda a, b, c: a + b + c, paying | st.text(max_size=8), controls, surrogates | controls),
    st.builds(lambda head, n: head + "x" * n, paying | st.just(""), st.integers(1_000, 70_000)),
)
value = st.one_of(
    st.just(0),
    st.integers(1, 10 * NANO),
    st.sampled_from((NANO // 2, NANO // 200_000, 2**63 - 1)),
    st.integers(2**63, 2**90),
)
item = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(
            ("text", "text", "text", "binary", "bounced", "failed", "outgoing", "jetton", "bad_shape")
        ),
        "comment": comment,
        "value": value,
        "binary": st.binary(max_size=80),
    }
)


def _build(rig: Rig, spec: dict[str, Any]) -> dict[str, Any]:
    """One transaction in tonapi's shape (built by the emulator, then bent to `spec`)."""
    kind = spec["kind"]
    if kind == "outgoing":
        rig.scratch.send_outgoing(WALLET, OTHER, NANO, "refund")
    else:
        rig.scratch.send_ton(
            WALLET, 1, "placeholder", OTHER, bounced=kind == "bounced", failed=kind == "failed"
        )
    tx = rig.scratch.transactions(WALLET)[-1]
    msg = tx["in_msg"]
    if kind == "outgoing":
        return tx
    msg["value"] = spec["value"]
    text = spec["comment"]
    if kind == "binary":
        for field in ("decoded_op_name", "decoded_body"):
            msg.pop(field, None)
        msg["raw_body"] = "00000000" + spec["binary"].hex()
    elif kind == "jetton":
        msg.update(
            op_code=JETTON_NOTIFY,
            decoded_op_name="jetton_notify",
            raw_body="7362d09c" + spec["binary"].hex(),
            decoded_body={
                "query_id": 0,
                "amount": str(spec["value"]),
                "sender": OTHER,
                "forward_payload": {"is_right": False, "value": {"sum_type": "TextComment",
                                                                 "value": {"text": text}}},
            },
        )
        msg["value"] = 50_000_000
    elif kind == "bad_shape":
        tx["utime"] = "yesterday"
    elif text is None:
        for field in ("op_code", "decoded_op_name", "decoded_body", "raw_body"):
            msg.pop(field, None)
    else:
        msg["decoded_body"] = {"text": text}
        msg["raw_body"] = "00000000" + text.encode("utf-8", "surrogatepass").hex()
    return tx


def _encode(page: list[dict[str, Any]], ascii_only: bool) -> bytes:
    """tonapi's JSON: surrogates as `\\ud800` escapes, or (not ASCII-only) as raw bytes
    that are not UTF-8 at all."""
    text = json.dumps({"transactions": page}, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


async def _one_page(rig: Rig, body: bytes) -> None:
    rig.tonapi.script_page(WALLET, body)
    client = TonapiClient(rig.http, rig.tonapi.base_url or "", KEY, retries=0)
    await poll_wallet(rig.pool, rig.redis, client, rig.translator, rig.settings)


async def _check(rig: Rig, page: list[dict[str, Any]]) -> None:
    async with rig.pool.acquire() as conn:
        assert await audit(conn) == []
        cursor = await conn.fetchval("SELECT value FROM cursors WHERE name = $1", cursor_name(WALLET))
        assert int(cursor) == max(tx["lt"] for tx in page)
        jettons = [tx["hash"] for tx in page if tx["in_msg"].get("op_code") == JETTON_NOTIFY]
        taken = await conn.fetchval(
            "SELECT count(*) FROM ton_transactions WHERE hash = ANY($1::text[]) AND status = 'matched'",
            jettons,
        )
        assert taken == 0
        texts = await conn.fetch("SELECT comment, source, reason FROM ton_transactions")
        assert all(is_clean(v) for r in texts for v in r.values() if v is not None)
        bonuses = await conn.fetchval("SELECT count(*) FROM ledger WHERE kind = 'referral_bonus'")
        referee = await conn.fetchval(
            "SELECT coalesce(sum(credited_kop), 0) FROM payments WHERE user_id = 3 AND status = 'confirmed'"
        )
        assert bonuses == (1 if referee >= service.referral_min_kop(rig.settings) else 0)


@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_tonapi_page_is_survived_and_leaves_the_books_right(rig: Rig, data: st.DataObject) -> None:
    specs = data.draw(st.lists(item, min_size=1, max_size=12), label="items")
    page = [_build(rig, spec) for spec in specs]
    twice = data.draw(st.lists(st.sampled_from(range(len(page))), max_size=3), label="listed twice")
    page += [page[i] for i in twice]
    page = data.draw(st.permutations(page), label="order")
    body = _encode(page, data.draw(st.booleans(), label="ascii JSON"))
    rig.runner.run(_one_page(rig, body))
    rig.runner.run(_check(rig, page))
