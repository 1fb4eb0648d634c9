"""Emulator state kept in files under run/, so the sandbox survives its own restarts.

Orbit's database outlives the sandbox process: configs name panel users, the TON
watcher's cursor names a logical time on the emulated chain, payments name Crypto
Pay invoice ids, outbox rows name chats. Each emulator dumps its state (msgspec
JSON) on stop and every few seconds, and loads it on start, so none of those point
at something that vanished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Persistent(Protocol):
    def dump_state(self) -> bytes: ...

    def load_state(self, data: bytes) -> None: ...


class StateFiles:
    """One `<name>.json` per emulator in `directory`."""

    def __init__(self, directory: Path, emulators: Mapping[str, Persistent]) -> None:
        self.directory = directory
        self.emulators = dict(emulators)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def load(self) -> list[str]:
        """Load every emulator that has a file; the names loaded. A file that does not
        decode (an older shape, a torn disk) is set aside as `.bad` and that emulator
        starts empty: the sandbox still comes up."""
        loaded = []
        for name, emulator in self.emulators.items():
            path = self.path(name)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                emulator.load_state(data)
            except Exception:
                log.exception("sandbox state %s unreadable; set aside as %s.bad, starting empty", path, path)
                path.replace(path.with_suffix(".json.bad"))
                continue
            loaded.append(name)
        return loaded

    def save(self) -> None:
        """Write every emulator's state; each file is replaced whole (written aside, then
        renamed), so a crash mid-save leaves the previous state, never half of one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, emulator in self.emulators.items():
            path = self.path(name)
            tmp = path.with_suffix(".json.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(emulator.dump_state())
            tmp.replace(path)
