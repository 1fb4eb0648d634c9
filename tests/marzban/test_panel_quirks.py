"""What a real Marzban v0.8.4 panel does that Orbit once did not expect (issue 11),
each shown through the emulator taught that behaviour."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest

from orbit import keys
from orbit.balancer.process import balance
from orbit.cli.main import build_parser
from orbit.i18n import create_translator
from orbit.marzban import instances
from orbit.marzban.drain import drain_instance
from orbit.marzban.instances import Instance
from orbit.marzban.provisioning import (
    PanelDeps,
    delete_panel_user,
    process_removals,
    provision_config,
    sync_config,
)
from orbit.marzban.scoring import GIB
from orbit.plans import load_plans
from orbit.sandbox.marzban import DEFAULT_INBOUNDS, Inbound, MarzbanEmulator
from orbit.subscriptions.panels import purchase_plan
from tests.marzban.conftest import Panels, add_user, instance_for, pending_config, refresh_scores
from tests.support.journey import fund

RANGE_INBOUND = Inbound(tag="VLESS TCP range", protocol="vless", network="tcp", port="20000-20010")


async def _register(deps: PanelDeps, instance_id: str, panel: MarzbanEmulator, **fields: object) -> None:
    assert await instances.insert_instance(deps.pool, instance_for(instance_id, panel, **fields))


@pytest.fixture
async def range_panel() -> AsyncIterator[MarzbanEmulator]:
    async with MarzbanEmulator(inbounds=[*DEFAULT_INBOUNDS, RANGE_INBOUND]) as panel:
        yield panel


# -- 1. port-range inbounds ----------------------------------------------------------------


async def test_a_port_range_inbound_does_not_break_creates(
    deps: PanelDeps, range_panel: MarzbanEmulator
) -> None:
    await _register(deps, "r", range_panel)
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "r")
    record = await provision_config(deps, config.id)
    assert record.status == "active" and record.instance_id == "r"
    user = range_panel.user(config.panel_username)
    assert user is not None and "VLESS TCP range" in user["inbounds"]["vless"]


async def test_a_panel_whose_inbounds_cannot_be_read_is_not_healthy(
    deps: PanelDeps, registered: Panels
) -> None:
    registered.a.fail(500, path="/api/inbounds")
    result = await refresh_scores(deps)
    assert "a" in result.down and not [m for m in result.members if m.startswith("a:")]
    registered.a.clear_failures()
    assert "a" in (await refresh_scores(deps)).up


# -- 5. a panel's own core serves every user ------------------------------------------------


async def test_a_panel_whose_nodes_all_fail_is_still_scored_by_its_core(
    deps: PanelDeps, registered: Panels
) -> None:
    de, nl = (n["id"] for n in registered.a.nodes())
    registered.a.set_node(de, status="error")
    registered.a.set_node(nl, status="disabled")
    result = await refresh_scores(deps)
    assert [m for m in result.members if m.startswith("a:")] == ["a:core"]
    await instances.exclude_node(deps.pool, "b", "b-fi")
    result = await refresh_scores(deps)
    assert [m for m in result.members if m.startswith("b:")] == ["b:core"]


async def test_a_node_reconnecting_after_a_settings_change_keeps_counting(
    deps: PanelDeps, registered: Panels
) -> None:
    (fi,) = (n["id"] for n in registered.b.nodes())
    registered.b.set_node(fi, status="connecting")  # e.g. its usage_coefficient was changed
    result = await refresh_scores(deps)
    assert sorted(m for m in result.members if m.startswith("b:")) == ["b:b-fi", "b:core"]
    # A node that failed and is retried keeps its error message: it does not count.
    registered.b.set_node(fi, status="error")
    registered.b.set_node(fi, status="connecting")
    result = await refresh_scores(deps)
    assert [m for m in result.members if m.startswith("b:")] == ["b:core"]


# -- 7. usage windows in the panel's local time ----------------------------------------------


async def test_the_traffic_window_is_the_last_24_hours_on_a_panel_in_another_zone(
    deps: PanelDeps,
) -> None:
    async with MarzbanEmulator(local_utc_offset=timedelta(hours=3, minutes=30)) as panel:
        await _register(deps, "z", panel)
        panel.add_node_traffic(None, GIB, 9 * GIB, at=time.time() - 26 * 3600)
        result = await refresh_scores(deps)
    (probe,) = result.probes
    assert probe.scores is not None
    assert [(n.node, n.traffic_bytes) for n in probe.scores.nodes] == [("core", 0)]
    (usage,) = [r for r in panel.requests if r.path == "/api/nodes/usage"]
    assert usage.query.endswith("Z")  # sent in UTC, whatever the panel's zone


# -- 6. tokens refused in the second of a password change ------------------------------------


async def test_a_fresh_token_refused_after_a_password_change_is_retried_a_second_later(
    deps: PanelDeps, registered: Panels
) -> None:
    client = deps.client(await _instance(deps, "a"))
    await client.get_system()  # a token cached for a day
    # Change the password early in a second, so the re-login lands in that second.
    await asyncio.sleep(1.02 - time.time() % 1)
    registered.a.set_admin_password("changed")
    await instances.update_instance(deps.pool, "a", password="changed")  # the operator's edit
    client = deps.client(await _instance(deps, "a"))
    system = await client.get_system()
    assert system.version == "0.8.4"
    assert registered.a.logins == 3  # first, refused in the same second, a second later
    cached = await deps.redis.get(keys.marzban_token("a"))
    assert cached is not None
    headers = {"Authorization": f"Bearer {cached}"}
    async with deps.http.get(f"{registered.a.base_url}/api/system", headers=headers) as resp:
        assert resp.status == 200  # the cached token is one the panel takes


async def _instance(deps: PanelDeps, instance_id: str) -> Instance:
    instance = await instances.get_instance(deps.pool, instance_id)
    assert instance is not None
    return instance


# -- 2. the SUDO_USERNAME admin: a deleted user kept connecting -----------------------------


@pytest.fixture
async def env_admin_panel() -> AsyncIterator[MarzbanEmulator]:
    async with MarzbanEmulator(sudo_from_env=True) as panel:
        yield panel


async def test_a_deleted_config_cannot_connect_on_a_panel_of_the_env_sudo_admin(
    deps: PanelDeps, env_admin_panel: MarzbanEmulator
) -> None:
    await _register(deps, "s", env_admin_panel)
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "s")
    await provision_config(deps, config.id)
    assert env_admin_panel.in_xray(config.panel_username)
    await delete_panel_user(deps, config.id)
    # The panel answered 500 to the DELETE; the user must not be able to connect anyway.
    assert not env_admin_panel.in_xray(config.panel_username)
    assert env_admin_panel.user(config.panel_username) is None
    # The balancer's retry meets 404 and finishes the removal.
    await process_removals(deps)
    assert await deps.pool.fetchval("SELECT count(*) FROM panel_removals") == 0


async def test_instances_add_says_when_the_admin_is_the_env_sudo_admin(
    deps: PanelDeps, env_admin_panel: MarzbanEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["instances", "add", "s1", "--url", str(env_admin_panel.base_url),
         "--username", "admin", "--password", "admin"]
    )  # fmt: skip
    assert await args.func(args, deps.settings) == 0
    out = capsys.readouterr().out
    assert "SUDO_USERNAME" in out and "marzban cli admin create --sudo" in out


# -- 3. a re-created panel user has new links ------------------------------------------------


async def test_a_re_created_user_gets_its_new_link_stored_and_is_told(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1, language="ru")
    config = await pending_config(deps.pool, 1, "a", name="<phone>")
    old = (await provision_config(deps, config.id)).subscription_url
    assert old is not None
    registered.a.reset()  # a reinstalled panel (or Marzban's auto-delete of an expired user)
    record = await sync_config(deps, config.id)
    assert record.subscription_url is not None and record.subscription_url != old
    async with deps.http.get(old) as resp:
        assert resp.status == 404  # tokens issued before the re-create are dead
    async with deps.http.get(record.subscription_url) as resp:
        assert resp.status == 200
    (message,) = await deps.pool.fetch("SELECT chat_id, kind, text FROM outbox")
    assert (message["chat_id"], message["kind"]) == (1, "config_link_changed")
    assert record.subscription_url in message["text"] and "&lt;phone&gt;" in message["text"]
    # A sync that finds the user in place changes nothing and tells nobody.
    again = await sync_config(deps, config.id)
    assert again.subscription_url == record.subscription_url
    assert await deps.pool.fetchval("SELECT count(*) FROM outbox") == 1


# -- 4. removals on a drained (disabled) panel ------------------------------------------------


async def test_removals_on_a_drained_panel_are_retried_until_done(
    deps: PanelDeps, registered: Panels, capsys: pytest.CaptureFixture[str]
) -> None:
    names = []
    for user_id in (1, 2, 3):
        await add_user(deps.pool, user_id)
        config = await pending_config(deps.pool, user_id, "a")
        await provision_config(deps, config.id)
        names.append(config.panel_username)
    await refresh_scores(deps)
    # The panel fails the first old user's DELETE (a 500) for as long as the drain runs.
    registered.a.fail(500, method="DELETE", path=f"/api/user/{names[0]}")
    report = await drain_instance(deps, "a", create_translator(), actor="9")
    assert report.complete and report.moved == 3
    assert report.old_users_left == 1 and len(registered.a.usernames) == 1
    args = build_parser().parse_args(["instances", "list"])
    assert await args.func(args, deps.settings) == 0
    (line,) = [row for row in capsys.readouterr().out.splitlines() if row.startswith("a ")]
    assert "1 to remove" in line
    # The balancer keeps removing on the drained instance although it is disabled.
    registered.a.clear_failures()
    await balance(deps)
    assert registered.a.usernames == []
    assert await deps.pool.fetchval("SELECT count(*) FROM panel_removals") == 0


# -- 9. links built from the admin URL ---------------------------------------------------------


async def test_links_use_the_public_subscription_base_and_follow_its_changes(
    deps: PanelDeps, panels: Panels, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(panels.a.base_url)
    port = url.rsplit(":", 1)[1]

    async def orbit(*argv: str) -> int:
        args = build_parser().parse_args(["instances", *argv])
        return await args.func(args, deps.settings)

    assert await orbit("add", "a", "--url", url, "--username", "admin", "--password", "admin") == 0
    assert "users cannot reach" in capsys.readouterr().out  # 127.0.0.1 is no public address
    assert await orbit("edit", "a", "--sub-url", f"http://localhost:{port}/") == 0
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    record = await provision_config(deps, config.id)
    assert record.subscription_url is not None
    assert record.subscription_url.startswith(f"http://localhost:{port}/sub/")
    # A new public base: stored links are rewritten and still work.
    capsys.readouterr()
    assert await orbit("edit", "a", "--sub-url", f"http://127.0.0.1:{port}") == 0
    assert "1 stored subscription links now start with" in capsys.readouterr().out
    link = await deps.pool.fetchval("SELECT subscription_url FROM configs WHERE id = $1", config.id)
    assert link == record.subscription_url.replace("localhost", "127.0.0.1")
    async with deps.http.get(link) as resp:
        assert resp.status == 200


# -- 8. data-limited users after paying, and after a drain ------------------------------------

LIMIT = 10 * GIB


async def test_a_renewal_lifts_the_data_limit_of_a_limited_user(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    await fund(deps.pool, 1, 100_000)
    config = await pending_config(deps.pool, 1, "a", data_limit_bytes=LIMIT)
    await provision_config(deps, config.id)
    registered.a.set_user(config.panel_username, used_traffic=LIMIT)
    registered.a.review_users()
    assert registered.a.user(config.panel_username)["status"] == "limited"
    plans = load_plans(deps.settings)
    plan = plans.get("1m")
    assert plan is not None and plan.reset_traffic_on_renewal
    # A renewal sets the plan's limit on the configs: the plan bought carries this one.
    plan = msgspec.structs.replace(plan, data_limit_gb=LIMIT // GIB)
    await purchase_plan(deps, 1, plan, "tok")
    user = registered.a.user(config.panel_username)
    assert (user["status"], user["used_traffic"]) == ("active", 0)
    row = await deps.pool.fetchrow("SELECT usage_reset_due, needs_sync FROM configs")
    assert not row["usage_reset_due"] and not row["needs_sync"]


async def test_a_drain_carries_the_used_traffic_across(deps: PanelDeps, registered: Panels) -> None:
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a", data_limit_bytes=LIMIT)
    await provision_config(deps, config.id)
    registered.a.set_user(config.panel_username, used_traffic=LIMIT - GIB)
    await refresh_scores(deps)
    report = await drain_instance(deps, "a", create_translator(), actor="9")
    assert report.complete and report.moved == 1 and report.usage_not_carried == {}
    (holder,) = registered.holders(config.panel_username)
    user = registered.by_id[holder].user(config.panel_username)
    assert user["data_limit"] == GIB  # what was left on the old panel
    carried = await deps.pool.fetchval("SELECT usage_carried_bytes FROM configs")
    assert carried == LIMIT - GIB
    # The next period starts from the full limit again.
    await fund(deps.pool, 1, 100_000)
    plan = load_plans(deps.settings).get("1m")
    assert plan is not None
    await purchase_plan(deps, 1, msgspec.structs.replace(plan, data_limit_gb=LIMIT // GIB), "tok")
    user = registered.by_id[holder].user(config.panel_username)
    assert (user["data_limit"], user["used_traffic"]) == (LIMIT, 0)
