"""The load score of a Marzban node; lower is better.

Marzban serves every user of a panel on every node of that panel, so placing a
config means choosing a panel; the panel with the least-loaded node wins. What
a v0.8.4 panel tells us (reference/marzban-api.md §5): each node's `status`
and `usage_coefficient` (`GET /api/nodes`), each node's traffic
(`GET /api/nodes/usage`) and the panel's active users (`GET /api/system`).
There are no per-node user counts, CPU or RAM in the API.

For each instance:

    usable nodes    = the panel's own core (named `core`: Marzban serves every
                      user on it too, whatever its nodes do) + every node that is
                      `connected`, or `connecting` without an error message (a
                      node reconnects for a few seconds after its settings
                      change), whose name is not in `excluded_node_names`.
                      A node retried after an error keeps the error's message
                      while `connecting`: it does not count.
    users per node  = users_active / number of usable nodes
                      (every user is served by every node; clients spread over them)
    load(node)      = users per node × usage_coefficient(node)
                      + TRAFFIC_WEIGHT × GiB the node moved in the last TRAFFIC_WINDOW
    score(node)     = (BASE_LOAD + load(node)) / PRIORITY_BASE ** priority

`usage_coefficient` is the operator's price of a node's traffic (2.0 = a byte
there counts twice), so a costly node looks twice as loaded. `BASE_LOAD` keeps
empty nodes comparable so priority still orders them. Each priority step
makes an instance look 25 % lighter (priority is clamped to ±PRIORITY_LIMIT).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from orbit.marzban.instances import Instance
from orbit.marzban.models import NODE_CONNECTED, NODE_CONNECTING, Node, NodeUsage, SystemStats
from orbit.marzban.placement import member

GIB = 1024**3
TRAFFIC_WINDOW_HOURS = 24
TRAFFIC_WEIGHT = 1.0  # score points per GiB moved in the window (≈ one user's share)
BASE_LOAD = 1.0
PRIORITY_BASE = 1.25
PRIORITY_LIMIT = 100
CORE_NODE = "core"  # the panel's own Xray, which serves every user as well as the nodes


class NodeScore(msgspec.Struct, frozen=True, kw_only=True):
    node: str
    users_per_node: float
    usage_coefficient: float
    traffic_bytes: int
    score: float


class InstanceScores(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    nodes_total: int  # the core included
    users_active: int
    nodes: list[NodeScore]

    def members(self) -> dict[str, float]:
        return {member(self.instance_id, n.node): n.score for n in self.nodes}


def node_load(users_per_node: float, usage_coefficient: float, traffic_bytes: int) -> float:
    return users_per_node * usage_coefficient + TRAFFIC_WEIGHT * traffic_bytes / GIB


def adjust_for_priority(load: float, priority: int) -> float:
    priority = max(-PRIORITY_LIMIT, min(PRIORITY_LIMIT, priority))
    return (BASE_LOAD + load) / PRIORITY_BASE**priority


def is_serving(node: Node) -> bool:
    """Connected, or reconnecting after a settings change (no error message kept)."""
    return node.status == NODE_CONNECTED or (node.status == NODE_CONNECTING and not node.message)


def usable_nodes(instance: Instance, nodes: Iterable[Node]) -> list[Node]:
    excluded = set(instance.excluded_node_names)
    return [n for n in nodes if is_serving(n) and n.name not in excluded]


def score_instance(
    instance: Instance,
    system: SystemStats,
    nodes: list[Node],
    usages: list[NodeUsage],
) -> InstanceScores:
    traffic = {u.node_id: u.uplink + u.downlink for u in usages}
    candidates = [(CORE_NODE, 1.0, traffic.get(None, 0))] + [
        (n.name, n.usage_coefficient, traffic.get(n.id, 0)) for n in usable_nodes(instance, nodes)
    ]
    users = system.users_active
    per_node = users / len(candidates)
    scored = [
        NodeScore(
            node=name,
            users_per_node=per_node,
            usage_coefficient=coefficient,
            traffic_bytes=moved,
            score=adjust_for_priority(node_load(per_node, coefficient, moved), instance.priority),
        )
        for name, coefficient, moved in candidates
    ]
    return InstanceScores(
        instance_id=instance.id, nodes_total=1 + len(nodes), users_active=users, nodes=scored
    )
