"""Full reconciliation with every panel (orbit/marzban/reconcile.py) against three
emulated panels: the rows are the truth, hand edits are undone in one round, strangers
are reported, and a second round makes no changing call."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
import pytest

from orbit.cli.main import build_parser
from orbit.marzban import instances, provisioning
from orbit.marzban import reconcile_queries as queries
from orbit.marzban.provisioning import PanelDeps
from orbit.marzban.reconcile import reconcile_panels
from orbit.sandbox.marzban import MarzbanEmulator
from orbit.settings import Settings
from tests.marzban.conftest import Panels, add_user, pending_config

CHANGING = (("PUT", "/api/user/{username}"), ("POST", "/api/user"), ("DELETE", "/api/user/{username}"))


async def cli(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(["instances", *argv])
    return await args.func(args, settings)


def changing_calls(panels: Panels) -> dict[str, int]:
    return {
        f"{instance_id} {method} {route}": panel.count(method, route)
        for instance_id, panel in panels
        for method, route in CHANGING
        if panel.count(method, route)
    }


async def placed(deps: PanelDeps, db: asyncpg.Pool, user_id: int, instance_id: str, **kw: object) -> str:
    config = await pending_config(db, user_id, instance_id, **kw)  # type: ignore[arg-type]
    record = await provisioning.provision_config(deps, config.id)
    assert record.instance_id == instance_id
    return record.panel_username


async def client_for(deps: PanelDeps, instance_id: str) -> object:
    instance = await instances.get_instance(deps.pool, instance_id)
    assert instance is not None
    return deps.client(instance)


async def test_a_hand_edited_panel_is_brought_back_in_one_round(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels, http: aiohttp.ClientSession
) -> None:
    until = await add_user(db, 1, days=30)
    await add_user(db, 2, days=30)
    expired_name = await placed(deps, db, 1, "a")
    disabled_name = await placed(deps, db, 1, "a")
    deleted_name = await placed(deps, db, 2, "b")
    inbounds_name = await placed(deps, db, 2, "c", data_limit_bytes=10 * 2**30)
    untouched = [await placed(deps, db, 2, i) for i in ("a", "b", "c")]
    old_link = await db.fetchval(
        "SELECT subscription_url FROM configs WHERE panel_username = $1", deleted_name
    )

    # An admin edits the panels by hand.
    registered.a.set_user(expired_name, expire=int(datetime.now(UTC).timestamp()) + 3600)
    registered.a.set_user(disabled_name, status="disabled")
    b = await client_for(deps, "b")
    await b.delete_user(deleted_name)  # type: ignore[attr-defined]
    c = await client_for(deps, "c")
    await c.modify_user(
        inbounds_name, {"inbounds": {"vless": ["VLESS Websocket"], "vmess": []}, "data_limit": 0}
    )  # type: ignore[attr-defined]
    [stranger] = registered.c.add_users(1, prefix="stranger")
    for _, panel in registered:
        panel.clear_requests()

    report = await reconcile_panels(deps)

    by_id = {p.instance_id: p for p in report.panels}
    assert (by_id["a"].aligned, by_id["b"].recreated, by_id["c"].aligned, by_id["c"].strangers) == (
        2,
        1,
        1,
        1,
    )
    assert registered.a.user(expired_name)["expire"] == int(until.timestamp())  # type: ignore[index]
    assert registered.a.user(disabled_name)["status"] == "active"  # type: ignore[index]
    fixed = registered.c.user(inbounds_name)
    assert fixed is not None and fixed["data_limit"] == 10 * 2**30
    assert sorted(fixed["inbounds"]["vless"]) == ["VLESS TCP REALITY", "VLESS Websocket"]
    assert sorted(fixed["inbounds"]["vmess"]) == ["VMess TCP", "VMess Websocket"]
    recreated = registered.b.user(deleted_name)
    assert recreated is not None and recreated["expire"] == int(until.timestamp())
    # The old link died with the user: the row and its owner have the new one.
    new_link = await db.fetchval(
        "SELECT subscription_url FROM configs WHERE panel_username = $1", deleted_name
    )
    assert new_link != old_link
    async with http.get(new_link) as fresh, http.get(old_link) as dead:
        assert (fresh.status, dead.status) == (200, 404)
    assert (
        await db.fetchval("SELECT count(*) FROM outbox WHERE chat_id = 2 AND kind = 'config_link_changed'")
        == 1
    )
    # Exactly one changing call per changed config; none for the untouched ones.
    assert changing_calls(registered) == {
        "a PUT /api/user/{username}": 2,
        "b POST /api/user": 1,
        "c PUT /api/user/{username}": 1,
    }
    for name in untouched:
        assert all(p.count("GET", "/api/user/{username}") == 0 for _, p in registered), name
    # The stranger is reported, not deleted.
    assert registered.c.user(stranger) is not None
    strangers = await queries.list_strangers(db, "c")
    assert [(s.panel_username, s.status) for s in strangers] == [(stranger, "active")]

    for _, panel in registered:
        panel.clear_requests()
    again = await reconcile_panels(deps)
    assert again.changed == 0
    assert changing_calls(registered) == {}
    assert [s.panel_username for s in await queries.list_strangers(db, "c")] == [stranger]


async def test_the_cli_lists_strangers_and_a_setting_deletes_them(
    db: asyncpg.Pool,
    deps: PanelDeps,
    registered: Panels,
    marzban_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await add_user(db, 3)
    ours = await placed(deps, db, 3, "a")
    strangers = registered.a.add_users(2, prefix="manual")
    await reconcile_panels(deps)
    assert sorted(s.panel_username for s in await queries.list_strangers(db, "a")) == strangers

    assert await cli(marzban_settings, "orphans", "a", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(row["panel_username"] for row in listed) == strangers
    assert await cli(marzban_settings, "orphans", "a") == 0
    assert "2 on a;" in capsys.readouterr().out
    assert await cli(marzban_settings, "orphans", "b") == 0
    assert "no panel users on b" in capsys.readouterr().out

    settings = msgspec.structs.replace(deps.settings, panel_delete_strangers=True)
    deleting = dataclasses.replace(deps, settings=settings)
    report = await reconcile_panels(deleting)
    assert report.panels[0].strangers_deleted == 2
    assert registered.a.usernames == [ours]
    assert await queries.list_strangers(db, "a") == []


async def test_a_panel_that_is_down_is_skipped_and_the_others_are_done(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, 4)
    on_a = await placed(deps, db, 4, "a")
    on_b = await placed(deps, db, 4, "b")
    registered.a.set_user(on_a, status="disabled")
    registered.b.set_user(on_b, status="disabled")
    await registered.a.down()
    report = await reconcile_panels(deps)
    by_id = {p.instance_id: p for p in report.panels}
    assert by_id["a"].skipped is not None and by_id["a"].aligned == 0
    assert by_id["b"].aligned == 1 and registered.b.user(on_b)["status"] == "active"  # type: ignore[index]
    await registered.a.up()
    report = await reconcile_panels(deps)
    assert {p.instance_id: p.aligned for p in report.panels} == {"a": 1, "b": 0, "c": 0}


async def test_one_unreadable_user_does_not_stop_the_page(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_user(db, 5)
    names = [await placed(deps, db, 5, "a") for _ in range(3)]
    for name in names:
        registered.a.set_user(name, status="disabled")
    # The panel answers one user in a shape no Marzban has (a text expiry).
    original = MarzbanEmulator._user_json

    def mangled(self: MarzbanEmulator, user: object) -> dict[str, object]:
        body = original(self, user)  # type: ignore[arg-type]
        if body["username"] == names[1]:
            body["expire"] = "soon\x00"
        return body

    monkeypatch.setattr(MarzbanEmulator, "_user_json", mangled)
    report = await reconcile_panels(deps)
    a = report.panels[0]
    assert (a.instance_id, a.bad_items, a.aligned) == ("a", 1, 2)
    assert [registered.a.user(n)["status"] for n in (names[0], names[2])] == ["active", "active"]  # type: ignore[index]


async def test_users_of_deleted_or_moved_configs_are_queued_for_removal(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, 6)
    name = await placed(deps, db, 6, "a")
    # The row was deleted while the removal list lost it (a restore, a manual edit).
    await db.execute(
        "UPDATE configs SET status = 'deleted', deleted_at = now() WHERE panel_username = $1", name
    )
    assert await db.fetchval("SELECT count(*) FROM panel_removals") == 0
    report = await reconcile_panels(deps)
    assert report.panels[0].removals_queued == 1
    assert await db.fetchval("SELECT panel_username FROM panel_removals WHERE instance_id = 'a'") == name
    assert report.panels[0].recreated == 0 and report.panels[0].strangers == 0
    removed = await provisioning.process_removals(deps)
    assert removed.removed == 1 and registered.a.user(name) is None


async def test_a_user_without_a_subscription_matches_any_past_expiry(
    db: asyncpg.Pool, deps: PanelDeps, registered: Panels
) -> None:
    await add_user(db, 7)
    name = await placed(deps, db, 7, "a")
    await db.execute("UPDATE users SET subscription_until = NULL WHERE id = 7")
    registered.a.set_user(name, expire=int((datetime.now(UTC) - timedelta(days=1)).timestamp()))
    registered.a.clear_requests()
    assert (await reconcile_panels(deps)).changed == 0
    assert changing_calls(registered) == {}
