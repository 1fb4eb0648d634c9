"""Traffic limits: usage read from the panels in pages, kept on the rows, and one
notice per config at 90 % and at 100 % per period."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import msgspec
import pytest

from orbit.i18n import create_translator
from orbit.janitor.chores import traffic_buttons
from orbit.marzban import instances, provisioning
from orbit.marzban.provisioning import PanelDeps
from orbit.plans import PlanError, load_plans
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings
from orbit.subscriptions import traffic
from tests.marzban.conftest import Panels, add_user, pending_config
from tests.support.processes import ROOT

GB = 1024**3


async def _notices(db: asyncpg.Pool) -> list[tuple[int, str]]:
    rows = await db.fetch("SELECT chat_id, dedup_key FROM outbox WHERE kind = 'traffic' ORDER BY id")
    return [(r["chat_id"], r["dedup_key"]) for r in rows]


async def test_one_notice_at_90_and_at_100_percent_per_period(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    markup = traffic_buttons(create_translator())
    await add_user(db, 1, language="ru")
    await add_user(db, 2)
    limited = await pending_config(db, 1, "a", data_limit_bytes=10 * GB)
    limited = await provisioning.provision_config(deps, limited.id)
    free = await provisioning.provision_config(deps, (await pending_config(db, 2, "b")).id)
    registered.b.add_user_traffic(free.panel_username, 50 * GB)

    registered.a.add_user_traffic(limited.panel_username, 8 * GB)
    first = await traffic.read_usage(deps, markup, page_size=1)
    assert first.stored == 2 and first.notices == 0
    row = await db.fetchrow("SELECT usage_bytes, usage_read_at FROM configs WHERE id = $1", limited.id)
    assert row["usage_bytes"] == 8 * GB and row["usage_read_at"] is not None

    registered.a.add_user_traffic(limited.panel_username, GB + GB // 2)  # 9.5 of 10
    assert (await traffic.read_usage(deps, markup)).notices == 1
    assert (await traffic.read_usage(deps, markup)).notices == 0
    registered.a.add_user_traffic(limited.panel_username, GB)  # past the limit
    assert (await traffic.read_usage(deps, markup)).notices == 1
    assert (await traffic.read_usage(deps, markup)).notices == 0
    assert await _notices(db) == [
        (1, f"traffic:{limited.id}:0:90"),
        (1, f"traffic:{limited.id}:0:100"),
    ]  # the unlimited config's 50 GB never gives one
    text, markup_sent = await db.fetchrow(
        "SELECT text, reply_markup FROM outbox WHERE dedup_key = $1", f"traffic:{limited.id}:0:90"
    )
    assert "90%" in text and "трафик" in text  # the owner's language
    assert [b[0]["callback_data"] for b in markup_sent["inline_keyboard"]] == ["m:buy", "m:configs"]

    # The panel resets the user by its strategy: a new period, its own notices.
    instance = await instances.get_instance(db, "a")
    await deps.client(instance).reset_usage(limited.panel_username)
    assert (await traffic.read_usage(deps, markup)).notices == 0
    assert await db.fetchval("SELECT usage_period FROM configs WHERE id = $1", limited.id) == 1
    registered.a.add_user_traffic(limited.panel_username, 9 * GB + GB // 10)
    assert (await traffic.read_usage(deps, markup)).notices == 1
    assert (await _notices(db))[-1] == (1, f"traffic:{limited.id}:1:90")


async def test_a_panel_that_is_down_keeps_the_last_usage_and_the_others_are_read(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    markup = traffic_buttons(create_translator())
    await add_user(db, 1)
    on_a = await provisioning.provision_config(deps, (await pending_config(db, 1, "a")).id)
    on_b = await provisioning.provision_config(deps, (await pending_config(db, 1, "b")).id)
    registered.a.add_user_traffic(on_a.panel_username, 3 * GB)
    await traffic.read_usage(deps, markup)
    await registered.a.down()
    registered.b.add_user_traffic(on_b.panel_username, GB)
    done = await traffic.read_usage(deps, markup)
    assert done.failed == ["a"] and done.stored == 1
    usage = dict(await db.fetch("SELECT id, usage_bytes FROM configs"))
    assert usage == {on_a.id: 3 * GB, on_b.id: GB}


async def test_the_plans_limit_and_reset_strategy_reach_the_panel(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, 1)
    config = await pending_config(db, 1, "a", data_limit_bytes=5 * GB)
    await db.execute("UPDATE configs SET data_limit_reset_strategy = 'month' WHERE id = $1", config.id)
    config = await provisioning.provision_config(deps, config.id)
    user = registered.a.user(config.panel_username)
    assert user["data_limit"] == 5 * GB and user["data_limit_reset_strategy"] == "month"
    # Drift repair puts back a limit removed on the panel by hand.
    registered.a.set_user(config.panel_username, data_limit=None)
    await db.execute("UPDATE configs SET needs_sync = true WHERE id = $1", config.id)
    await provisioning.sync_config(deps, config.id)
    assert registered.a.user(config.panel_username)["data_limit"] == 5 * GB


def test_a_plan_carries_a_reset_strategy_by_marzbans_names(tmp_path: Path, settings: Settings) -> None:
    plans = msgspec.json.decode((ROOT / "plans.json").read_bytes())
    plans["plans"][0].update(data_limit_gb=50, data_limit_reset_strategy="month")
    path = tmp_path / "plans.json"
    path.write_bytes(msgspec.json.encode(plans))
    month = load_plans(settings, path).get("1m")
    assert month is not None and month.data_limit_reset_strategy == "month"
    assert month.data_limit_bytes == 50 * GB
    plans["plans"][0]["data_limit_reset_strategy"] = "monthly"
    path.write_bytes(msgspec.json.encode(plans))
    with pytest.raises(PlanError, match="data_limit_reset_strategy"):
        load_plans(settings, path)


async def test_the_panels_own_reset_by_strategy_starts_a_new_period(
    db: asyncpg.Pool, deps: PanelDeps
) -> None:
    from orbit import clock
    from tests.marzban.conftest import instance_for
    from tests.marzban.test_expiry import Shift

    await clock.reset(db)
    shift = Shift()
    markup = traffic_buttons(create_translator())
    async with MarzbanEmulator(clock=shift) as panel:
        await instances.insert_instance(db, instance_for("d", panel))
        await add_user(db, 1)
        config = await pending_config(db, 1, "d", data_limit_bytes=10 * GB)
        await db.execute("UPDATE configs SET data_limit_reset_strategy = 'day' WHERE id = $1", config.id)
        config = await provisioning.provision_config(deps, config.id)
        panel.add_user_traffic(config.panel_username, 9 * GB + GB // 2)
        assert (await traffic.read_usage(deps, markup)).notices == 1
        # A day later Marzban zeroes the user's usage by itself (its strategy).
        await clock.advance(db, 86400 + 60)
        shift.offset += 86400 + 60
        assert (await traffic.read_usage(deps, markup)).notices == 0
        assert panel.user(config.panel_username)["used_traffic"] == 0
        panel.add_user_traffic(config.panel_username, 9 * GB + GB // 2)
        assert (await traffic.read_usage(deps, markup)).notices == 1
    assert [key for _, key in await _notices(db)] == [
        f"traffic:{config.id}:0:90",
        f"traffic:{config.id}:1:90",
    ]


@pytest.mark.parametrize("reported", [-1, 2**70])
async def test_a_user_with_absurd_traffic_on_a_page_does_not_stop_the_page(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels, reported: int
) -> None:
    """Panel answers are outside input: one user's impossible byte count is skipped (its
    stored usage kept, no period started) and the rest of the page is still stored."""
    markup = traffic_buttons(create_translator())
    await add_user(db, 1)
    mangled = await provisioning.provision_config(deps, (await pending_config(db, 1, "a")).id)
    fine = await provisioning.provision_config(deps, (await pending_config(db, 1, "a")).id)
    registered.a.add_user_traffic(mangled.panel_username, GB)
    await traffic.read_usage(deps, markup)
    registered.a.set_user(mangled.panel_username, used_traffic=reported)
    registered.a.add_user_traffic(fine.panel_username, 2 * GB)

    done = await traffic.read_usage(deps, markup)
    assert done.failed == [] and done.stored == 1
    rows = {r["id"]: (r["usage_bytes"], r["usage_period"]) for r in await db.fetch("SELECT * FROM configs")}
    assert rows == {mangled.id: (GB, 0), fine.id: (2 * GB, 0)}
