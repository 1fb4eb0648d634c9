"""The command menu Telegram shows next to the input field, in each of our languages."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.types import BotCommand

from orbit.bot.api_failures import BOT_API_FAILURES, describe
from orbit.i18n import DEFAULT_LOCALE, LOCALES, Translator

log = logging.getLogger(__name__)

COMMANDS = ("start", "menu", "help")


async def set_commands(bot: Bot, translator: Translator) -> None:
    """Called at start-up; a failure is logged, not fatal (the commands still work when typed)."""
    for locale in LOCALES:
        commands = [BotCommand(command=c, description=translator(locale, f"cmd-{c}")) for c in COMMANDS]
        # The default list (no language_code) serves every language we do not have.
        try:
            await bot.set_my_commands(commands, language_code=None if locale == DEFAULT_LOCALE else locale)
        except BOT_API_FAILURES as exc:
            log.warning("setMyCommands (%s) failed: %s", locale, describe(exc))
