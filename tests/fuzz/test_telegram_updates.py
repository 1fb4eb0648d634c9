"""Fuzzing the bot with Telegram updates, through its real dispatcher.

Random data for every callback prefix the routers register, any text in every
FSM state (each entered the way a user enters it), `/start` payloads, odd and
huge Unicode in names and texts, typed top-up amounts and promo codes. The bot
runs in-process (`tests/support/bot_harness.py`) against real Postgres, Redis,
the Telegram emulator and a Marzban emulator. After each example:

- no exception escaped a handler (the error handler counted none);
- every button press was answered;
- a press answered "out of date" changed nothing stored;
- `orbit audit` is clean, every payment's amount lies within the top-up limits,
  and no promo code was used more often than it allows or twice by one user.

Examples per test: `HYPOTHESIS_PROFILE=fuzz` (`make fuzz`) runs many more than
the default profile, which keeps the normal test run short.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from aiogram.filters import StateFilter
from aiogram.fsm.state import State
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from orbit import keys
from orbit.bot.routers import get_routers
from orbit.connections import create_pool
from orbit.payments.audit import audit
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings
from orbit.users.registration import parse_referrer
from tests.support.bot_harness import BotHarness, button_classes, running_bot
from tests.support.loop_thread import LoopThread

pytestmark = pytest.mark.fuzz

# `make fuzz` sets HYPOTHESIS_PROFILE=fuzz: every test then runs FUZZ_SCALE times its examples.
FUZZ_SCALE = int(os.environ.get("FUZZ_SCALE", "25")) if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else 1


def bounded(examples: int) -> settings:
    return settings(
        max_examples=examples * FUZZ_SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


USER, ADMIN, REFERRER = 6_000_001, 6_000_002, 6_000_003
STALE = "This button is out of date. Open the menu again: /menu"
PROMOS = {"GIFT": ("balance", 10_000, 1), "DAYS": ("days", 3, 5), "OPEN": ("balance", 500, None)}
CONFIRMS = ("admadj:", "admbc:send:")  # admin confirmations that store what was typed
TABLES = ("payments", "ledger", "purchases", "configs", "promocode_activations", "referrals", "outbox")

# --- strategies -------------------------------------------------------------------------

# Odd Unicode: controls and NUL, right-to-left marks, combining marks, zero-width
# joiners, emoji, CJK, HTML, Fluent syntax. Lone surrogates cannot travel as JSON
# from the emulator (msgspec refuses to encode them), so they are left out here;
# orbit.text.clean_text covers them (tests/test_text.py).
ODD = st.sampled_from(
    ["\x00", "\u202e", "\u200d", "\u0301", "\ufeff", "\n", "\t", "\x1b[31m", "<b>", "</i>", "&amp;",
     "{ $x }", "%s", "'", '"', "\\", ":", "🧑‍🚀", "𝕏", "漢字", "ـ", "\u2028"]
)  # fmt: skip
CHARS = st.characters(blacklist_categories=("Cs",))
FRAGMENT = ODD | st.text(CHARS, min_size=1, max_size=12)
TEXT = (
    st.lists(FRAGMENT, min_size=1, max_size=12).map("".join)
    | st.builds(lambda s, n: s * n, FRAGMENT, st.integers(1, 800))  # huge, up to ~10k chars
)
NUMBERS = st.sampled_from(
    [0, 1, -1, 49, 50, 100_000, 100_001, 2**31, 2**63 - 1, 2**63, 2**64, 10**30]
) | st.integers()
FIELD = (
    NUMBERS.map(str)
    | st.sampled_from(["", "0", "1", "true", "false", "main", "sub", "buy", "stars", "ton", "cryptobot",
                       "show", "ban", "unban", "adjust", "new", "delete", "erase", "1m", "12m", "trial",
                       "home", "user", "promos", "inst", "bc", "send", "progress", "en", "ru", " 1", "1.0",
                       "0x10", "1_000", "١٢"])
    | st.text(max_size=12)
)  # fmt: skip


def _fit(data: str) -> str:
    """Telegram carries at most 64 bytes of callback data."""
    while len(data.encode()) > 64:
        data = data[:-1]
    return data


@st.composite
def callback_data(draw: st.DrawFn) -> str:
    cls = draw(st.sampled_from(button_classes()))
    fields = len(cls.model_fields)
    count = draw(st.sampled_from([fields, fields, fields, max(0, fields - 1), fields + 1]))
    parts = [draw(FIELD) for _ in range(count)]
    return _fit(":".join([cls.__prefix__, *parts]))


AMOUNTS = (
    NUMBERS.map(str)
    | st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.from_regex(r"\A[ +\-]?[0-9]{0,9}([.,][0-9]{0,4})?( ?(₽|rub|RUB|р))?\Z")
    | st.sampled_from(["1e3", "50", "100000", "99.999", "１００", "٥٠", "∞", "NaN", "-0", "0050"])
    | TEXT
)
CODES = (
    st.sampled_from(list(PROMOS)).flatmap(
        lambda c: st.sampled_from([c, c.lower(), f"  {c} ", c + "\x00", c + "\u200d", c[:-1], c * 2])
    )
    | st.from_regex(r"\A[A-Z0-9_\-]{1,40}\Z")
    | TEXT
)


# --- the bot and its world ---------------------------------------------------------------


@dataclass
class Flow:
    """How a user gets into an FSM state: presses (callback data) and texts, in order."""

    user: int
    steps: tuple[tuple[str, str], ...]  # ("press", data) or ("send", text)


def flows(config_id: int) -> dict[State, Flow]:
    from orbit.bot.routers.admin import AdminFlow
    from orbit.bot.routers.balance import EnterAmount
    from orbit.bot.routers.configs import RenameConfig
    from orbit.bot.routers.promo import EnterPromo

    adjust = (("press", f"admu:adjust:{USER}"),)
    broadcast = (("press", "adm:bc"), ("press", "admbc:aud:all:0"))
    return {
        EnterPromo.code: Flow(USER, (("press", "m:promo"),)),
        EnterAmount.amount: Flow(USER, (("press", "tu:0"),)),
        RenameConfig.name: Flow(USER, (("press", f"cfg:rename:{config_id}"),)),
        AdminFlow.user_query: Flow(ADMIN, (("press", "adm:user"),)),
        AdminFlow.adjust_amount: Flow(ADMIN, adjust),
        AdminFlow.adjust_reason: Flow(ADMIN, (*adjust, ("send", "+1"))),
        AdminFlow.adjust_confirm: Flow(ADMIN, (*adjust, ("send", "+1"), ("send", "fuzz"))),
        AdminFlow.promo_new: Flow(ADMIN, (("press", "adm:promo_new"),)),
        AdminFlow.broadcast_audience: Flow(ADMIN, (("press", "adm:bc"),)),
        AdminFlow.broadcast_text: Flow(ADMIN, broadcast),
        AdminFlow.broadcast_button: Flow(ADMIN, (*broadcast, ("send", "news"))),
        AdminFlow.broadcast_confirm: Flow(
            ADMIN, (*broadcast, ("send", "news"), ("press", "admbc:nobutton::0"))
        ),
        AdminFlow.maintenance_message: Flow(ADMIN, (("press", "adm:maint"), ("press", "admmt:on"))),
        AdminFlow.node_exclude: Flow(ADMIN, (("press", "adm:inst"), ("press", "admn:exclude:p1:0"))),
    }


def registered_states() -> set[State]:
    """Every state a handler of the routers filters on."""
    found: set[State] = set()
    for top in get_routers():
        for router in top.chain_tail:
            for observer in router.observers.values():
                for handler in observer.handlers:
                    for f in handler.filters or ():
                        if isinstance(f.callback, StateFilter):
                            for state in f.callback.states:
                                found.update(state.__all_states__ if hasattr(state, "__all_states__")
                                             else [state])
    return {s for s in found if isinstance(s, State)}


class World:
    def __init__(self, bot: BotHarness, pool: asyncpg.Pool, limits: tuple[int, int]) -> None:
        self.bot = bot
        self.pool = pool
        self.min_kop, self.max_kop = limits
        self.config_id = 0
        self.next_user = 7_000_000
        self.errors_seen: list[str] = []
        self.examples = 0  # run by the current test (make fuzz prints it)

    async def snapshot(self) -> tuple[Any, ...]:
        counts = ", ".join(f"(SELECT count(*) FROM {t})" for t in TABLES)
        row = await self.pool.fetchrow(
            f"SELECT {counts}, (SELECT coalesce(sum(balance_kop), 0) FROM users),"
            " (SELECT count(*) FROM users WHERE is_banned), (SELECT coalesce(sum(uses), 0) FROM promocodes)"
        )
        return tuple(row)

    async def press(self, user: int, data: str) -> str | None:
        before = await self.snapshot()
        answer = await self.bot.press(user, data)
        assert answer.answered, f"press {data!r} was never answered"
        if answer.text == STALE:
            assert await self.snapshot() == before, f"an out-of-date press {data!r} changed rows"
        return answer.text

    async def check(self) -> None:
        # Counted since the previous check, so one failing example does not fail the rest.
        errors = self.bot.handler_errors()
        new, self.errors_seen = errors != self.errors_seen, errors
        assert not new, f"an exception escaped a handler: {errors}"
        async with self.pool.acquire() as conn:
            assert await audit(conn) == []
            outside = await conn.fetchval(
                "SELECT count(*) FROM payments WHERE amount_kop NOT BETWEEN $1 AND $2",
                self.min_kop, self.max_kop,
            )
            assert outside == 0, "a payment outside the top-up limits was stored"
            overused = await conn.fetchval(
                "SELECT count(*) FROM promocodes p WHERE uses > coalesce(max_uses, uses)"
                " OR uses <> (SELECT count(*) FROM promocode_activations a WHERE a.code = p.code)"
            )
            assert overused == 0

    async def confirm_button(self, user: int) -> str | None:
        """The confirmation on the bot's last message, if it shows one."""
        shown = (await self.bot.control.messages(user))[-1]
        for row in shown.buttons:
            for button in row:
                if (button.callback_data or "").startswith(CONFIRMS):
                    return button.callback_data
        return None

    async def leave(self, user: int) -> None:
        await self.bot.send(user, "/menu")
        await self.bot.dp["redis"].delete(keys.MAINTENANCE)  # a maintenance flow may have switched it on

    async def new_user(self) -> int:
        self.next_user += 1
        return self.next_user


