"""aiogram's FSM keys with the user's hash tag (`fsm:{<user>}:<chat>:<user>:state`).

The throttling middleware reads the state key in the same script call as the user's
rate-limit buckets (`rl:{<user>}:<action>`); on Redis Cluster a script's keys must
share one slot (orbit/keys.py). aiogram's DefaultKeyBuilder builds the rest.
"""

from __future__ import annotations

from typing import Literal

from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey

from orbit import keys


class UserTaggedKeys(DefaultKeyBuilder):
    def build(self, key: StorageKey, part: Literal["data", "state", "lock"] | None = None) -> str:
        rest = super().build(key, part).removeprefix(self.prefix + self.separator)
        return f"{keys.fsm_prefix(key.user_id)}{self.separator}{rest}"
