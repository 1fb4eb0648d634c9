"""Panel admin passwords at rest: encrypted with Fernet (`cryptography`: AES-128-CBC
and HMAC-SHA256, a timestamped token) under a key from `MARZBAN_PASSWORD_KEY`.

A stored password is either `fernet:<token>` or, written before a key was set,
plain text. `MARZBAN_PASSWORD_KEY` may list several keys separated by commas: the
first encrypts, every one decrypts (rotation: put the new key first, run
`orbit instances encrypt-passwords`, then drop the old one).

Without a key nothing is encrypted: `orbit instances add/edit` refuse to store a
new password in plain text, the legacy `S001_*` panel is stored as its `.env`
already holds it, and each process warns at start while plain rows remain.
A row that is encrypted while the key is missing or wrong stops the processes at
start with one line naming the variable (`check_passwords`).
"""

from __future__ import annotations

import logging

import asyncpg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from orbit.settings import Settings, SettingsError

log = logging.getLogger(__name__)

KEY_VARIABLE = "MARZBAN_PASSWORD_KEY"
PREFIX = "fernet:"
GENERATE_HINT = (
    "make one with: python -c 'from cryptography.fernet import Fernet;"
    " print(Fernet.generate_key().decode())'"
)

SELECT_PASSWORDS = "SELECT id, password FROM marzban_instances ORDER BY id"
UPDATE_PASSWORD = "UPDATE marzban_instances SET password = $2 WHERE id = $1"


class PasswordKeyError(Exception):
    """A stored password cannot be read: the key is missing or does not fit it."""


def parse_keys(raw: str) -> list[Fernet]:
    """`MARZBAN_PASSWORD_KEY`'s comma-separated Fernet keys; ValueError when malformed."""
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        raise ValueError("no key given")
    return [Fernet(key) for key in keys]


class PanelPasswords:
    """Seals passwords for storage and opens stored ones."""

    def __init__(self, keys: str | None) -> None:
        fernets = parse_keys(keys) if keys else []
        self._fernet = MultiFernet(fernets) if fernets else None
        self._first = fernets[0] if fernets else None

    @classmethod
    def from_settings(cls, settings: Settings) -> PanelPasswords:
        return cls(settings.marzban_password_key)

    @property
    def has_key(self) -> bool:
        return self._fernet is not None

    @staticmethod
    def is_sealed(stored: str) -> bool:
        return stored.startswith(PREFIX)

    def seal(self, password: str) -> str:
        """What to store: encrypted when a key is set, else the password itself."""
        if self._fernet is None:
            return password
        return PREFIX + self._fernet.encrypt(password.encode()).decode()

    def open(self, stored: str, instance_id: str = "?") -> str:
        if not self.is_sealed(stored):
            return stored
        if self._fernet is None:
            raise PasswordKeyError(
                f"the password of instance {instance_id} is encrypted but {KEY_VARIABLE} is not set"
            )
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise PasswordKeyError(
                f"{KEY_VARIABLE} cannot decrypt the password of instance {instance_id}"
                " (a wrong or dropped key?)"
            ) from None

    def reseal(self, stored: str, instance_id: str = "?") -> str | None:
        """The value to store instead of `stored` (plain text, or sealed under an
        older key), or None when it is sealed under the first key already."""
        if self._fernet is None:
            return None
        if not self.is_sealed(stored):
            return self.seal(stored)
        token = stored[len(PREFIX) :].encode()
        try:
            rotated = PREFIX + self._fernet.rotate(token).decode()
        except InvalidToken:
            raise PasswordKeyError(
                f"{KEY_VARIABLE} cannot decrypt the password of instance {instance_id}"
            ) from None
        assert self._first is not None
        try:
            self._first.decrypt(token)
        except InvalidToken:
            return rotated
        return None


async def encrypt_stored(conn: asyncpg.Connection | asyncpg.Pool, passwords: PanelPasswords) -> int:
    """Encrypt every plain-text password (and re-encrypt under the first key); returns
    how many rows changed. Raises PasswordKeyError when a row does not decrypt."""
    changed = 0
    for row in await conn.fetch(SELECT_PASSWORDS):
        fresh = passwords.reseal(row["password"], row["id"])
        if fresh is not None:
            await conn.execute(UPDATE_PASSWORD, row["id"], fresh)
            changed += 1
    return changed


async def check_passwords(pool: asyncpg.Pool, settings: Settings) -> PanelPasswords:
    """At process start: every stored password must be readable with the key we have.

    Raises SettingsError (exit code 2, one line naming `MARZBAN_PASSWORD_KEY`)
    when an encrypted row meets a missing or wrong key; warns while plain-text rows
    remain.
    """
    passwords = PanelPasswords.from_settings(settings)
    plain = []
    for row in await pool.fetch(SELECT_PASSWORDS):
        try:
            passwords.open(row["password"], row["id"])
        except PasswordKeyError as exc:
            raise SettingsError(f"{exc}; set {KEY_VARIABLE} to the key it was encrypted with") from None
        if not passwords.is_sealed(row["password"]):
            plain.append(row["id"])
    if plain:
        fix = (
            "run `orbit instances encrypt-passwords`"
            if passwords.has_key
            else f"set {KEY_VARIABLE} ({GENERATE_HINT}) and run `orbit instances encrypt-passwords`"
        )
        log.warning(
            "panel passwords of %s are stored in plain text in Postgres: %s", ", ".join(plain), fix
        )
    return passwords
