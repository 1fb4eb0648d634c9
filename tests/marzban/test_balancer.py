"""Node scores and instance health: the formula, a refresh against three
emulated panels, and the real balancer process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from orbit import keys
from orbit.marzban import instances
from orbit.marzban.instances import Instance
from orbit.marzban.models import Node, NodeUsage, SystemStats
from orbit.marzban.placement import choose_instance, read_health
from orbit.marzban.provisioning import PanelDeps
from orbit.marzban.scoring import (
    GIB,
    adjust_for_priority,
    node_load,
    score_instance,
)
from tests.marzban.conftest import Panels, instance_for, refresh_scores
from tests.support.processes import spawn, wait_for_heartbeat

INSTANCE = Instance(id="x", name="x", base_url="http://x", username="u", password="p")


def test_score_formula() -> None:
    system = SystemStats(users_active=60)
    refused = "[Errno 111] Connection refused"
    nodes = [
        Node(id=1, name="de", status="connected", usage_coefficient=1.0),
        Node(id=2, name="nl", status="connected", usage_coefficient=2.0),
        Node(id=3, name="dead", status="error", message=refused),
        Node(id=4, name="retried", status="connecting", message=refused),
        Node(id=5, name="off", status="disabled"),
    ]
    usages = [NodeUsage(node_id=1, node_name="de", uplink=GIB, downlink=GIB)]
    scored = score_instance(INSTANCE, system, nodes, usages)
    # The panel's core serves users too: 60 users over core, de and nl.
    assert {n.node: n.score for n in scored.nodes} == {
        "core": 1 + 20 * 1.0,
        "de": 1 + 20 * 1.0 + 2.0,  # 2 GiB moved
        "nl": 1 + 20 * 2.0,
    }
    assert scored.members() == {"x:core": 21.0, "x:de": 23.0, "x:nl": 41.0}
    assert scored.nodes_total == 6
    # Excluding a node moves its users onto the others.
    without_de = msgspec.structs.replace(INSTANCE, excluded_node_names=("de",))
    only_nl = score_instance(without_de, system, nodes, usages)
    assert [(n.node, n.score) for n in only_nl.nodes] == [("core", 31.0), ("nl", 1 + 30 * 2.0)]
    # A node reconnecting after a settings change (no error kept) still serves.
    changed = [Node(id=1, name="de", status="connecting")]
    assert set(score_instance(INSTANCE, system, changed, []).members()) == {"x:core", "x:de"}
    # No nodes at all: the panel's core is the one node.
    core = score_instance(INSTANCE, system, [], [NodeUsage(node_id=None, node_name="Master")])
    assert core.members() == {"x:core": 61.0}
    # Each priority step makes an instance look 25 % lighter.
    assert adjust_for_priority(node_load(10, 1.0, 0), 1) == pytest.approx(11 / 1.25)
    assert adjust_for_priority(0, -2) == pytest.approx(1.5625)


async def test_the_least_loaded_nodes_instance_is_chosen(deps: PanelDeps, registered: Panels) -> None:
    registered.a.add_users(45)  # 15 per node: core, a-de, a-nl
    registered.b.add_users(20)  # 10 per node: core, b-fi
    registered.c.add_users(12)  # 12 on its core
    await refresh_scores(deps)
    assert await choose_instance(deps.redis, deps.pool) == "b"
    assert await choose_instance(deps.redis, deps.pool, exclude=frozenset({"b"})) == "c"
    # b's node gets costly: its coefficient makes each user there count three times.
    await _set_coefficient(registered, "b", 3.0)
    result = await refresh_scores(deps)
    assert result.members["b:b-fi"] == 1 + 10 * 3.0 and result.members["b:core"] == 11.0
    registered.b.add_users(12, prefix="more")  # 16 per node
    await refresh_scores(deps)
    assert await choose_instance(deps.redis, deps.pool) == "c"
    # Traffic weighs too: 20 GiB through c's core in the last day.
    registered.c.add_node_traffic(None, 2 * GIB, 18 * GIB)
    await refresh_scores(deps)
    assert await choose_instance(deps.redis, deps.pool) == "a"


async def _set_coefficient(panels: Panels, instance_id: str, value: float) -> None:
    panel = panels.by_id[instance_id]
    for node in panel.nodes():
        panel.set_node(node["id"], usage_coefficient=value)


async def test_an_excluded_or_unhealthy_node_is_never_scored_the_core_is(
    deps: PanelDeps, registered: Panels
) -> None:
    registered.a.add_users(2)
    registered.b.add_users(20)
    registered.c.add_users(20)
    await refresh_scores(deps)
    assert await choose_instance(deps.redis, deps.pool) == "a"
    await instances.exclude_node(deps.pool, "a", "a-de")
    await instances.exclude_node(deps.pool, "a", "a-nl")
    result = await refresh_scores(deps)
    assert [m for m in result.members if m.startswith("a:")] == ["a:core"]
    assert result.members["a:core"] == 3.0  # both users on the core
    # Back in, but one node errors and the other is disabled: only the core is scored.
    await instances.include_node(deps.pool, "a", "a-de")
    await instances.include_node(deps.pool, "a", "a-nl")
    de, nl = (n["id"] for n in registered.a.nodes())
    registered.a.set_node(de, status="error")
    registered.a.set_node(nl, status="disabled")
    result = await refresh_scores(deps)
    assert [m for m in result.members if m.startswith("a:")] == ["a:core"]
    registered.a.set_node(nl, status="connected")
    result = await refresh_scores(deps)
    assert sorted(m for m in result.members if m.startswith("a:")) == ["a:a-nl", "a:core"]
    assert await choose_instance(deps.redis, deps.pool) == "a"


async def test_a_panel_that_goes_down_leaves_the_scores_and_comes_back(
    deps: PanelDeps, registered: Panels
) -> None:
    registered.b.add_users(5)
    registered.c.add_users(5)
    await refresh_scores(deps)
    assert await choose_instance(deps.redis, deps.pool) == "a"
    await registered.a.down()
    result = await refresh_scores(deps)  # one refresh
    assert result.down == ["a"]
    assert not [m for m in result.members if m.startswith("a:")]
    assert await choose_instance(deps.redis, deps.pool) in ("b", "c")
    health = await read_health(deps.redis, ["a", "b"])
    assert health["a"] is not None and health["a"].status == "down"
    assert "cannot connect" in health["a"].error and health["a"].down_since
    assert health["b"] is not None and health["b"].healthy
    registered.b.fail(500)  # a 5xx is down too
    assert (await refresh_scores(deps)).down == ["a", "b"]
    registered.b.clear_failures()
    await registered.a.up()
    result = await refresh_scores(deps)
    assert result.down == []
    assert await choose_instance(deps.redis, deps.pool) == "a"
    health = await read_health(deps.redis, ["a"])
    assert health["a"] is not None and health["a"].status == "up"
    assert health["a"].down_since is None and health["a"].nodes_usable == 3  # core + 2


async def _scores(redis: Redis) -> dict[str, float]:
    return dict(await redis.zrange(keys.BALANCER_SCORES, 0, -1, withscores=True))


async def _wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_balancer_process_scores_panels_and_follows_a_poke(
    db: asyncpg.Pool,
    redis: Redis,
    panels: Panels,
    base_env: dict[str, str],
    log_dir: Path,
) -> None:
    # a comes from the legacy S001_* settings; b and c are registered rows.
    for instance_id in ("b", "c"):
        await instances.insert_instance(db, instance_for(instance_id, panels.by_id[instance_id]))
    env = {
        **base_env,
        "S001_BASE_URL": str(panels.a.base_url),
        "S001_MARZBAN_USERNAME": "admin",
        "S001_MARZBAN_PASSWORD": "admin",
        "MARZBAN_TIMEOUT_SECONDS": "0.5",
    }
    balancer = await spawn("balancer", env, log_dir)
    try:
        await wait_for_heartbeat(redis, "balancer", pid=balancer.pid)

        async def all_three() -> bool:
            members = await _scores(redis)
            return {m.split(":")[0] for m in members} == {"s001", "b", "c"}

        await _wait_for(all_three)
        assert await instances.get_instance(db, "s001") is not None
        assert set(await _scores(redis)) == {
            "s001:core", "s001:a-de", "s001:a-nl", "b:core", "b:b-fi", "c:core"
        }  # fmt: skip

        await panels.b.down()
        await redis.publish(keys.channel(redis, keys.BALANCER_POKE_CHANNEL), "1")

        async def b_gone() -> bool:
            return not {"b:b-fi", "b:core"} & set(await _scores(redis))

        await _wait_for(b_gone, timeout=5.0)
        health = (await read_health(redis, ["b"]))["b"]
        assert health is not None and health.status == "down"

        await panels.b.up()
        await redis.publish(keys.channel(redis, keys.BALANCER_POKE_CHANNEL), "1")

        async def b_back() -> bool:
            return "b:b-fi" in await _scores(redis)

        await _wait_for(b_back, timeout=5.0)
        assert panels.a.logins == 1  # the token is cached, not fetched per refresh
    finally:
        code = await balancer.stop()
    assert code == 0, balancer.output()
    assert "refreshed 3 instances" in balancer.output()
