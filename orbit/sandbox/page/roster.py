"""The test users a person can play on the page: the admin first, then whoever they create.

Names and usernames are checked as Telegram would take them, so a profile the page
accepts is one the bot could meet in real life.
"""

from __future__ import annotations

import re

import msgspec

LANGUAGES = ("en", "ru")
USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{4,31}$")
FIRST_USER_ID = 2001


class Profile(msgspec.Struct, kw_only=True):
    id: int
    first_name: str
    username: str | None = None
    language: str = "en"
    admin: bool = False


class NewProfile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    first_name: str
    username: str | None = None
    language: str = "en"


class ProfileError(ValueError):
    pass


class Roster:
    def __init__(self, admin_id: int) -> None:
        self._profiles: dict[int, Profile] = {
            admin_id: Profile(id=admin_id, first_name="Admin", username="sandbox_admin", admin=True)
        }
        self._admin_id = admin_id

    def all(self) -> list[Profile]:
        return sorted(self._profiles.values(), key=lambda p: (not p.admin, p.id))

    def get(self, user_id: int) -> Profile | None:
        return self._profiles.get(user_id)

    def adopt(self, user_id: int, first_name: str, username: str | None, language: str | None) -> None:
        """A user the Telegram emulator knows (written earlier, another tab): keep them listed."""
        if user_id not in self._profiles:
            self._profiles[user_id] = Profile(
                id=user_id,
                first_name=first_name,
                username=username,
                language=language if language in LANGUAGES else "en",
                admin=user_id == self._admin_id,
            )

    def create(self, new: NewProfile) -> Profile:
        first_name = " ".join(new.first_name.split())
        if not 1 <= len(first_name) <= 64:
            raise ProfileError("the first name must be 1 to 64 characters")
        username = (new.username or "").strip().lstrip("@") or None
        if username is not None and not USERNAME.match(username):
            raise ProfileError("a username is 5 to 32 letters, digits or _, starting with a letter")
        if username is not None and any(
            (p.username or "").lower() == username.lower() for p in self._profiles.values()
        ):
            raise ProfileError(f"@{username} is taken")
        if new.language not in LANGUAGES:
            raise ProfileError(f"the language must be one of {', '.join(LANGUAGES)}")
        user_id = max([FIRST_USER_ID - 1, *self._profiles]) + 1
        profile = Profile(id=user_id, first_name=first_name, username=username, language=new.language)
        self._profiles[user_id] = profile
        return profile