async def _setup(stack: AsyncExitStack, base: Settings, redis_url: str) -> World:
    pool = await create_pool(base, max_size=6)
    stack.push_async_callback(pool.close)
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
    )
    await pool.execute(f"TRUNCATE {', '.join(t['tablename'] for t in tables)} RESTART IDENTITY CASCADE")
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    stack.push_async_callback(redis.aclose)
    panel = MarzbanEmulator()
    url = await panel.start()
    stack.push_async_callback(panel.stop)
    await pool.execute(
        "INSERT INTO marzban_instances (id, name, base_url, username, password)"
        " VALUES ('p1', 'Panel 1', $1, 'admin', 'admin')", url,
    )  # fmt: skip
    http = await stack.enter_async_context(aiohttp.ClientSession())
    # One user opens an invoice per example: the cap on pending payments (tested on its
    # own in tests/e2e/test_budgets.py) would refuse all but the first three.
    settings_ = msgspec.structs.replace(
        base, admin_ids=(ADMIN,), rate_limit_scale=0.0001, max_pending_payments=1_000_000
    )
    bot = await stack.enter_async_context(running_bot(settings_, pool, redis, http, telegram_limits=False))
    world = World(bot, pool, (settings_.topup_min_rub * 100, settings_.topup_max_rub * 100))
    for user, name in ((USER, "User"), (ADMIN, "Admin"), (REFERRER, "Ref")):
        await bot.send(user, "/start", first_name=name)
    for code, (kind, value, max_uses) in PROMOS.items():
        await pool.execute(
            "INSERT INTO promocodes (code, kind, value, max_uses) VALUES ($1, $2, $3, $4)",
            code, kind, value, max_uses,
        )  # fmt: skip
    await pool.execute(
        "UPDATE users SET subscription_until = now() + interval '30 days' WHERE id = $1", USER
    )
    await bot.press(USER, "cfg:new:0")
    world.config_id = await pool.fetchval("SELECT id FROM configs WHERE user_id = $1", USER)
    assert world.config_id, "the setup could not create a config"
    await world.check()
    return world


