"""The optional channel gate: REQUIRED_CHANNEL members only, before the trial or a purchase."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.enums import ChatMemberStatus
from aiogram.types import ChatMemberRestricted

from orbit.bot.api_failures import BOT_API_FAILURES, describe
from orbit.metrics import Metrics
from orbit.settings import Settings

log = logging.getLogger(__name__)

_MEMBER = {ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.MEMBER}


def _chat_id(channel: str) -> int | str:
    return int(channel) if channel.lstrip("-").isdigit() else channel


async def passes_gate(bot: Bot, settings: Settings, metrics: Metrics, user_id: int) -> bool:
    """True when no channel is required or the user is in it.

    A gate we cannot check (the bot is not an admin of the channel, a typo in
    REQUIRED_CHANNEL, a Bot API that is down or answers no JSON) lets the user
    through: a misconfiguration must not stop sales. It is logged and counted as
    `channel_gate_errors_total`.
    """
    if not settings.required_channel:
        return True
    try:
        member = await bot.get_chat_member(_chat_id(settings.required_channel), user_id)
    except BOT_API_FAILURES as exc:
        metrics.inc("channel_gate_errors_total")
        log.warning(
            "channel gate %s unchecked for user %d: %s", settings.required_channel, user_id, describe(exc)
        )
        return True
    if isinstance(member, ChatMemberRestricted):
        return member.is_member
    return member.status in _MEMBER
