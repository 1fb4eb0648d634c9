"""Provisioning a config's panel user, and changing it, against emulated panels."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec
import pytest

from orbit import keys
from orbit.configs import queries as configs_q
from orbit.marzban import instances
from orbit.marzban.client import MarzbanClient
from orbit.marzban.errors import ConfigNotFound, PanelUnavailable
from orbit.marzban.models import NewUser
from orbit.marzban.provisioning import (
    PanelDeps,
    delete_panel_user,
    new_panel_username,
    process_removals,
    provision_config,
    read_usage,
    set_enabled,
    set_expiry,
    sync_config,
)
from orbit.sandbox.marzban import USERNAME_RE
from orbit.settings import Settings
from tests.marzban.conftest import (
    Panels,
    add_user,
    instance_for,
    pending_config,
    refresh_scores,
)


def test_new_panel_usernames_are_unique_and_valid_on_marzban() -> None:
    names = {new_panel_username(uid) for uid in (1, 7_000_000_000, 2**53) for _ in range(300)}
    assert len(names) == 900
    for name in names:
        assert 3 <= len(name) <= 32 and USERNAME_RE.match(name), name


async def _removals(db: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await db.fetch("SELECT instance_id, panel_username FROM panel_removals ORDER BY 1")
    return [(r["instance_id"], r["panel_username"]) for r in rows]


async def test_provision_creates_a_vless_vmess_user_with_the_subscription_end(
    deps: PanelDeps, registered: Panels
) -> None:
    until = await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a", data_limit_bytes=50 * 1024**3)
    record = await provision_config(deps, config.id)

    assert record.status == "active" and record.instance_id == "a"
    assert record.subscription_url and record.subscription_url.startswith(f"{registered.a.base_url}/sub/")
    user = registered.a.user(config.panel_username)
    assert user is not None
    assert set(user["proxies"]) == {"vless", "vmess"}
    assert user["inbounds"] == {
        "vless": ["VLESS TCP REALITY", "VLESS Websocket"],
        "vmess": ["VMess TCP", "VMess Websocket"],
    }
    assert user["links"]
    assert user["expire"] == int(until.timestamp())
    assert user["data_limit"] == 50 * 1024**3
    assert "max_ips=2" in user["note"]
    async with deps.http.get(record.subscription_url) as resp:  # the link works
        assert resp.status == 200
    assert await _removals(deps.pool) == []
    # Again: the row is placed already; nothing is asked of the panel.
    registered.a.clear_requests()
    again = await provision_config(deps, config.id)
    assert again.id == record.id and again.instance_id == "a"
    assert registered.a.requests == []


async def test_a_user_already_on_the_panel_is_adopted_not_duplicated(
    deps: PanelDeps, registered: Panels
) -> None:
    until = await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    client = MarzbanClient(deps.http, deps.redis, instance_for("a", registered.a))
    await client.create_user(
        NewUser(
            username=config.panel_username,
            proxies={"vless": {}},
            inbounds={"vless": ["VLESS TCP REALITY"]},
            expire=int(time.time()) + 60,
        )
    )
    registered.a.clear_requests()
    record = await provision_config(deps, config.id)
    assert record.status == "active"
    assert registered.a.count("POST", "/api/user") == 0
    assert registered.a.user(config.panel_username)["expire"] == int(until.timestamp())  # type: ignore[index]
    assert registered.holders(config.panel_username) == ["a"]


async def test_concurrent_provisioning_of_one_config_makes_one_user(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    registered.a.slow(0.05)
    results = await asyncio.gather(*(provision_config(deps, config.id) for _ in range(4)))
    assert {r.instance_id for r in results} == {"a"}
    assert registered.a.count("POST", "/api/user") == 1
    assert registered.holders(config.panel_username) == ["a"]


async def test_a_create_that_times_out_after_the_panel_made_the_user_leaves_no_duplicate(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    await refresh_scores(deps)
    config = await pending_config(deps.pool, 1, "a")
    registered.a.hang_after_create(3.0)  # made, then no answer within our timeout
    record = await provision_config(deps, config.id)
    assert record.status == "active" and record.instance_id == "a"
    assert registered.a.count("POST", "/api/user") == 1
    assert registered.holders(config.panel_username) == ["a"]
    assert await _removals(deps.pool) == []


async def test_a_panel_lost_after_it_made_the_user_is_cleaned_up_once_it_returns(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    registered.c.add_users(3)
    await refresh_scores(deps)  # a and b empty: a, then b, then c
    config = await pending_config(deps.pool, 1, "a")
    registered.a.hang_after_create(30.0)
    task = asyncio.create_task(provision_config(deps, config.id))
    while registered.a.user(config.panel_username) is None:
        await asyncio.sleep(0.01)
    await registered.a.down()  # the answer never comes and the panel is gone
    record = await task
    assert record.instance_id == "b"
    assert registered.holders(config.panel_username) == ["a", "b"]
    assert await _removals(deps.pool) == [("a", config.panel_username)]
    # While a is down the removal waits; when it is back the duplicate goes.
    assert (await process_removals(deps)).failed == 1
    await registered.a.up()
    assert (await process_removals(deps)).removed == 1
    assert registered.holders(config.panel_username) == ["b"]
    assert await _removals(deps.pool) == []


async def test_a_panel_down_during_creation_falls_over_to_the_next_and_pokes(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    registered.b.add_users(1)
    registered.c.add_users(5)
    await refresh_scores(deps)  # a < b < c
    config = await pending_config(deps.pool, 1, "a")
    await registered.a.down()
    pubsub = deps.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.channel(deps.redis, keys.BALANCER_POKE_CHANNEL))
    try:
        record = await provision_config(deps, config.id)
        poke = None
        deadline = time.monotonic() + 2
        while poke is None and time.monotonic() < deadline:
            poke = await pubsub.get_message(timeout=0.2)
    finally:
        await pubsub.aclose()
    assert record.instance_id == "b" and record.status == "active"
    assert record.subscription_url and record.subscription_url.startswith(str(registered.b.base_url))
    assert poke is not None and poke["channel"] == keys.channel(deps.redis, keys.BALANCER_POKE_CHANNEL)
    assert registered.holders(config.panel_username) == ["b"]


async def test_every_panel_down_leaves_the_row_pending_and_retry_works(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    await refresh_scores(deps)
    config = await pending_config(deps.pool, 1, "a")
    for _, panel in registered:
        await panel.down()
    with pytest.raises(PanelUnavailable):
        await provision_config(deps, config.id)
    row = await configs_q.get_config(deps.pool, config.id)
    assert row is not None and row.status == "pending" and row.instance_id == "a"
    assert row.last_error and "cannot connect" in row.last_error
    await registered.c.up()
    record = await provision_config(deps, config.id)
    assert record.instance_id == "c"
    assert registered.holders(config.panel_username) == ["c"]


async def test_expiry_enable_usage_and_delete(deps: PanelDeps, registered: Panels) -> None:
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    await provision_config(deps, config.id)
    name = config.panel_username

    later = (await deps.pool.fetchval("SELECT now() + interval '90 days'")).replace(microsecond=0)
    await set_expiry(deps, config.id, later)
    assert registered.a.user(name)["expire"] == int(later.timestamp())  # type: ignore[index]
    await set_expiry(deps, config.id, None)
    assert registered.a.user(name)["expire"] is None  # type: ignore[index]

    record = await set_enabled(deps, config.id, False)
    assert record.status == "disabled"
    assert registered.a.user(name)["status"] == "disabled"  # type: ignore[index]
    await set_enabled(deps, config.id, True)
    assert registered.a.user(name)["status"] == "active"  # type: ignore[index]

    registered.a.add_user_traffic(name, 3000, node_id=registered.a.nodes()[0]["id"])
    usage = await read_usage(deps, config.id)
    assert usage.used_traffic == 3000 and usage.status == "active"
    assert usage.expire_at is None and usage.online_at is not None

    assert await delete_panel_user(deps, config.id) is True
    assert registered.a.user(name) is None
    row = await configs_q.get_config(deps.pool, config.id)
    assert row is not None and row.status == "deleted" and row.deleted_at is not None
    assert await delete_panel_user(deps, config.id) is True  # a 404 counts as done
    with pytest.raises(ConfigNotFound):
        await set_expiry(deps, config.id, later)


async def test_a_panel_that_cannot_be_told_marks_the_row_and_deletion_is_queued(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    await provision_config(deps, config.id)
    await registered.a.down()
    with pytest.raises(PanelUnavailable):
        await set_expiry(deps, config.id, None)
    row = await configs_q.get_config(deps.pool, config.id)
    assert row is not None and row.needs_sync and "set expiry" in (row.last_error or "")
    assert await delete_panel_user(deps, config.id) is False
    assert await _removals(deps.pool) == [("a", config.panel_username)]
    await registered.a.up()
    assert (await process_removals(deps)).removed == 1
    assert registered.a.user(config.panel_username) is None


async def test_sync_recreates_a_user_the_panel_lost(deps: PanelDeps, registered: Panels) -> None:
    until = await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    await provision_config(deps, config.id)
    await set_enabled(deps, config.id, False)
    registered.a.reset()  # the panel lost everything
    record = await sync_config(deps, config.id)
    user = registered.a.user(config.panel_username)
    assert user is not None and user["status"] == "disabled"
    assert user["expire"] == int(until.timestamp())
    assert not record.needs_sync


async def test_usernames_in_urls_are_escaped(deps: PanelDeps, registered: Panels) -> None:
    client = MarzbanClient(deps.http, deps.redis, instance_for("a", registered.a))
    await client.create_user(
        NewUser(username="mail@x.y", proxies={"vmess": {}}, inbounds={"vmess": ["VMess TCP"]})
    )
    assert (await client.get_user("mail@x.y")).username == "mail@x.y"
    assert registered.a.requests[-1].path == "/api/user/mail@x.y"


async def test_a_disabled_provisional_instance_is_skipped(deps: PanelDeps, registered: Panels) -> None:
    await add_user(deps.pool, 1)
    await refresh_scores(deps)
    await instances.set_active(deps.pool, "a", False)  # the scores still name it
    config = await pending_config(deps.pool, 1, "a")
    record = await provision_config(deps, config.id)
    assert record.instance_id in ("b", "c")
    assert registered.a.count("POST", "/api/user") == 0
    assert registered.holders(config.panel_username) == [record.instance_id]


async def test_legacy_settings_become_instance_s001_once(
    db: asyncpg.Pool, panels: Panels, marzban_settings: Settings
) -> None:
    legacy = msgspec.structs.replace(
        marzban_settings,
        s001_base_url=f"{panels.a.base_url}/",
        s001_marzban_username="admin",
        s001_marzban_password="admin",
    )
    assert await instances.ensure_legacy_instance(db, legacy) is True
    await instances.update_instance(db, "s001", priority=4)
    assert await instances.ensure_legacy_instance(db, legacy) is False  # never overwritten
    row = await instances.get_instance(db, "s001")
    assert row is not None and row.base_url == panels.a.base_url and row.priority == 4
    partial = msgspec.structs.replace(marzban_settings, s001_base_url="http://x")
    assert await instances.ensure_legacy_instance(db, partial) is False