@pytest.fixture(scope="module")
def world(base_settings: Settings, redis_url: str) -> Iterator[tuple[LoopThread, World]]:
    runner = LoopThread()
    stack = AsyncExitStack()
    try:
        yield runner, runner.run(_setup(stack, base_settings, redis_url))
    finally:
        runner.run(stack.aclose())
        runner.close()


Run = tuple[LoopThread, World]


# --- the properties -----------------------------------------------------------------------


def test_every_state_has_a_way_in() -> None:
    # A state added without an entry here would go unfuzzed.
    assert set(flows(0)) == registered_states()


def test_random_button_data(world: Run) -> None:
    runner, w = world

    @bounded(120)
    @given(callback_data(), st.sampled_from([USER, ADMIN]))
    def check(data: str, user: int) -> None:
        async def one() -> None:
            await w.press(user, data)
            await w.check()
            await w.leave(user)  # a press may have entered a flow

        runner.run(one())
        w.examples += 1

    w.examples = 0
    check()
    print(f"{w.examples} examples")  # noqa: T201 (shown by make fuzz: -rP)


def test_any_text_in_every_state(world: Run) -> None:
    runner, w = world
    entries = flows(w.config_id)
    storing = storing_states()

    @bounded(60)
    @given(st.sampled_from(sorted(entries, key=lambda s: s.state or "")), TEXT)
    def check(state: State, text: str) -> None:
        flow = entries[state]

        async def one() -> None:
            for kind, value in flow.steps:
                if kind == "press":
                    assert await w.press(flow.user, value) != STALE, value
                else:
                    await w.bot.send(flow.user, value)
            before = await w.snapshot()
            await w.bot.send(flow.user, text)
            await w.check()
            if state not in storing:
                assert await w.snapshot() == before, f"text in {state.state} stored something"
            # What the text led to is confirmed too: the stored adjustment or broadcast
            # carries the typed text.
            confirm = await w.confirm_button(flow.user)
            if confirm is not None:
                await w.press(flow.user, confirm)
                await w.check()
            await w.leave(flow.user)

        runner.run(one())
        w.examples += 1

    w.examples = 0
    check()
    print(f"{w.examples} examples")  # noqa: T201 (shown by make fuzz: -rP)


