"""Fuzz: top-up amounts and promo codes at the service level.

Any text a user can type as an amount or a code, any value an admin can give a new
code: the answer is a value within the limits or one of the service's own refusals
(never another exception), and a refusal stores nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from orbit.connections import create_pool
from orbit.marzban.provisioning import PanelDeps
from orbit.payments import service as payments
from orbit.promos import service as promos
from orbit.settings import Settings
from tests.support.loop_thread import LoopThread

pytestmark = pytest.mark.fuzz

CODE = "SPRING50"
BONUS_KOP = 5_000

# What people type: digits with separators, currency marks, signs, exponents, other
# scripts' digits, huge numbers; and any text at all.
amount_texts = st.one_of(
    st.text(),
    st.from_regex(r"\A[-+]?[0-9]{0,14}([.,][0-9]{0,4})?\s*(₽|руб|rub|RUB|\$)?\Z"),
    st.builds(str, st.integers()),
    st.builds(str, st.decimals(allow_nan=True, allow_infinity=True)),
    st.builds(str, st.floats()),
    st.text(alphabet="0123456789٠١٢٣٤٥٦٧٨٩０１２３４５６７８９.,  \u00a0\u2009-+eE₽", max_size=20),
)
code_texts = st.one_of(
    st.text(),
    st.from_regex(r"\A[A-Za-z0-9_\- ]{0,40}\Z"),
    st.sampled_from([CODE, CODE.lower(), f"  {CODE}\n", f"{CODE}\x00", "spring５０", "ＳＰＲＩＮＧ50"]),
)


@given(amount_texts)
def test_any_typed_amount_is_a_value_within_the_limits_or_a_clear_refusal(text: str) -> None:
    settings = Settings(database_url="postgresql://unused", redis_url="redis://unused")
    low, high = payments.topup_limits(settings)
    try:
        kopecks = payments.parse_topup_amount(settings, text)
    except (payments.InvalidAmount, payments.AmountOutOfRange):
        return
    assert isinstance(kopecks, int) and low <= kopecks <= high


@given(st.integers())
def test_any_integer_amount_is_kept_or_refused_by_the_limits(amount: int) -> None:
    settings = Settings(database_url="postgresql://unused", redis_url="redis://unused")
    low, high = payments.topup_limits(settings)
    try:
        assert payments.check_topup_amount(settings, amount) == amount
    except payments.AmountOutOfRange:
        assert not low <= amount <= high


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def deps(
    db: asyncpg.Pool, base_settings: Settings, loop_thread: LoopThread
) -> Iterator[PanelDeps]:
    """Dependencies living on the helper thread's loop (hypothesis drives sync code)."""

    async def build() -> PanelDeps:
        return PanelDeps(
            pool=await create_pool(base_settings, max_size=2),
            redis=Redis.from_url(base_settings.redis_url, decode_responses=True),
            http=aiohttp.ClientSession(),
            settings=base_settings,
        )

    built = loop_thread.run(build())
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    loop_thread.run(
        promos.create_promo(built.pool, CODE, "balance", BONUS_KOP, expires_at=tomorrow, actor="9")
    )
    yield built

    async def close() -> None:
        await built.http.close()
        await built.redis.aclose()
        await built.pool.close()

    loop_thread.run(close())


async def _stored(pool: asyncpg.Pool, user_id: int) -> tuple[int, int, int]:
    row = await pool.fetchrow(
        "SELECT (SELECT balance_kop FROM users WHERE id = $1) AS balance,"
        " (SELECT count(*) FROM ledger WHERE user_id = $1) AS entries,"
        " (SELECT count(*) FROM promocode_activations WHERE user_id = $1) AS activations",
        user_id,
    )
    return row["balance"], row["entries"], row["activations"]


# The fixtures are built once per test, not per example (hence the health check off):
# each example works on rows of its own.
_ONCE_PER_TEST = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
_USER_IDS = itertools.count(1)


@_ONCE_PER_TEST
@given(raw=code_texts)
def test_any_promo_code_text_is_redeemed_once_or_refused_changing_nothing(
    deps: PanelDeps, loop_thread: LoopThread, raw: str
) -> None:
    run = loop_thread.run
    user_id = next(_USER_IDS)  # a fresh user per example: examples do not see each other
    run(deps.pool.execute("INSERT INTO users (id, language) VALUES ($1, 'en')", user_id))
    try:
        redemption = run(promos.redeem(deps, user_id, raw))
    except promos.PromoError:
        assert promos.normalize_code(raw) != CODE
        assert run(_stored(deps.pool, user_id)) == (0, 0, 0)
        return
    assert promos.normalize_code(raw) == CODE and redemption.code == CODE
    assert run(_stored(deps.pool, user_id)) == (BONUS_KOP, 1, 1)
    with pytest.raises(promos.PromoAlreadyUsed):  # and only once
        run(promos.redeem(deps, user_id, raw))
    assert run(_stored(deps.pool, user_id)) == (BONUS_KOP, 1, 1)
    uses = run(deps.pool.fetchval("SELECT uses FROM promocodes WHERE code = $1", CODE))
    activations = run(deps.pool.fetchval("SELECT count(*) FROM promocode_activations"))
    assert uses == activations


_HUGE = st.integers(min_value=-(2**70), max_value=2**70)
# Around the limits of Postgres' integer and bigint columns.
_EDGES = st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1]).flatmap(
    lambda edge: st.integers(min_value=edge - 1, max_value=edge + 1)
)


@_ONCE_PER_TEST
@given(
    code=st.one_of(st.from_regex(r"\A[A-Z0-9][A-Z0-9_-]{2,31}\Z"), code_texts),
    kind=st.one_of(st.sampled_from(promos.KINDS), st.text(max_size=10)),
    value=st.one_of(st.integers(min_value=-5, max_value=promos.MAX_DAYS + 5), _HUGE, _EDGES),
    max_uses=st.one_of(st.none(), st.integers(min_value=-2, max_value=100), _HUGE, _EDGES),
    created_by=st.one_of(st.none(), st.integers(min_value=1, max_value=10**10), _HUGE, _EDGES),
)
def test_any_new_promo_is_stored_as_given_or_refused_in_a_sentence(
    deps: PanelDeps,
    loop_thread: LoopThread,
    code: str,
    kind: str,
    value: int,
    max_uses: int | None,
    created_by: int | None,
) -> None:
    run = loop_thread.run
    assume(promos.normalize_code(code) != CODE)  # the fixture's code exists already
    before = run(deps.pool.fetchval("SELECT count(*) FROM promocodes"))
    try:
        promo = run(promos.create_promo(deps.pool, code, kind, value, max_uses=max_uses,
                                        created_by=created_by, actor="9"))  # fmt: skip
    except promos.PromoInputError as exc:
        assert str(exc)  # a sentence for the CLI's one line
        assert run(deps.pool.fetchval("SELECT count(*) FROM promocodes")) == before
        return
    stored = (promo.kind, promo.value, promo.max_uses, promo.created_by)
    assert stored == (kind, value, max_uses, created_by)
    run(deps.pool.execute("DELETE FROM promocodes WHERE code = $1", promo.code))
