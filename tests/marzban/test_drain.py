"""Draining an instance: every config moves, users are told, `kill -9` resumes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from orbit.configs import queries as configs_q
from orbit.i18n import create_translator
from orbit.marzban import instances
from orbit.marzban.drain import drain_instance
from orbit.marzban.errors import DrainRefused, InstanceNotFound
from orbit.marzban.provisioning import (
    PanelDeps,
    delete_panel_user,
    provision_config,
    set_enabled,
)
from tests.marzban.conftest import Panels, add_user, pending_config, refresh_scores
from tests.support.processes import ROOT


async def _configs_on(deps: PanelDeps, instance_id: str) -> int:
    return int(
        await deps.pool.fetchval(
            "SELECT count(*) FROM configs WHERE instance_id = $1 AND deleted_at IS NULL",
            instance_id,
        )
    )


async def _assert_each_user_once_on_its_instance(deps: PanelDeps, panels: Panels) -> None:
    rows = await deps.pool.fetch(
        "SELECT panel_username, instance_id FROM configs WHERE deleted_at IS NULL"
    )
    for row in rows:
        assert panels.holders(row["panel_username"]) == [row["instance_id"]], dict(row)


async def test_drain_moves_every_config_and_tells_each_user(
    deps: PanelDeps, registered: Panels
) -> None:
    until = {}
    for user_id in range(1, 9):
        until[user_id] = await add_user(deps.pool, user_id, language="ru" if user_id in (3, 4) else "en")
    await refresh_scores(deps)
    moved = []
    for user_id in range(1, 6):  # 1-4 active, 5 disabled
        config = await pending_config(deps.pool, user_id, "a", name=f"cfg{user_id}")
        await provision_config(deps, config.id)
        moved.append(config)
    await set_enabled(deps, moved[4].id, False)
    never_placed = await pending_config(deps.pool, 6, "a")  # its user got no link yet
    elsewhere = await pending_config(deps.pool, 7, "b")
    await provision_config(deps, elsewhere.id)
    gone = await pending_config(deps.pool, 8, "a")
    await provision_config(deps, gone.id)
    await delete_panel_user(deps, gone.id)

    report = await drain_instance(deps, "a", create_translator(), actor="9")

    assert report.complete and report.moved == 6 and report.old_users_left == 0
    source = await instances.get_instance(deps.pool, "a")
    assert source is not None and not source.is_active
    assert await _configs_on(deps, "a") == 0
    assert registered.a.usernames == []
    await _assert_each_user_once_on_its_instance(deps, registered)
    for config in [*moved, never_placed]:
        row = await configs_q.get_config(deps.pool, config.id)
        assert row is not None and row.instance_id in ("b", "c")
        assert row.subscription_url and row.subscription_url.startswith(
            str(registered.by_id[row.instance_id].base_url)
        )
        user = registered.by_id[row.instance_id].user(config.panel_username)
        assert user is not None and user["expire"] == int(until[config.user_id].timestamp())
        assert user["status"] == ("disabled" if config.id == moved[4].id else "active")
        assert row.status == ("disabled" if config.id == moved[4].id else "active")
    messages = await deps.pool.fetch("SELECT chat_id, kind, text FROM outbox ORDER BY chat_id")
    assert [m["chat_id"] for m in messages] == [1, 2, 3, 4, 5]
    assert {m["kind"] for m in messages} == {"config_moved"}
    for message in messages:
        row = await deps.pool.fetchrow(
            "SELECT subscription_url, name FROM configs WHERE user_id = $1", message["chat_id"]
        )
        assert row["subscription_url"] in message["text"] and row["name"] in message["text"]
    assert "переехал" in messages[2]["text"] and "moved" in messages[0]["text"]
    # Again: nothing left to move, nothing sent twice.
    again = await drain_instance(deps, "a", create_translator(), actor="9")
    assert again.moved == 0 and again.complete
    assert await deps.pool.fetchval("SELECT count(*) FROM outbox") == 5


async def test_a_large_drain_is_spread_over_the_targets_before_the_balancer_refreshes(
    deps: PanelDeps, registered: Panels
) -> None:
    count = 12
    for user_id in range(1, count + 1):
        await add_user(deps.pool, user_id)
        config = await pending_config(deps.pool, user_id, "a")
        await provision_config(deps, config.id)
    await refresh_scores(deps)  # b and c: empty, equal scores; b serves on core + node, c on core
    # No balancer runs here: the scores stay as they are during the whole drain.
    report = await drain_instance(deps, "a", create_translator(), actor="9")
    assert report.complete and report.moved == count
    # Spread by serving nodes: one more user weighs half as much on b as on c.
    assert await _configs_on(deps, "b") == 2 * count // 3
    assert await _configs_on(deps, "c") == count // 3
    await _assert_each_user_once_on_its_instance(deps, registered)


async def test_drain_is_refused_when_no_other_instance_is_healthy(
    deps: PanelDeps, registered: Panels
) -> None:
    await add_user(deps.pool, 1)
    config = await pending_config(deps.pool, 1, "a")
    await provision_config(deps, config.id)
    await registered.b.down()
    registered.c.fail(503)
    with pytest.raises(DrainRefused, match="no other instance is healthy"):
        await drain_instance(deps, "a", create_translator(), actor="9")
    source = await instances.get_instance(deps.pool, "a")
    assert source is not None and source.is_active
    assert await _configs_on(deps, "a") == 1
    with pytest.raises(InstanceNotFound):
        await drain_instance(deps, "nope", create_translator(), actor="9")


async def _start_cli(env: dict[str, str], log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from orbit.cli.main import main; main()",
            *args,
            cwd=str(ROOT),
            env={"PATH": os.environ.get("PATH", ""), **env},
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )


async def test_drain_resumes_after_kill_9_and_leaves_nothing_on_the_instance(
    deps: PanelDeps, registered: Panels, base_env: dict[str, str], log_dir: Path
) -> None:
    count = 24
    for user_id in range(1, count + 1):
        await add_user(deps.pool, user_id)
    await refresh_scores(deps)
    configs = [await pending_config(deps.pool, uid, "a") for uid in range(1, count + 1)]
    await asyncio.gather(*(provision_config(deps, c.id) for c in configs))
    for panel in (registered.b, registered.c):
        panel.slow(0.06, method="POST", path="/api/user")  # creates take a while
    env = {**base_env, "MARZBAN_TIMEOUT_SECONDS": "2", "LOG_LEVEL": "INFO"}
    log = log_dir / "drain.log"

    first = await _start_cli(env, log, "instances", "drain", "a")
    deadline = time.monotonic() + 90  # the CLI starts slowly on a loaded machine
    while await _configs_on(deps, "a") > count - 6 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)

    def creating() -> bool:
        return any(
            r.method == "POST" and r.path == "/api/user" and r.status is None
            for p in (registered.b, registered.c)
            for r in p.requests
        )

    while not creating() and time.monotonic() < deadline:  # kill it mid-create
        await asyncio.sleep(0.005)
    os.killpg(first.pid, signal.SIGKILL)
    assert await first.wait() == -signal.SIGKILL
    left = await _configs_on(deps, "a")
    assert 0 < left < count, log.read_text()
    # Killed mid-create: the user being made is listed on its target.
    half_made = await deps.pool.fetch(
        "SELECT r.instance_id, r.panel_username FROM panel_removals r"
        " JOIN configs c ON c.id = r.config_id AND c.instance_id = 'a'"
        " WHERE r.instance_id <> 'a'"
    )
    assert len(half_made) == 1, log.read_text()

    report = await drain_instance(deps, "a", create_translator(), actor="9")
    assert report.complete and report.moved == left, log.read_text()

    assert await _configs_on(deps, "a") == 0
    assert registered.a.usernames == []
    await _assert_each_user_once_on_its_instance(deps, registered)
    target, username = half_made[0]
    assert registered.holders(username) == [target]  # finished where it had started
    assert await deps.pool.fetchval("SELECT count(*) FROM panel_removals") == 0
    told = await deps.pool.fetch("SELECT chat_id, count(*) AS n FROM outbox GROUP BY chat_id")
    assert sorted(r["chat_id"] for r in told) == list(range(1, count + 1))
    assert {r["n"] for r in told} == {1}