def storing_states() -> set[State]:
    """The states whose text input may store something when it is valid: a config's new
    name, a promo code redeemed, a promo code created. Other flows only move on."""
    from orbit.bot.routers.admin import AdminFlow
    from orbit.bot.routers.configs import RenameConfig
    from orbit.bot.routers.promo import EnterPromo

    # Maintenance mode (a Redis key) and an excluded node (a column) are not counted by
    # the snapshot; they are stored, and `leave` switches maintenance off again.
    return {RenameConfig.name, EnterPromo.code, AdminFlow.promo_new, AdminFlow.maintenance_message}


def test_start_payloads_and_odd_names(world: Run) -> None:
    runner, w = world
    payloads = (
        st.none()
        | st.sampled_from([f"ref_{REFERRER}", f"ref_{USER}", "ref_0", "ref_-1", f"ref_{2**63}", "ref_"])
        | st.from_regex(r"\Aref_[0-9]{1,25}\Z")
        | TEXT
    )
    names = st.lists(FRAGMENT, min_size=1, max_size=30).map("".join)

    @bounded(40)
    @given(payloads, names, st.none() | names, st.sampled_from([None, "en", "ru", "zz", "pt-br", "\x00"]))
    def check(payload: str | None, first_name: str, username: str | None, language: str | None) -> None:
        async def one() -> None:
            user = await w.new_user()
            profile: dict[str, Any] = {"first_name": first_name}
            if username is not None:
                profile["username"] = username
            if language is not None:
                profile["language_code"] = language
            text = "/start" if payload is None else f"/start {payload}"
            referrals = await w.pool.fetchval("SELECT count(*) FROM referrals")
            referrer = parse_referrer(payload)
            invited = referrer is not None and referrer != user and bool(
                await w.pool.fetchval("SELECT count(*) FROM users WHERE id = $1", referrer)
            )
            await w.bot.send(user, text[:4096], **profile)
            await w.check()
            row = await w.pool.fetchrow("SELECT first_name, username FROM users WHERE id = $1", user)
            assert row is not None, "a /start did not register its user"
            added = await w.pool.fetchval("SELECT count(*) FROM referrals") - referrals
            assert added == (1 if invited else 0)
            await w.bot.send(user, text[:4096], **profile)  # twice: still one user, one referral
            assert await w.pool.fetchval("SELECT count(*) FROM referrals") - referrals == added

        runner.run(one())
        w.examples += 1

    w.examples = 0
    check()
    print(f"{w.examples} examples")  # noqa: T201 (shown by make fuzz: -rP)


