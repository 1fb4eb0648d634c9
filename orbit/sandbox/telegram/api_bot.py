"""Bot API methods about the bot itself: getMe, settings, commands, chat members."""

from __future__ import annotations

from typing import Any

from orbit.sandbox.telegram.constants import _BOT_COMMAND_RE, BOT_FIRST_NAME, BOT_USERNAME
from orbit.sandbox.telegram.errors import _bad
from orbit.sandbox.telegram.params import _chat_key, _Method, _Params
from orbit.sandbox.telegram.state import _World
from orbit.sandbox.telegram.wire import User, _member


class _BotMethods:
    """getMe, logOut/close, setMy*, *MyCommands, getChatMember."""

    # --- Bot API methods -----------------------------------------------------------------

    async def _accept(self, world: _World, params: _Params) -> bool:
        return True

    def _setting(self, name: str) -> _Method:
        async def store(world: _World, params: _Params) -> bool:
            world.settings[name] = params.describe()
            return True

        return store

    async def _get_me(self, world: _World, params: _Params) -> User:
        return User(
            id=world.bot_id or 0,
            is_bot=True,
            first_name=BOT_FIRST_NAME,
            username=BOT_USERNAME,
            can_join_groups=True,
            can_read_all_group_messages=False,
            supports_inline_queries=False,
        )

    async def _get_chat_member(self, world: _World, params: _Params) -> dict[str, Any]:
        raw_chat = params.get("chat_id")
        if raw_chat is None:
            raise _bad("chat_id is empty")
        try:
            key = _chat_key(raw_chat if isinstance(raw_chat, int) else str(raw_chat))
        except ValueError:
            raise _bad("chat not found") from None
        user_id = params.integer("user_id", required=True) or 0
        status = self._memberships.get((key, user_id), "left")
        return _member(status, world.user(user_id))

    @staticmethod
    def _commands_key(params: _Params) -> str:
        scope = params.json("scope")
        scope_type = scope.get("type", "default") if isinstance(scope, dict) else "default"
        suffix = f":{scope['chat_id']}" if isinstance(scope, dict) and "chat_id" in scope else ""
        return f"{scope_type}{suffix}/{params.string('language_code') or ''}"

    async def _set_my_commands(self, world: _World, params: _Params) -> bool:
        commands = params.json("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad("can't parse commands JSON object")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            description = command.get("description") if isinstance(command, dict) else None
            if not isinstance(name, str) or not _BOT_COMMAND_RE.fullmatch(name.lower()):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        world.commands[self._commands_key(params)] = [
            {"command": c["command"].lower(), "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, world: _World, params: _Params) -> list[dict[str, Any]]:
        return world.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, world: _World, params: _Params) -> bool:
        world.commands.pop(self._commands_key(params), None)
        return True
