"""`orbit instances`: operators manage panels without SQL; bad input is refused in one line."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.audit import cli_actor
from orbit.cli.errors import CommandError
from orbit.cli.main import build_parser
from orbit.marzban import instances
from orbit.marzban.provisioning import PanelDeps, provision_config
from orbit.settings import Settings
from tests.marzban.conftest import Panels, add_user, instance_for, pending_config
from tests.support.processes import ROOT


async def orbit(settings: Settings, *argv: str) -> int:
    args = build_parser().parse_args(["instances", *argv])
    return await args.func(args, settings)


async def refused(settings: Settings, *argv: str) -> str:
    with pytest.raises(CommandError) as caught:
        await orbit(settings, *argv)
    return str(caught.value)


async def test_add_list_edit_enable_disable_nodes_remove(
    db: asyncpg.Pool,
    redis: Redis,
    panels: Panels,
    marzban_settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = str(panels.a.base_url)
    assert await orbit(marzban_settings, "add", "de1", "--url", url + "/", "--username", "admin",
                       "--password", "admin", "--name", "Frankfurt", "--priority", "3") == 0  # fmt: skip
    added = await instances.get_instance(db, "de1")
    assert added is not None and added.base_url == url and added.priority == 3
    assert added.name == "Frankfurt" and added.is_active
    assert panels.a.logins == 1  # checked against the panel

    await redis.hset(keys.balancer_instance("de1"), mapping={"status": "up", "checked_at": "1"})
    assert await orbit(marzban_settings, "list") == 0
    listing = capsys.readouterr().out
    assert "de1" in listing and "Frankfurt" in listing and url in listing

    assert await orbit(marzban_settings, "edit", "de1", "--priority", "-2", "--name", "FRA") == 0
    assert await orbit(marzban_settings, "disable", "de1") == 0
    assert await orbit(marzban_settings, "exclude-node", "de1", "a-de") == 0
    assert await orbit(marzban_settings, "exclude-node", "de1", "a-de") == 0  # no duplicate
    edited = await instances.get_instance(db, "de1")
    assert edited is not None and edited.priority == -2 and edited.name == "FRA"
    assert not edited.is_active and edited.excluded_node_names == ("a-de",)
    assert await orbit(marzban_settings, "include-node", "de1", "a-de") == 0
    assert await orbit(marzban_settings, "enable", "de1") == 0
    edited = await instances.get_instance(db, "de1")
    assert edited is not None and edited.is_active and edited.excluded_node_names == ()

    assert await orbit(marzban_settings, "remove", "de1") == 0
    assert await instances.get_instance(db, "de1") is None
    assert await redis.exists(keys.balancer_instance("de1")) == 0
    # One audit row per action (orbit.admin.panels records a repeated exclude too), no password in any.
    trail = await db.fetch("SELECT actor, action, target, before, after FROM admin_audit ORDER BY id")
    assert [r["action"] for r in trail] == [
        "instance.add",
        "instance.edit",
        "instance.disable",
        "instance.exclude_node",
        "instance.exclude_node",
        "instance.include_node",
        "instance.enable",
        "instance.remove",
    ]
    assert {r["actor"] for r in trail} == {cli_actor()}
    assert {r["target"] for r in trail} == {"instance:de1"}
    assert (trail[1]["before"]["priority"], trail[1]["after"]["priority"]) == (3, -2)
    sides = [side for r in trail for side in (r["before"], r["after"]) if side]
    assert [side["password"] for side in sides if "password" in side] == ["(secret)"] * 4


async def test_bad_input_is_refused_clearly_and_changes_nothing(
    db: asyncpg.Pool, redis: Redis, panels: Panels, marzban_settings: Settings
) -> None:
    s = marzban_settings
    creds = ("--username", "admin", "--password", "admin", "--no-check")
    for url in ("ftp://panel", "panel.example.com", "http://", "http://a b", "https://x:99999",
                "http://p/?token=1"):  # fmt: skip
        message = await refused(s, "add", "p1", "--url", url, *creds)
        assert message.startswith(f"malformed URL {url!r}"), message
    assert "instance id 'Bad ID'" in await refused(s, "add", "Bad ID", "--url", "http://p", *creds)
    assert await instances.list_instances(db) == []

    await instances.insert_instance(db, instance_for("a", panels.a))
    assert "instance 'a' already exists" in await refused(
        s, "add", "a", "--url", "http://other", *creds
    )
    for action in ("edit", "enable", "disable", "remove", "drain"):
        extra = ("--priority", "1") if action == "edit" else ()
        assert await refused(s, action, "nope", *extra) == "unknown instance 'nope' (known: a)"
    assert "unknown instance 'nope'" in await refused(s, "exclude-node", "nope", "n1")
    assert "malformed URL" in await refused(s, "edit", "a", "--url", "gopher://x")
    assert "out of range" in await refused(s, "edit", "a", "--priority", "1000")
    assert "nothing to change" in await refused(s, "edit", "a")
    assert "is not excluded" in await refused(s, "include-node", "a", "a-de")

    # A panel that refuses the credentials or is not there is not saved.
    message = await refused(s, "add", "p2", "--url", str(panels.b.base_url),
                            "--username", "admin", "--password", "wrong")  # fmt: skip
    assert "refused the credentials: login refused: Incorrect username or password" in message
    await panels.c.down()
    message = await refused(s, "add", "p3", "--url", str(panels.c.base_url),
                            "--username", "admin", "--password", "admin")  # fmt: skip
    assert "cannot reach the panel" in message and "--no-check" in message
    assert [i.id for i in await instances.list_instances(db)] == ["a"]


async def test_remove_is_refused_while_configs_remain(
    deps: PanelDeps, registered: Panels, marzban_settings: Settings
) -> None:
    for user_id in (1, 2, 3):
        await add_user(deps.pool, user_id)
        await provision_config(deps, (await pending_config(deps.pool, user_id, "a")).id)
    message = await refused(marzban_settings, "remove", "a")
    assert message == "instance a still holds 3 configs: drain it first (orbit instances drain a)"
    assert await instances.get_instance(deps.pool, "a") is not None


async def test_the_command_line_prints_one_line_and_exits_2(base_env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from orbit.cli.main import main; main()",
        "instances", "add", "x1", "--url", "not-a-url", "--username", "u", "--password", "p",
        cwd=str(ROOT), env={"PATH": os.environ.get("PATH", ""), **base_env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines == [
        "orbit instances: malformed URL 'not-a-url': expected http(s)://host[:port][/path]"
    ]