def test_typed_top_up_amounts(world: Run) -> None:
    runner, w = world

    @bounded(40)
    @given(AMOUNTS)
    def check(amount: str) -> None:
        async def one() -> None:
            await w.press(USER, "tu:0")
            payments = await w.pool.fetchval("SELECT count(*) FROM payments")
            await w.bot.send(USER, amount[:4096])
            shown = (await w.bot.control.messages(USER))[-1]
            stars = [b.callback_data for row in shown.buttons for b in row
                     if (b.callback_data or "").startswith("pm:stars:")]
            if stars:  # the amount was taken: paying with Stars stores a payment in range
                assert stars[0] is not None
                await w.press(USER, stars[0])
            await w.check()
            stored = await w.pool.fetchval("SELECT count(*) FROM payments") - payments
            assert stored == (1 if stars else 0)
            await w.leave(USER)

        runner.run(one())
        w.examples += 1

    w.examples = 0
    check()
    print(f"{w.examples} examples")  # noqa: T201 (shown by make fuzz: -rP)


def test_promo_codes(world: Run) -> None:
    runner, w = world

    @bounded(40)
    @given(CODES, st.booleans())
    def check(code: str, fresh_user: bool) -> None:
        async def one() -> None:
            user = USER
            if fresh_user:
                user = await w.new_user()
                await w.bot.send(user, "/start", first_name="P")
            await w.press(user, "m:promo")
            before = await w.pool.fetchval(
                "SELECT coalesce(sum(uses), 0) FROM promocodes"
            )
            await w.bot.send(user, code[:4096])
            await w.check()
            used = await w.pool.fetchval("SELECT coalesce(sum(uses), 0) FROM promocodes") - before
            # A code is recognised only as itself (any case, trimmed), once per user.
            name = code.strip().upper()
            if name not in PROMOS:
                assert used == 0, f"{code!r} redeemed a code"
            await w.leave(user)

        runner.run(one())
        w.examples += 1

    w.examples = 0
    check()
    print(f"{w.examples} examples")  # noqa: T201 (shown by make fuzz: -rP)
