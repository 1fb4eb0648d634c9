"""The emulator's state as bytes: what the sandbox keeps across its restarts.

Per bot: users, chats with every message and file, groups, blocks, queued updates,
Star charges, invoice links, commands and settings, and the update counter (a
bot's getUpdates offset stays valid). Callback and pre-checkout queries (they
expire within minutes), webhooks (the bot sets its own again), rate windows and
the call log are not kept.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from orbit.sandbox import telegram_control as ctl
from orbit.sandbox.telegram.state import _Charge, _Chat, _InvoiceSpec, _Queued, _StoredFile, _World
from orbit.sandbox.telegram.wire import User


class QueuedState(msgspec.Struct):
    update_id: int
    kind: str
    payload: Any


class WorldState(msgspec.Struct, kw_only=True):
    bot_id: int | None
    users: dict[int, User]
    chats: dict[int, _Chat]
    groups: dict[int, ctl.GroupIn]
    blocked: list[int]
    updates: list[QueuedState]
    next_update_id: int
    allowed_updates: list[str] | None
    seq: int
    call_seq: int
    charges: dict[str, _Charge]
    invoice_links: dict[str, _InvoiceSpec]
    files: dict[str, _StoredFile]
    commands: dict[str, list[dict[str, Any]]]
    settings: dict[str, dict[str, Any]]


class EmulatorState(msgspec.Struct, kw_only=True):
    worlds: list[WorldState]
    unclaimed: WorldState | None
    # (chat id or @username, user id, status): getChatMember's answers
    memberships: list[tuple[int | str, int, str]]


def _world_state(world: _World) -> WorldState:
    return WorldState(
        bot_id=world.bot_id,
        users=world.users,
        chats=world.chats,
        groups=world.groups,
        blocked=sorted(world.blocked),
        updates=[QueuedState(q.update_id, q.kind, q.payload) for q in world.updates],
        next_update_id=world.next_update_id,
        allowed_updates=sorted(world.allowed_updates) if world.allowed_updates is not None else None,
        seq=world.seq,
        call_seq=world.call_seq,
        charges=world.charges,
        invoice_links=world.invoice_links,
        files=world.files,
        commands=world.commands,
        settings=world.settings,
    )


def _world(state: WorldState) -> _World:
    world = _World(state.bot_id)
    world.users = state.users
    world.chats = state.chats
    world.groups = state.groups
    world.blocked = set(state.blocked)
    # Payloads come back as plain dicts: they are only ever encoded again.
    world.updates = deque(_Queued(q.update_id, q.kind, q.payload) for q in state.updates)
    world.next_update_id = state.next_update_id
    world.allowed_updates = frozenset(state.allowed_updates) if state.allowed_updates is not None else None
    world.seq = state.seq
    world.call_seq = state.call_seq
    world.charges = state.charges
    world.invoice_links = state.invoice_links
    world.files = state.files
    world.file_paths = {stored.path: stored for stored in state.files.values()}
    world.commands = state.commands
    world.settings = state.settings
    return world


class _Persistence:
    """`dump_state()` / `load_state()` on the emulator."""

    def dump_state(self) -> bytes:
        return msgspec.json.encode(
            EmulatorState(
                worlds=[_world_state(world) for world in self._worlds.values()],
                unclaimed=_world_state(self._unclaimed) if self._unclaimed is not None else None,
                memberships=[(chat, user, status) for (chat, user), status in self._memberships.items()],
            )
        )

    def load_state(self, data: bytes) -> None:
        """Replace every bot's world with a dump's; call before `start()`."""
        state = msgspec.json.decode(data, type=EmulatorState)
        self._worlds = {w.bot_id: _world(w) for w in state.worlds if w.bot_id is not None}
        self._unclaimed = _world(state.unclaimed) if state.unclaimed is not None else None
        self._memberships = {(chat, user): status for chat, user, status in state.memberships}
